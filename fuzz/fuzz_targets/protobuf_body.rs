//! Kubernetes protobuf bodies (`k8s\0` envelope, runtime.Unknown, every upstream kind):
//! every read is bounds-checked and nesting is capped; whatever decodes encodes again.
#![no_main]
use bulwark_apiserver::codec::protobuf::{decode, decode_watch_event, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(value) = decode(body) {
        let _ = encode(&value);
    }
    let _ = decode_watch_event(body);
});
