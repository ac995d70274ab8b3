//! Server-side apply bodies (YAML, with aliases) and client-sent managedFields (FieldsV1):
//! parsing is bounded, and an apply of whatever parses never panics.
#![no_main]
use bulwark_apiserver::rest::fieldmanager;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    fieldmanager::fuzz_apply(body);
});
