//! Kubernetes protobuf request bodies (`k8s\0` envelope, runtime.Unknown, the access review
//! kinds): every read is bounds-checked.
#![no_main]
use bulwark_apiserver::protobuf::decode_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for kind in [
        "SelfSubjectAccessReview",
        "SubjectAccessReview",
        "LocalSubjectAccessReview",
        "SelfSubjectRulesReview",
    ] {
        let _ = decode_body("authorization.k8s.io/v1", kind, body);
    }
});
