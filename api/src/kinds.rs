//! The served built-in kinds and their Rust types, as one macro every crate expands.

/// Calls `$callback!` with `(args) { group kind => Type, ... }` for every admitted built-in
/// kind: the list the admission crate generates its Cedar object schema from (the API server's
/// own knowledge of a kind is its strategy in `apiserver/src/registry/kinds/`). A kind served
/// but missing here is not admitted by Cedar policies, and policies naming it fail
/// validation.
#[macro_export]
macro_rules! with_kinds {
    ($callback:ident ! ($($args:tt)*)) => {
        $callback!(($($args)*) {
        "" "Namespace" => $crate::k8s_openapi::api::core::v1::Namespace,
        "" "ConfigMap" => $crate::k8s_openapi::api::core::v1::ConfigMap,
        "" "Secret" => $crate::k8s_openapi::api::core::v1::Secret,
        "" "ServiceAccount" => $crate::k8s_openapi::api::core::v1::ServiceAccount,
        "" "Pod" => $crate::k8s_openapi::api::core::v1::Pod,
        "" "Node" => $crate::k8s_openapi::api::core::v1::Node,
        "" "Service" => $crate::k8s_openapi::api::core::v1::Service,
        "" "Endpoints" => $crate::k8s_openapi::api::core::v1::Endpoints,
        "" "Event" => $crate::k8s_openapi::api::core::v1::Event,
        "" "ResourceQuota" => $crate::k8s_openapi::api::core::v1::ResourceQuota,
        "apps" "Deployment" => $crate::k8s_openapi::api::apps::v1::Deployment,
        "apps" "ReplicaSet" => $crate::k8s_openapi::api::apps::v1::ReplicaSet,
        "apps" "DaemonSet" => $crate::k8s_openapi::api::apps::v1::DaemonSet,
        "apps" "StatefulSet" => $crate::k8s_openapi::api::apps::v1::StatefulSet,
        "batch" "Job" => $crate::k8s_openapi::api::batch::v1::Job,
        "batch" "CronJob" => $crate::k8s_openapi::api::batch::v1::CronJob,
        "coordination.k8s.io" "Lease" => $crate::k8s_openapi::api::coordination::v1::Lease,
        "certificates.k8s.io" "CertificateSigningRequest" => $crate::k8s_openapi::api::certificates::v1::CertificateSigningRequest,
        "events.k8s.io" "Event" => $crate::k8s_openapi::api::events::v1::Event,
        "scheduling.k8s.io" "PriorityClass" => $crate::k8s_openapi::api::scheduling::v1::PriorityClass,
        "rbac.authorization.k8s.io" "Role" => $crate::k8s_openapi::api::rbac::v1::Role,
        "rbac.authorization.k8s.io" "ClusterRole" => $crate::k8s_openapi::api::rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io" "RoleBinding" => $crate::k8s_openapi::api::rbac::v1::RoleBinding,
        "rbac.authorization.k8s.io" "ClusterRoleBinding" => $crate::k8s_openapi::api::rbac::v1::ClusterRoleBinding,
        "policy.bulwark.dev" "CedarPolicy" => $crate::cedar_policy::CedarPolicy,
        "authorization.k8s.io" "SelfSubjectAccessReview" => $crate::k8s_openapi::api::authorization::v1::SelfSubjectAccessReview,
        "authorization.k8s.io" "SelfSubjectRulesReview" => $crate::k8s_openapi::api::authorization::v1::SelfSubjectRulesReview,
        "authorization.k8s.io" "SubjectAccessReview" => $crate::k8s_openapi::api::authorization::v1::SubjectAccessReview,
        "authorization.k8s.io" "LocalSubjectAccessReview" => $crate::k8s_openapi::api::authorization::v1::LocalSubjectAccessReview,
        })
    };
}
