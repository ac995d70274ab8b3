//! The resource registry: every kind the server serves, with what discovery, routing,
//! storage, admission and Table output need to know about it.
//!
//! - Requests find what a URL addresses through the state's [`ResourceRegistry`] (a
//!   [`ResourceTable`] snapshot per request, replaced whole and atomically by
//!   [`ServedResources::install`]), so a registry backed by custom resource definitions
//!   plugs in without touching a handler.
//! - A [`ResourceDef`] is one row: names, scope, subresources, field selectors, how it is
//!   served, and its [`KindStrategy`] (defaulting, validation, status, deletion, Table, typed
//!   decode and schema, pod template).
//! - Adding a built-in kind is a row in `builtin_table` and a strategy in `registry/kinds/`
//!   (one file per API group); admission's Cedar model, discovery, OpenAPI and protobuf
//!   follow from them (regenerate the checked-in Cedar schema with `BULWARK_WRITE_SCHEMA=1
//!   cargo test -p bulwark-apiserver`).

pub(crate) mod convert;
pub(crate) mod defaults;
pub(crate) mod kinds;
pub(crate) mod schema;
pub mod served;
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

/// One served resource: what discovery, routing, storage and the handlers need to know about
/// it. Shared (`Arc`) and immutable; its names are owned or static, so a custom resource's
/// definition is built the same way as a built-in's.
#[derive(Debug)]
pub struct ResourceDef {
    gvk: GroupVersionKind<'static>,
    plural: Cow<'static, str>,
    singular: Cow<'static, str>,
    short_names: Vec<Cow<'static, str>>,
    categories: Vec<Cow<'static, str>>,
    namespaced: bool,
    subresources: Vec<Subresource>,
    name_rule: NameRule,
    extra_fields: Vec<Cow<'static, str>>,
    serving: Serving,
    strategy: Arc<dyn KindStrategy>,
}

impl ResourceDef {
    /// A stored resource with every verb, no subresources, short names or categories, and
    /// subdomain names (what a custom resource starts from).
    pub fn new_stored(
        gvk: GroupVersionKind<'static>,
        plural: impl Into<Cow<'static, str>>,
        namespaced: bool,
        strategy: Arc<dyn KindStrategy>,
    ) -> Self {
        let singular = Cow::Owned(gvk.kind.to_lowercase());
        Self {
            gvk,
            plural: plural.into(),
            singular,
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced,
            subresources: Vec::new(),
            name_rule: NameRule::Subdomain,
            extra_fields: Vec::new(),
            serving: Serving::Stored,
            strategy,
        }
    }

    /// The kind's full name.
    pub fn gvk(&self) -> &GroupVersionKind<'static> {
        &self.gvk
    }

    /// The resource's full name (borrowed from the definition).
    pub fn gvr(&self) -> GroupVersionResource<'_> {
        GroupVersionResource::new(&self.gvk.group, &self.gvk.version, &self.plural)
    }

    /// API group ("" for core).
    pub fn group(&self) -> &str {
        &self.gvk.group
    }

    /// Version served.
    pub fn version(&self) -> &str {
        &self.gvk.version
    }

    /// Kind.
    pub fn kind(&self) -> &str {
        &self.gvk.kind
    }

    /// Plural resource name (the URL segment).
    pub fn plural(&self) -> &str {
        &self.plural
    }

    /// Singular name (discovery, `kubectl get deployment`).
    pub fn singular(&self) -> &str {
        &self.singular
    }

    /// Short names (`kubectl get deploy`).
    pub fn short_names(&self) -> impl Iterator<Item = &str> {
        self.short_names.iter().map(|n| &**n)
    }

    /// Categories (`kubectl get all`).
    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|n| &**n)
    }

    /// Namespaced or cluster-scoped.
    pub fn namespaced(&self) -> bool {
        self.namespaced
    }

    /// Subresources.
    pub fn subresources(&self) -> &[Subresource] {
        &self.subresources
    }

    /// The rule `metadata.name` follows.
    pub fn name_rule(&self) -> NameRule {
        self.name_rule
    }

    /// Where objects come from (and so which verbs are served).
    pub fn serving(&self) -> Serving {
        self.serving
    }

    /// Everything else the server knows about the kind.
    pub fn strategy(&self) -> &dyn KindStrategy {
        &*self.strategy
    }

    /// Whether this is `kind` of `group`: a kind check always names the group, so a custom
    /// kind that happens to be called `Pod` never inherits what the core Pod gets.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.gvk.is(group, kind)
    }

    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        self.gvk.api_version()
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
            || self.extra_fields.iter().any(|f| f == field)
    }
}

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, OnceLock};

