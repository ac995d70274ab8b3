//! The resource registry: every kind the server serves, with what discovery, routing,
//! validation and Table output need to know about it. Everything generic (CRUD, list, watch,
//! patch) is driven from this table, so adding a kind is adding a row.

pub(crate) mod convert;
pub(crate) mod defaults;
pub(crate) mod kinds;
pub(crate) mod schema;
pub mod strategy;
pub mod typed;
pub(crate) mod validation;

/// Which name rule upstream applies to a kind's `metadata.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Dns1035,
    /// Any single path segment (events, leases' holders are subdomain but events are free-form).
    PathSegment,
}

/// Subresources a kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: writes only status; main-resource writes ignore status.
    Status,
    /// `/scale`: an `autoscaling/v1 Scale` view of `spec.replicas`.
    Scale,
    /// `pods/binding`: assigns a pod to a node.
    Binding,
    /// `certificatesigningrequests/approval`: writes approval conditions.
    Approval,
    /// `serviceaccounts/token`: TokenRequest.
    Token,
}

impl Subresource {
    /// The URL segment.
    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Binding => "binding",
            Self::Approval => "approval",
            Self::Token => "token",
        }
    }
}

/// Where a resource's objects come from.
#[derive(Debug, Clone, Copy)]
pub enum Serving {
    /// Stored objects with the full set of verbs.
    Stored,
    /// Served by a handler (the access reviews, the audit events API).
    Handler(&'static dyn crate::rest::handler::RestHandler),
}

impl Serving {
    /// The verbs served: what discovery lists and all that request parsing admits.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Self::Stored => crate::discovery::VERBS,
            Self::Handler(handler) => handler.verbs(),
        }
    }
}

/// One served resource.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version served.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name (the URL segment).
    pub plural: &'static str,
    /// Singular name (discovery).
    pub singular: &'static str,
    /// Short names (`kubectl get deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`kubectl get all`).
    pub categories: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// Name rule.
    pub name_rule: NameRule,
    /// Field selectors beyond `metadata.name` and `metadata.namespace`.
    pub extra_fields: &'static [&'static str],
    /// Where objects come from (and so which verbs are served).
    pub serving: Serving,
    /// Everything else the server knows about the kind.
    pub strategy: &'static dyn KindStrategy,
}

impl ResourceDef {
    /// Whether this is `kind` of `group`: a kind check always names the group, so a custom
    /// kind that happens to be called `Pod` never inherits what the core Pod gets.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }

    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether objects are stored (every verb served).
    pub fn stored(&self) -> bool {
        matches!(self.serving, Serving::Stored)
    }

    /// Whether the kind has `sub`.
    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether `field` may be used in a field selector.
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || (self.namespaced && field == "metadata.namespace")
            || self.extra_fields.contains(&field)
    }
}

use std::sync::{Arc, OnceLock};

use Subresource::{Approval, Binding, Scale, Status, Token};
use bulwark_admission::object_model::{KindSchema, KindSchemas};
use bulwark_admission::{AdmissionError, AdmissionModel};
use k8s_openapi::schemars::SchemaGenerator;
use strategy::KindStrategy;

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, short: $short:expr,
     cat: $cat:expr, ns: $ns:expr, sub: $sub:expr, name: $rule:expr, fields: $fields:expr,
     strategy: $strategy:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: $short,
            categories: $cat,
            namespaced: $ns,
            subresources: $sub,
            name_rule: $rule,
            extra_fields: $fields,
            serving: Serving::Stored,
            strategy: &$strategy,
        }
    };
}

/// A create-only, unstored kind of `authorization.k8s.io/v1` (an access review).
macro_rules! review {
    ($kind:expr, $plural:expr, $singular:expr, ns: $ns:expr, strategy: $strategy:expr) => {
        ResourceDef {
            group: "authorization.k8s.io",
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[],
            categories: &[],
            namespaced: $ns,
            subresources: &[],
            name_rule: NameRule::PathSegment,
            extra_fields: &[],
            serving: Serving::Handler(&crate::authz::access_review::Reviews),
            strategy: &$strategy,
        }
    };
}

