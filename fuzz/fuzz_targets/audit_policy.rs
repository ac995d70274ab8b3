//! Audit policy files (`audit.k8s.io/v1 Policy`, YAML): parse, then ask it for a level.
#![no_main]
use bulwark_audit::AuditPolicy;
use bulwark_audit::policy::RequestAttributes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(policy) = AuditPolicy::parse(text) {
        let groups = vec!["system:authenticated".to_owned()];
        let (level, _) = policy.level_for(&RequestAttributes {
            user: "alice",
            groups: &groups,
            verb: "get",
            resource: Some(("", "secrets", None, Some("default"), Some("s"))),
            path: "/api/v1/namespaces/default/secrets/s",
        });
        // Whatever a policy says, a Secret's body is never recorded.
        assert!(
            level <= bulwark_audit::Level::Metadata,
            "secrets at {level:?}"
        );
        let _ = policy.level_for_unauthenticated();
    }
});
