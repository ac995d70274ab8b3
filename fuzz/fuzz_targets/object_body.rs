//! Object bodies (manifests) as create and update read them: JSON with the depth limit, then
//! the typed decode of every served kind, with unknown fields found and pruned.
#![no_main]
use bulwark_apiserver::http::negotiate;
use bulwark_apiserver::registry::{self, typed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(value) = negotiate::parse_json(body) else {
        return;
    };
    for def in registry::builtin().iter() {
        let _ = typed::decode(def, &value);
    }
});