use Subresource::{Approval, Binding, Scale, Status, Token};
use bulwark_admission::object_model::{KindSchema, KindSchemas};
use bulwark_admission::{AdmissionError, AdmissionModel};
use bulwark_api::{GroupVersionKind, GroupVersionResource};
use k8s_openapi::schemars::SchemaGenerator;
pub use served::{ResourceRegistry, ResourceTable, ServedResources};
use strategy::KindStrategy;

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

fn names(names: &[&'static str]) -> Vec<Cow<'static, str>> {
    names.iter().map(|n| Cow::Borrowed(*n)).collect()
}

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, short: $short:expr,
     cat: $cat:expr, ns: $ns:expr, sub: $sub:expr, name: $rule:expr, fields: $fields:expr,
     strategy: $strategy:expr) => {
        ResourceDef {
            gvk: GroupVersionKind::new($group, $version, $kind),
            plural: Cow::Borrowed($plural),
            singular: Cow::Borrowed($singular),
            short_names: names($short),
            categories: names($cat),
            namespaced: $ns,
            subresources: $sub.to_vec(),
            name_rule: $rule,
            extra_fields: names($fields),
            serving: Serving::Stored,
            strategy: Arc::new($strategy),
        }
    };
}

/// A kind served by a [`RestHandler`](crate::rest::handler::RestHandler) rather than from
/// storage: no subresources, short names or categories, names as path segments.
macro_rules! served_by {
    ($group:expr, $kind:expr, $plural:expr, $singular:expr, ns: $ns:expr,
     handler: $handler:expr, strategy: $strategy:expr) => {
        ResourceDef {
            gvk: GroupVersionKind::new($group, "v1", $kind),
            plural: Cow::Borrowed($plural),
            singular: Cow::Borrowed($singular),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced: $ns,
            subresources: Vec::new(),
            name_rule: NameRule::PathSegment,
            extra_fields: Vec::new(),
            serving: Serving::Handler(&$handler),
            strategy: Arc::new($strategy),
        }
    };
}

/// A create-only, unstored kind of `authorization.k8s.io/v1` (an access review).
macro_rules! review {
    ($kind:expr, $plural:expr, $singular:expr, ns: $ns:expr, strategy: $strategy:expr) => {
        served_by!("authorization.k8s.io", $kind, $plural, $singular, ns: $ns,
            handler: crate::authz::access_review::Reviews, strategy: $strategy)
    };
}

/// A cluster-scoped kind of `encryption.bulwark.dev/v1`.
macro_rules! encryption_api {
    ($kind:expr, $plural:expr, $singular:expr, $handler:expr, $strategy:expr) => {
        served_by!(crate::encryption::api::GROUP, $kind, $plural, $singular, ns: false,
            handler: $handler, strategy: $strategy)
    };
}

/// A cluster-scoped kind of `posture.bulwark.dev/v1`.
macro_rules! posture_api {
    ($kind:expr, $plural:expr, $singular:expr, $handler:expr, $strategy:expr) => {
        served_by!(bulwark_api::posture::GROUP, $kind, $plural, $singular, ns: false,
            handler: $handler, strategy: $strategy)
    };
}