/// Every served resource.
pub static RESOURCES: &[ResourceDef] = &[
    res!("", "v1", "Namespace", "namespaces", "namespace", short: &["ns"], cat: NONE, ns: false,
         sub: &[Status], name: NameRule::Label, fields: &["status.phase"],
         strategy: kinds::core::Namespaces),
    res!("", "v1", "ConfigMap", "configmaps", "configmap", short: &["cm"], cat: NONE, ns: true,
         sub: &[], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::core::ConfigMaps),
    res!("", "v1", "Secret", "secrets", "secret", short: &[], cat: NONE, ns: true,
         sub: &[], name: NameRule::Subdomain, fields: &["type"],
         strategy: kinds::core::Secrets),
    res!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", short: &["sa"],
         cat: NONE, ns: true, sub: &[Token], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::core::ServiceAccounts),
    res!("", "v1", "Pod", "pods", "pod", short: &["po"], cat: ALL, ns: true,
         sub: &[Status, Binding], name: NameRule::Subdomain,
         fields: &["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                   "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                   "status.podIP", "status.nominatedNodeName"],
         strategy: kinds::core::Pods),
    res!("", "v1", "Node", "nodes", "node", short: &["no"], cat: NONE, ns: false,
         sub: &[Status], name: NameRule::Subdomain, fields: &["spec.unschedulable"],
         strategy: kinds::core::Nodes),
    res!("", "v1", "Service", "services", "service", short: &["svc"], cat: ALL, ns: true,
         sub: &[Status], name: NameRule::Dns1035, fields: &["spec.clusterIP", "spec.type"],
         strategy: kinds::core::Services),
    res!("", "v1", "Endpoints", "endpoints", "endpoints", short: &["ep"], cat: NONE, ns: true,
         sub: &[], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::core::EndpointsKind),
    res!("", "v1", "Event", "events", "event", short: &["ev"], cat: NONE, ns: true,
         sub: &[], name: NameRule::PathSegment,
         fields: &["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                   "involvedObject.uid", "involvedObject.apiVersion",
                   "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                   "reportingComponent", "source", "type"],
         strategy: kinds::core::Events),
    res!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", short: &["quota"],
         cat: NONE, ns: true, sub: &[Status], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::core::ResourceQuotas),
    res!("apps", "v1", "Deployment", "deployments", "deployment", short: &["deploy"], cat: ALL,
         ns: true, sub: &[Status, Scale], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::apps::Deployments),
    res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", short: &["rs"], cat: ALL,
         ns: true, sub: &[Status, Scale], name: NameRule::Subdomain, fields: &["status.replicas"],
         strategy: kinds::apps::ReplicaSets),
    res!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", short: &["ds"], cat: ALL,
         ns: true, sub: &[Status], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::apps::DaemonSets),
    res!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", short: &["sts"], cat: ALL,
         ns: true, sub: &[Status, Scale], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::apps::StatefulSets),
    res!("batch", "v1", "Job", "jobs", "job", short: &[], cat: ALL, ns: true,
         sub: &[Status], name: NameRule::Subdomain, fields: &["status.successful"],
         strategy: kinds::batch::Jobs),
    res!("batch", "v1", "CronJob", "cronjobs", "cronjob", short: &["cj"], cat: ALL, ns: true,
         sub: &[Status], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::batch::CronJobs),
    res!("coordination.k8s.io", "v1", "Lease", "leases", "lease", short: &[], cat: NONE,
         ns: true, sub: &[], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::coordination::Leases),
    res!("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests",
         "certificatesigningrequest", short: &["csr"], cat: NONE, ns: false,
         sub: &[Status, Approval], name: NameRule::Subdomain, fields: &["spec.signerName"],
         strategy: kinds::certificates::CertificateSigningRequests),
    res!("events.k8s.io", "v1", "Event", "events", "event", short: &["ev"], cat: NONE, ns: true,
         sub: &[], name: NameRule::PathSegment,
         fields: &["regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
                   "reason", "reportingController", "type"],
         strategy: kinds::events::Events),
    res!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", short: &[], cat: NONE,
         ns: true, sub: &[], name: NameRule::PathSegment, fields: &[],
         strategy: kinds::rbac::Roles),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole",
         short: &[], cat: NONE, ns: false, sub: &[], name: NameRule::PathSegment, fields: &[],
         strategy: kinds::rbac::ClusterRoles),
    res!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding",
         short: &[], cat: NONE, ns: true, sub: &[], name: NameRule::PathSegment, fields: &[],
         strategy: kinds::rbac::RoleBindings),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
         "clusterrolebinding", short: &[], cat: NONE, ns: false, sub: &[],
         name: NameRule::PathSegment, fields: &[],
         strategy: kinds::rbac::ClusterRoleBindings),
    res!("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass",
         short: &["pc"], cat: NONE, ns: false, sub: &[], name: NameRule::Subdomain, fields: &[],
         strategy: kinds::scheduling::PriorityClasses),
    res!("policy.bulwark.dev", "v1", "CedarPolicy", "cedarpolicies", "cedarpolicy",
         short: &["cedar"], cat: NONE, ns: false, sub: &[Status], name: NameRule::Subdomain,
         fields: &[],
         strategy: kinds::bulwark::CedarPolicies),
    review!("SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", ns: false,
            strategy: kinds::authorization::SelfSubjectAccessReviews),
    review!("SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", ns: false,
            strategy: kinds::authorization::SelfSubjectRulesReviews),
    review!("SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", ns: false,
            strategy: kinds::authorization::SubjectAccessReviews),
    review!("LocalSubjectAccessReview", "localsubjectaccessreviews",
            "localsubjectaccessreview", ns: true,
            strategy: kinds::authorization::LocalSubjectAccessReviews),
    // Audit events: list only, cluster-wide or for one namespace.
    ResourceDef {
        group: "audit.bulwark.dev",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &[],
        categories: &[],
        namespaced: true,
        subresources: &[],
        name_rule: NameRule::PathSegment,
        extra_fields: &[],
        serving: Serving::Handler(&crate::audit::query::AuditEvents),
        strategy: &kinds::bulwark::AuditEvents,
    },
];

