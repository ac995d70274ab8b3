//! JSON patch (RFC 6902) bodies against a stored object, within the default patch budget: never
//! a panic, never a document past the budget.
#![no_main]
use bulwark_apiserver::rest::patch::{PatchBudget, PatchType, apply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let original = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "labels": {"a": "b"}, "annotations": {"x": "y"}},
        "data": {"k": "v", "list": "1"},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}
    });
    let budget = PatchBudget {
        max_operations: 1000,
        max_copy_bytes: 64 * 1024,
        max_result_bytes: 128 * 1024,
    };
    if let Ok(patched) = apply(PatchType::Json, &original, body, &budget) {
        let size = serde_json::to_vec(&patched).map(|v| v.len()).unwrap_or(0);
        assert!(
            size <= budget.max_result_bytes,
            "a patch result past the budget: {size}"
        );
    }
});
