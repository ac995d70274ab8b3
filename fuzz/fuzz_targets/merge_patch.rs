//! JSON merge patch and Kubernetes strategic merge patch bodies (with their `$patch`,
//! `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList` directives).
#![no_main]
use bulwark_apiserver::rest::patch::{PatchBudget, PatchType, apply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let original = serde_json::json!({
        "metadata": {"name": "d", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "a:1", "ports": [{"containerPort": 80}],
                            "env": [{"name": "A", "value": "1"}], "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
            "volumes": [{"name": "v", "emptyDir": {}}]}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}
    });
    let budget = PatchBudget::default();
    for kind in [PatchType::Merge, PatchType::StrategicMerge] {
        let _ = apply(kind, &original, body, &budget);
    }
});