/// The stored kinds as admission models them: each kind's strategy registers its type, so a
/// kind is declared once, in its registry row and its strategy.
struct AdmittedKinds;

impl KindSchemas for AdmittedKinds {
    fn register(&self, generator: &mut SchemaGenerator) -> Vec<KindSchema> {
        RESOURCES
            .iter()
            .filter(|def| def.stored())
            .filter_map(|def| {
                def.strategy.schema(generator).map(|definition| KindSchema {
                    group: def.group,
                    kind: def.kind,
                    definition,
                    pod_template: def.strategy.pod_template(),
                })
            })
            .collect()
    }
}

/// The admission model of the served kinds (what Cedar admission policies see), built once.
pub fn admission_model() -> Result<Arc<AdmissionModel>, AdmissionError> {
    static MODEL: OnceLock<Result<Arc<AdmissionModel>, AdmissionError>> = OnceLock::new();
    MODEL
        .get_or_init(|| AdmissionModel::build(&AdmittedKinds))
        .clone()
}

/// Finds the resource served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The group/versions served, in discovery order (core first, then groups by first mention).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/cedar/k8s-objects.cedarschema"
    );

    /// The checked-in Cedar object schema (what admission policies are validated against,
    /// offline too) is what the registry's kinds render, so a kind added to the registry
    /// fails here until the schema is regenerated.
    #[test]
    fn checked_in_object_schema_is_the_registrys() {
        let model = admission_model().unwrap();
        let rendered = bulwark_admission::object_model::render_schema(model.objects()).unwrap();
        if std::env::var_os("BULWARK_WRITE_SCHEMA").is_some() {
            std::fs::write(CHECKED_IN, &rendered).unwrap();
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap();
        assert!(
            checked_in == rendered,
            "policies/cedar/k8s-objects.cedarschema is stale: run BULWARK_WRITE_SCHEMA=1 cargo test -p bulwark-apiserver"
        );
        for def in RESOURCES
            .iter()
            .filter(|d| d.stored() && d.group != bulwark_api::cedar_policy::GROUP)
        {
            assert!(
                model.objects().kind(def.group, def.kind).is_some(),
                "{}/{} is stored but not admitted",
                def.group,
                def.kind
            );
        }
    }

    fn admission_input<'a>(
        group: &'a str,
        kind: &'a str,
        object: &'a serde_json::Value,
    ) -> bulwark_admission::AdmissionInput<'a> {
        bulwark_admission::AdmissionInput {
            user: "system:serviceaccount:team-a:deployer",
            groups: &[],
            auth_method: "serviceaccount-token",
            cert_fingerprint: None,
            source_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            operation: bulwark_admission::Operation::Create,
            group,
            kind,
            subresource: None,
            namespace: Some("team-a"),
            name: "x",
            object: Some(object),
            old_object: None,
            namespace_labels: &[],
            dry_run: false,
        }
    }

    /// What a policy is given for each stored kind (a minimal object; a pod and every
    /// workload kind with its pod views) passes Cedar's own check against the checked-in
    /// schema.
    #[test]
    fn every_kinds_entities_conform_to_the_schema() {
        use serde_json::json;
        let model = admission_model().unwrap();
        let schema =
            bulwark_policies::schema::schema_for(bulwark_policies::PolicyKind::Admission).unwrap();
        let minimal = json!({"metadata": {"name": "x"}});
        for kind in &model.objects().kinds {
            // Required fields are missing here, so only the shape of what is present is
            // checked (no schema).
            model
                .conforming_entities(&admission_input(kind.group, kind.kind, &minimal), None)
                .unwrap_or_else(|e| panic!("{}/{}: {e}", kind.group, kind.kind));
        }
        let template = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
            {"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}],
             "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": 1}},
             "securityContext": {"capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "v", "hostPath": {"path": "/"}}]}});
        let selected = json!({"selector": {"matchLabels": {"a": "b"}}, "template": template});
        let workloads = [
            ("apps", "Deployment", json!({"spec": selected})),
            ("apps", "DaemonSet", json!({"spec": selected})),
            ("apps", "StatefulSet", json!({"spec": selected})),
            ("apps", "ReplicaSet", json!({"spec": selected})),
            ("batch", "Job", json!({"spec": {"template": template}})),
            (
                "batch",
                "CronJob",
                json!({"spec": {"schedule": "* * * * *",
                "jobTemplate": {"spec": {"template": template}}}}),
            ),
            ("", "Pod", json!({"spec": template["spec"]})),
        ];
        for (group, kind, mut object) in workloads {
            object["metadata"] = json!({"name": "x"});
            let resources = model
                .conforming_entities(&admission_input(group, kind, &object), Some(schema))
                .unwrap_or_else(|e| panic!("{group}/{kind}: {e}"));
            assert_eq!(
                resources, 3,
                "{group}/{kind}: object, pod view, one container"
            );
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(
            lookup("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert!(lookup("", "v1", "deployments").is_none());
        assert!(
            lookup("", "v1", "pods")
                .unwrap()
                .supports_field("spec.nodeName")
        );
        assert!(
            !lookup("", "v1", "namespaces")
                .unwrap()
                .supports_field("metadata.namespace")
        );
        assert_eq!(group_versions().first(), Some(&("", "v1")));
    }
}