/// Every built-in resource, in discovery order.
fn builtin_table() -> Vec<ResourceDef> {
    vec![
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
        res!("posture.bulwark.dev", "v1", "PostureException", "postureexceptions",
         "postureexception", short: &["pex"], cat: NONE, ns: false, sub: &[],
         name: NameRule::Subdomain, fields: &[],
         strategy: kinds::bulwark::PostureExceptions),
        // The Policy WG's report format: the posture scanner publishes its results in it.
        res!("wgpolicyk8s.io", "v1alpha2", "PolicyReport", "policyreports", "policyreport",
         short: &["polr"], cat: NONE, ns: true, sub: &[], name: NameRule::Subdomain,
         fields: &[],
         strategy: kinds::bulwark::PolicyReports),
        res!("wgpolicyk8s.io", "v1alpha2", "ClusterPolicyReport", "clusterpolicyreports",
         "clusterpolicyreport", short: &["cpolr"], cat: NONE, ns: false, sub: &[],
         name: NameRule::Subdomain, fields: &[],
         strategy: kinds::bulwark::ClusterPolicyReports),
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
        served_by!("audit.bulwark.dev", "Event", "events", "event", ns: true,
            handler: crate::audit::query::AuditEvents, strategy: kinds::bulwark::HandlerServed),
        // Encryption at rest, operated through the API.
        encryption_api!(
            "EncryptionStatus",
            "encryptionstatuses",
            "encryptionstatus",
            crate::encryption::api::StatusApi,
            kinds::bulwark::EncryptionStatuses
        ),
        encryption_api!(
            "EncryptionKey",
            "encryptionkeys",
            "encryptionkey",
            crate::encryption::api::KeysApi,
            kinds::bulwark::EncryptionKeys
        ),
        encryption_api!(
            "KeyRotation",
            "keyrotations",
            "keyrotation",
            crate::encryption::api::RotationsApi,
            kinds::bulwark::KeyRotations
        ),
        encryption_api!(
            "EncryptionVerification",
            "encryptionverifications",
            "encryptionverification",
            crate::encryption::api::VerificationsApi,
            kinds::bulwark::HandlerServed
        ),
        // The posture scanner's reports, findings, signed exports, history and scans.
        posture_api!(
            "PostureReport",
            "posturereports",
            "posturereport",
            crate::posture::api::ReportsApi,
            kinds::bulwark::PostureReports
        ),
        posture_api!(
            "PostureFinding",
            "posturefindings",
            "posturefinding",
            crate::posture::api::FindingsApi,
            kinds::bulwark::PostureFindings
        ),
        posture_api!(
            "PostureExport",
            "postureexports",
            "postureexport",
            crate::posture::api::ExportsApi,
            kinds::bulwark::HandlerServed
        ),
        posture_api!(
            "PostureHistory",
            "posturehistories",
            "posturehistory",
            crate::posture::api::HistoryApi,
            kinds::bulwark::HandlerServed
        ),
        posture_api!(
            "PostureScan",
            "posturescans",
            "posturescan",
            crate::posture::api::ScansApi,
            kinds::bulwark::HandlerServed
        ),
    ]
}

/// The stored kinds as admission models them: each kind's strategy registers its type, so a
/// kind is declared once, in its registry row and its strategy.
struct AdmittedKinds;

impl KindSchemas for AdmittedKinds {
    fn register(&self, generator: &mut SchemaGenerator) -> Vec<KindSchema> {
        builtin()
            .iter()
            .filter(|def| def.stored())
            .filter_map(|def| {
                def.strategy()
                    .schema(generator)
                    .map(|definition| KindSchema {
                        group: def.group().to_owned(),
                        kind: def.kind().to_owned(),
                        definition,
                        pod_template: def.strategy().pod_template(),
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

fn builtin_shared() -> &'static Arc<ResourceTable> {
    static BUILTIN: LazyLock<Arc<ResourceTable>> = LazyLock::new(|| {
        let defs = builtin_table().into_iter().map(Arc::new).collect();
        // The built-in table is fixed; `builtin_resources_are_unique` proves it builds.
        Arc::new(ResourceTable::new(defs).unwrap_or_default())
    });
    &BUILTIN
}

/// The built-in resources: what code that works with one specific built-in kind (the
/// namespace and policy mirrors, bootstrap) and tests look up. Requests go through the
/// server's [`ResourceRegistry`].
pub fn builtin() -> &'static ResourceTable {
    builtin_shared()
}

/// The built-in resource at `gvr`.
pub fn lookup(gvr: &GroupVersionResource<'_>) -> Option<Arc<ResourceDef>> {
    builtin().get(gvr).cloned()
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
        for def in builtin().iter().filter(|d| {
            d.stored()
                && d.group() != bulwark_api::cedar_policy::GROUP
                && d.group() != bulwark_api::posture::GROUP
                && d.group() != bulwark_api::policy_report::GROUP
        }) {
            assert!(
                model.objects().kind(def.group(), def.kind()).is_some(),
                "{}/{} is stored but not admitted",
                def.group(),
                def.kind()
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
                .conforming_entities(&admission_input(&kind.group, &kind.kind, &minimal), None)
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

    /// The built-in table builds (it is served as an empty table otherwise).
    #[test]
    fn builtin_resources_are_unique() {
        let defs: Vec<_> = builtin_table().into_iter().map(Arc::new).collect();
        let count = defs.len();
        assert!(ResourceTable::new(defs).is_ok());
        assert_eq!(builtin().iter().count(), count);
    }

    #[test]
    fn lookups() {
        assert_eq!(
            lookup(&GroupVersionResource::new("apps", "v1", "deployments"))
                .unwrap()
                .kind(),
            "Deployment"
        );
        assert!(lookup(&GroupVersionResource::new("", "v1", "deployments")).is_none());
        assert!(
            lookup(&GroupVersionResource::new("", "v1", "pods"))
                .unwrap()
                .supports_field("spec.nodeName")
        );
        assert!(
            !lookup(&GroupVersionResource::new("", "v1", "namespaces"))
                .unwrap()
                .supports_field("metadata.namespace")
        );
        assert_eq!(builtin().group_versions().first(), Some(&("", "v1")));
    }
}
