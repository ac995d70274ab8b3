//! The admission decision. Admission policies are forbids over typed objects; a write is
//! admitted unless a policy in `Enforce` mode forbids it (or fails to evaluate: never fail
//! open). Policies in `Warn` mode turn into `Warning` headers, policies in `Audit` mode into
//! audit records; neither stops the write.
//!
//! Each write is evaluated as the object itself (`k8s::<group>::<version>::<Kind>`, with
//! `oldObject` on update and delete) and, when the object runs pods and its pod spec is new or
//! changed, as its pod security views (`k8s::admission::Workload` and one
//! `k8s::admission::Container` per container; see [`crate::workload`]). Policies are bucketed
//! by the resource type their scope names, so a write only meets the policies that can apply.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bulwark_policies::engine::Skipped;
use bulwark_policies::request::{Principal, context_pairs};
use bulwark_policies::{CompiledPolicies, PolicyKind};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicySet,
    Request, ResourceConstraint, RestrictedExpression,
};
use serde_json::Value;

use crate::AdmissionError;
use crate::object_entity::{attributes, value};
use crate::object_model::{FieldType, KindSchemas, ObjectModel};
use crate::workload::{
    CONTAINER_LISTS, container_with_annotations, host_ports, pod_view, sysctl_names, volume_types,
};

/// What a policy's hit does to the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Deny the write.
    Enforce,
    /// Admit it with a `Warning` header.
    Warn,
    /// Admit it and record the hit.
    Audit,
}

/// The admission action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A changed object (update, patch, scale).
    Update,
    /// A deleted object.
    Delete,
    /// A connection to an object (exec, attach, port-forward).
    Connect,
}

impl Operation {
    fn action(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Connect => "connect",
        }
    }
}

/// One write, as admission sees it.
#[derive(Debug, Clone)]
pub struct AdmissionInput<'a> {
    /// The writer.
    pub user: &'a str,
    /// Its groups.
    pub groups: &'a [String],
    /// How it authenticated (`x509`, `serviceaccount-token`).
    pub auth_method: &'a str,
    /// Its client certificate's SHA-256, for x509 users.
    pub cert_fingerprint: Option<&'a str>,
    /// Its address.
    pub source_ip: IpAddr,
    /// The operation.
    pub operation: Operation,
    /// API group of the object ("" for core).
    pub group: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// The subresource written (`scale`), if any.
    pub subresource: Option<&'a str>,
    /// Its namespace.
    pub namespace: Option<&'a str>,
    /// Its name.
    pub name: &'a str,
    /// The object after the write (None for delete).
    pub object: Option<&'a Value>,
    /// The object before it (update, delete).
    pub old_object: Option<&'a Value>,
    /// The labels of its namespace (the entities' tags).
    pub namespace_labels: &'a [(String, String)],
    /// Whether this is a dry run.
    pub dry_run: bool,
}

/// One policy that forbade the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The policy id.
    pub policy: String,
    /// Its mode.
    pub mode: Mode,
    /// Its `@reason`, or why it could not be evaluated.
    pub reason: String,
    /// What it was about: `the object`, `pod template`, `container "app"`, …
    pub subjects: Vec<String>,
    /// The `CedarPolicy` object it came from.
    pub source: String,
}

impl Finding {
    /// `policy (subjects): reason`, the text users see.
    pub fn message(&self) -> String {
        format!(
            "{} ({}): {}",
            self.policy,
            self.subjects.join(", "),
            self.reason
        )
    }
}

/// What admission says about a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Enforced policies that forbade it: the write is denied when any.
    pub denied: Vec<Finding>,
    /// Warn-mode hits.
    pub warnings: Vec<Finding>,
    /// Audit-mode hits.
    pub audited: Vec<Finding>,
}

impl Verdict {
    /// Whether the write is admitted.
    pub fn admitted(&self) -> bool {
        self.denied.is_empty()
    }

    /// The denial message: every enforced policy, with its subjects and reason.
    pub fn denial_message(&self) -> String {
        let parts: Vec<String> = self.denied.iter().map(Finding::message).collect();
        format!("denied by admission policy: {}", parts.join("; "))
    }

    /// The `Warning` header texts for warn-mode hits.
    pub fn warning_messages(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|f| format!("admission policy {}", f.message()))
            .collect()
    }
}

#[derive(Debug, Clone)]
struct PolicyInfo {
    mode: Mode,
    reason: String,
    source: String,
}

/// An admitted kind's entity type, its record in the object model, and where its pod
/// template is.
struct KindType {
    entity: EntityTypeName,
    record: usize,
    pod_template: Option<&'static str>,
}

/// Entity type names used per write, parsed once.
struct Types {
    /// By group, then kind.
    kinds: HashMap<String, HashMap<String, KindType>>,
    workload: EntityTypeName,
    container: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    fn kind(&self, group: &str, kind: &str) -> Option<&KindType> {
        self.kinds.get(group).and_then(|kinds| kinds.get(kind))
    }
}

fn parse_type(name: &str) -> Result<EntityTypeName, AdmissionError> {
    EntityTypeName::from_str(name).map_err(|e| AdmissionError::Model(format!("{name}: {e}")))
}

/// What writes are evaluated with: the object model of the admitted kinds (from the API
/// server's registry) and their Cedar entity type names, parsed once and shared by every
/// snapshot.
pub struct AdmissionModel {
    objects: ObjectModel,
    types: Types,
}

impl std::fmt::Debug for AdmissionModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionModel")
            .field("kinds", &self.objects.kinds.len())
            .finish_non_exhaustive()
    }
}

impl AdmissionModel {
    /// Models the kinds `source` registers.
    pub fn build(source: &dyn KindSchemas) -> Result<Arc<Self>, AdmissionError> {
        let objects = ObjectModel::build(source)?;
        let mut kinds: HashMap<String, HashMap<String, KindType>> = HashMap::new();
        for kind in &objects.kinds {
            kinds.entry(kind.group.clone()).or_default().insert(
                kind.kind.clone(),
                KindType {
                    entity: parse_type(&kind.entity_type(&objects))?,
                    record: kind.record,
                    pod_template: kind.pod_template,
                },
            );
        }
        let types = Types {
            kinds,
            workload: parse_type("k8s::admission::Workload")?,
            container: parse_type("k8s::admission::Container")?,
            action: parse_type("k8s::admission::Action")?,
        };
        Ok(Arc::new(Self { objects, types }))
    }

    /// The object model (what the Cedar object schema is rendered from).
    pub fn objects(&self) -> &ObjectModel {
        &self.objects
    }

    /// Builds every entity of `input` (the object, its old object, its pod views) as a review
    /// would, checked by Cedar against `schema` when one is given; the number of resources a
    /// policy would be evaluated on. Reviews skip the check (it costs more than evaluating);
    /// this is how tests prove that what a policy is given matches the schema it was
    /// validated against, for every kind of a registry.
    pub fn conforming_entities(
        &self,
        input: &AdmissionInput<'_>,
        schema: Option<&cedar_policy::Schema>,
    ) -> Result<usize, AdmissionError> {
        let kind_type = self
            .types
            .kind(input.group, input.kind)
            .ok_or_else(|| AdmissionError::Model(format!("{} is not modelled", input.kind)))?;
        let all = Wanted {
            object: true,
            workload: true,
            containers: true,
        };
        Ok(build_entities(input, kind_type, self, all, schema)?
            .resources
            .len())
    }
}

/// The admission policies in force: immutable, built whole, swapped atomically.
pub struct AdmissionSnapshot {
    /// Policies by the resource type their scope names (unscoped ones are in every bucket).
    by_type: HashMap<EntityTypeName, PolicySet>,
    /// Policies whose scope names no type.
    unscoped: PolicySet,
    info: HashMap<String, PolicyInfo>,
    sources: HashMap<String, (Arc<CompiledPolicies>, Mode)>,
    authorizer: Authorizer,
    model: Arc<AdmissionModel>,
}

impl std::fmt::Debug for AdmissionSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionSnapshot")
            .field("policies", &self.info.len())
            .finish_non_exhaustive()
    }
}

fn scoped_type(policy: &Policy) -> Option<EntityTypeName> {
    match policy.resource_constraint() {
        ResourceConstraint::Any => None,
        ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => Some(t),
        ResourceConstraint::Eq(uid) => Some(uid.type_name().clone()),
        // `in` an entity also matches its descendants (containers are in their workload).
        ResourceConstraint::In(_) => None,
    }
}

fn add(set: &mut PolicySet, policy: &Policy) -> Result<(), AdmissionError> {
    set.add(policy.clone())
        .map_err(|e| AdmissionError::Request(e.to_string()))
}

impl AdmissionSnapshot {
    /// Builds a snapshot from admission `sources`, in order. A source whose `@id`s collide
    /// with an earlier one's, or that is not an admission source, is skipped and reported.
    pub fn build(
        model: &Arc<AdmissionModel>,
        sources: &[(Arc<CompiledPolicies>, Mode)],
    ) -> Result<(Self, Vec<Skipped>), AdmissionError> {
        let mut skipped = Vec::new();
        let mut info: HashMap<String, PolicyInfo> = HashMap::new();
        let mut in_force = HashMap::new();
        let mut scoped: HashMap<EntityTypeName, Vec<Policy>> = HashMap::new();
        let mut unscoped = PolicySet::new();
        for (source, mode) in sources {
            let skip = if in_force.contains_key(&source.name) {
                Some("another source has the same name".to_owned())
            } else if source.kind != PolicyKind::Admission {
                Some("authorization policies do not admit writes".to_owned())
            } else {
                source.ids().into_iter().find_map(|id| {
                    info.get(&id).map(|owner| {
                        format!(
                            "@id(\"{id}\") is already used by CedarPolicy {}",
                            owner.source
                        )
                    })
                })
            };
            if let Some(reason) = skip {
                skipped.push(Skipped {
                    name: source.name.clone(),
                    reason,
                });
                continue;
            }
            for policy in source.policies.policies() {
                info.insert(
                    policy.id().to_string(),
                    PolicyInfo {
                        mode: *mode,
                        reason: policy
                            .annotation("reason")
                            .unwrap_or("(no @reason given)")
                            .to_owned(),
                        source: source.name.clone(),
                    },
                );
                match scoped_type(policy) {
                    Some(t) => scoped.entry(t).or_default().push(policy.clone()),
                    None => add(&mut unscoped, policy)?,
                }
            }
            in_force.insert(source.name.clone(), (Arc::clone(source), *mode));
        }
        let mut by_type = HashMap::new();
        for (t, policies) in scoped {
            let mut set = unscoped.clone();
            for policy in &policies {
                add(&mut set, policy)?;
            }
            by_type.insert(t, set);
        }
        Ok((
            Self {
                by_type,
                unscoped,
                info,
                sources: in_force,
                authorizer: Authorizer::new(),
                model: Arc::clone(model),
            },
            skipped,
        ))
    }

    /// An empty snapshot: everything is admitted.
    pub fn empty(model: &Arc<AdmissionModel>) -> Self {
        Self {
            by_type: HashMap::new(),
            unscoped: PolicySet::new(),
            info: HashMap::new(),
            sources: HashMap::new(),
            authorizer: Authorizer::new(),
            model: Arc::clone(model),
        }
    }

    /// The sources in force, by name, with their modes.
    pub fn sources(&self) -> &HashMap<String, (Arc<CompiledPolicies>, Mode)> {
        &self.sources
    }

    /// Reviews one write. A write that cannot be expressed in Cedar while enforced policies
    /// exist is denied: admission fails closed.
    pub fn review(&self, input: &AdmissionInput<'_>) -> Verdict {
        if self.info.is_empty() {
            return Verdict::default();
        }
        match self.evaluate(input) {
            Ok(verdict) => verdict,
            Err(e) => Verdict {
                denied: vec![Finding {
                    policy: "admission".into(),
                    mode: Mode::Enforce,
                    reason: format!("the write could not be evaluated, so it is denied: {e}"),
                    subjects: vec!["the object".into()],
                    source: String::new(),
                }],
                ..Verdict::default()
            },
        }
    }

    fn evaluate(&self, input: &AdmissionInput<'_>) -> Result<Verdict, AdmissionError> {
        let types = &self.model.types;
        let Some(kind_type) = types.kind(input.group, input.kind) else {
            // Not an admitted kind (policy objects, custom resources): nothing to evaluate.
            return Ok(Verdict::default());
        };
        // Unchecked: the model renders the schema, and `entities_conform_to_the_schema` checks
        // the conversion against it (the check costs more than the evaluation).
        let wanted = Wanted {
            object: self.applies_to(&kind_type.entity),
            containers: self.applies_to(&types.container),
            workload: self.applies_to(&types.workload),
        };
        let runs_pods = kind_type.pod_template.is_some();
        if !wanted.object && !(runs_pods && (wanted.workload || wanted.containers)) {
            // No policy in force can apply to this write: skip building anything.
            return Ok(Verdict::default());
        }
        let built = build_entities(input, kind_type, &self.model, wanted, None)?;
        let action = EntityUid::from_type_name_and_id(
            types.action.clone(),
            EntityId::new(input.operation.action()),
        );
        let mut context = context_pairs(input.auth_method, input.cert_fingerprint, input.source_ip);
        context.push((
            "dryRun".into(),
            RestrictedExpression::new_bool(input.dry_run),
        ));
        if let Some(sub) = input.subresource {
            context.push((
                "subresource".into(),
                RestrictedExpression::new_string(sub.to_owned()),
            ));
        }
        let context =
            Context::from_pairs(context).map_err(|e| AdmissionError::Request(e.to_string()))?;
        // policy id → subjects it hit; errors separately.
        let mut hits: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut errors: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
        for (resource, subject) in &built.resources {
            let set = self
                .by_type
                .get(resource.type_name())
                .unwrap_or(&self.unscoped);
            if set.is_empty() {
                continue;
            }
            let request = Request::new(
                built.principal.clone(),
                action.clone(),
                resource.clone(),
                context.clone(),
                None,
            )
            .map_err(|e| AdmissionError::Request(e.to_string()))?;
            let response = self
                .authorizer
                .is_authorized(&request, set, &built.entities);
            for id in response.diagnostics().reason() {
                hits.entry(id.to_string())
                    .or_default()
                    .push(subject.clone());
            }
            for error in response.diagnostics().errors() {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(error) = error;
                let entry = errors
                    .entry(error.policy_id().to_string())
                    .or_insert_with(|| (Vec::new(), error.inner().to_string()));
                entry.0.push(subject.clone());
            }
        }
        let mut verdict = Verdict::default();
        let findings = hits
            .into_iter()
            .map(|(id, subjects)| (id, subjects, None))
            .chain(
                errors
                    .into_iter()
                    .map(|(id, (subjects, e))| (id, subjects, Some(e))),
            );
        for (id, subjects, error) in findings {
            let Some(info) = self.info.get(&id) else {
                continue;
            };
            let reason = match error {
                Some(e) => format!("the policy could not be evaluated, which counts as a hit: {e}"),
                None => info.reason.clone(),
            };
            let finding = Finding {
                policy: id,
                mode: info.mode,
                reason,
                subjects,
                source: info.source.clone(),
            };
            match info.mode {
                Mode::Enforce => verdict.denied.push(finding),
                Mode::Warn => verdict.warnings.push(finding),
                Mode::Audit => verdict.audited.push(finding),
            }
        }
        Ok(verdict)
    }

    /// Whether any policy can apply to resources of type `t` (else its entities are not
    /// built: converting a pod costs more than evaluating it).
    fn applies_to(&self, t: &EntityTypeName) -> bool {
        !self.unscoped.is_empty() || self.by_type.get(t).is_some_and(|s| !s.is_empty())
    }

    /// The policy ids in force.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.info.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// The entities of one write and the resources to evaluate, each with the subject it is
/// reported as.
struct Built {
    principal: EntityUid,
    entities: Entities,
    resources: Vec<(EntityUid, String)>,
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn tags(labels: &[(String, String)]) -> Vec<(String, RestrictedExpression)> {
    labels.iter().map(|(k, v)| (k.clone(), string(v))).collect()
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(String, RestrictedExpression)>,
    parents: HashSet<EntityUid>,
    labels: &[(String, String)],
) -> Result<Entity, AdmissionError> {
    Entity::new_with_tags(uid, attrs, parents, tags(labels))
        .map_err(|e| AdmissionError::Request(e.to_string()))
}

fn uid(t: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
}

fn pod_spec_changed(input: &AdmissionInput<'_>, template: &str) -> bool {
    let new = input.object.and_then(|o| pod_view(template, o));
    let old = input.old_object.and_then(|o| pod_view(template, o));
    match (input.operation, new, old) {
        (Operation::Create, Some(_), _) => true,
        (Operation::Update, Some(new), Some(old)) => new != old,
        (Operation::Update, Some(_), None) => true,
        _ => false,
    }
}

/// Which entities a write needs, from the types the policies in force name.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    /// The object (and old object).
    object: bool,
    /// The pod security view of the workload.
    workload: bool,
    /// Its containers (which refer to the workload).
    containers: bool,
}

fn build_entities(
    input: &AdmissionInput<'_>,
    kind_type: &KindType,
    model: &AdmissionModel,
    wanted: Wanted,
    schema: Option<&cedar_policy::Schema>,
) -> Result<Built, AdmissionError> {
    let types = &model.types;
    let model = &model.objects;
    let kind = model
        .records
        .get(kind_type.record)
        .ok_or_else(|| AdmissionError::Model(format!("no model of {}", input.kind)))?;
    let principal = Principal::of(input.user, input.groups)?;
    let mut entities = principal.entities;
    let mut resources = Vec::new();
    let id = format!("{}/{}", input.namespace.unwrap_or_default(), input.name);
    let labels = input.namespace_labels;

    let old_uid = match input
        .old_object
        .filter(|_| wanted.object)
        .and_then(Value::as_object)
    {
        Some(old) => {
            let old_uid = uid(&kind_type.entity, &format!("{id}#old"));
            entities.push(entity(
                old_uid.clone(),
                attributes(model, &kind.fields, old),
                HashSet::new(),
                labels,
            )?);
            Some(old_uid)
        }
        None => None,
    };
    let subject_object = match input.operation {
        Operation::Delete => input.old_object,
        _ => input.object,
    };
    if let Some(object) = subject_object
        .filter(|_| wanted.object)
        .and_then(Value::as_object)
    {
        let object_uid = uid(&kind_type.entity, &id);
        let mut attrs = attributes(model, &kind.fields, object);
        if let Some(old) = &old_uid {
            attrs.push((
                "oldObject".into(),
                RestrictedExpression::new_entity_uid(old.clone()),
            ));
        }
        entities.push(entity(object_uid.clone(), attrs, HashSet::new(), labels)?);
        resources.push((object_uid, "the object".to_owned()));
    }

    let view = kind_type.pod_template.and_then(|template| {
        input
            .object
            .filter(|_| (wanted.workload || wanted.containers) && pod_spec_changed(input, template))
            .and_then(|o| pod_view(template, o))
    });
    if let Some(view) = view {
        let spec_type = model
            .record_index(crate::object_model::WORKLOAD_SPEC)
            .ok_or_else(|| AdmissionError::Model("no workload spec type".into()))?;
        let meta_type = model
            .record_index("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .ok_or_else(|| AdmissionError::Model("no ObjectMeta type".into()))?;
        let container_type = model
            .record("io.k8s.api.core.v1.Container")
            .ok_or_else(|| AdmissionError::Model("no Container type".into()))?;
        let empty = Value::Object(serde_json::Map::new());
        let workload_uid = uid(&types.workload, &id);
        let namespace = input.namespace.unwrap_or_default();
        let set =
            |items: Vec<String>| RestrictedExpression::new_set(items.iter().map(|s| string(s)));
        let workload_attrs = vec![
            ("kind".to_owned(), string(input.kind)),
            ("name".to_owned(), string(input.name)),
            ("namespace".to_owned(), string(namespace)),
            (
                "metadata".to_owned(),
                value(
                    model,
                    &FieldType::Record(meta_type),
                    view.metadata.unwrap_or(&empty),
                )
                .ok_or_else(|| {
                    AdmissionError::Request("the pod metadata is not an object".into())
                })?,
            ),
            (
                "spec".to_owned(),
                value(model, &FieldType::Record(spec_type), view.spec).ok_or_else(|| {
                    AdmissionError::Request("the pod spec is not an object".into())
                })?,
            ),
            ("volumeTypes".to_owned(), set(volume_types(view.spec))),
            ("sysctlNames".to_owned(), set(sysctl_names(view.spec))),
        ];
        entities.push(entity(
            workload_uid.clone(),
            workload_attrs,
            HashSet::new(),
            labels,
        )?);
        let subject = if (input.group, input.kind) == ("", "Pod") {
            "pod".to_owned()
        } else {
            "pod template".to_owned()
        };
        resources.push((workload_uid.clone(), subject));
        for (list, container_kind) in CONTAINER_LISTS {
            for (i, container) in view
                .spec
                .get(*list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let container = container_with_annotations(view.metadata, container);
                let Some(map) = container.as_object() else {
                    continue;
                };
                let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
                let mut attrs = attributes(model, &container_type.fields, map);
                attrs.push(("containerType".into(), string(container_kind)));
                attrs.push(("namespace".into(), string(namespace)));
                attrs.push((
                    "workload".into(),
                    RestrictedExpression::new_entity_uid(workload_uid.clone()),
                ));
                attrs.push((
                    "hostPorts".into(),
                    RestrictedExpression::new_set(
                        host_ports(&container)
                            .into_iter()
                            .map(RestrictedExpression::new_long),
                    ),
                ));
                let container_uid = uid(&types.container, &format!("{id}/{list}/{i}"));
                entities.push(entity(
                    container_uid.clone(),
                    attrs,
                    HashSet::from([workload_uid.clone()]),
                    labels,
                )?);
                resources.push((container_uid, format!("{container_kind} {name:?}")));
            }
        }
    }
    let entities = Entities::from_entities(entities, schema)
        .map_err(|e| AdmissionError::Request(e.to_string()))?;
    Ok(Built {
        principal: principal.uid,
        entities,
        resources,
    })
}

/// Reviews writes with the admission snapshot in force, replaced atomically on reload.
pub struct AdmissionEngine {
    snapshot: ArcSwap<AdmissionSnapshot>,
    model: Arc<AdmissionModel>,
}

impl std::fmt::Debug for AdmissionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionEngine").finish_non_exhaustive()
    }
}

impl AdmissionEngine {
    /// An engine over `model` with no policies in force yet (everything is admitted).
    pub fn new(model: Arc<AdmissionModel>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(AdmissionSnapshot::empty(&model)),
            model,
        }
    }

    /// The model snapshots for this engine are built with.
    pub fn model(&self) -> &Arc<AdmissionModel> {
        &self.model
    }

    /// Puts `snapshot` in force.
    pub fn install(&self, snapshot: AdmissionSnapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<AdmissionSnapshot> {
        self.snapshot.load_full()
    }

    /// Reviews one write.
    pub fn review(&self, input: &AdmissionInput<'_>) -> Verdict {
        self.snapshot.load().review(input)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code"
    )]
    use super::*;
    use serde_json::json;

    fn input<'a>(
        group: &'a str,
        kind: &'a str,
        object: &'a Value,
        old: Option<&'a Value>,
        labels: &'a [(String, String)],
    ) -> AdmissionInput<'a> {
        AdmissionInput {
            user: "system:serviceaccount:team-a:deployer",
            groups: &[],
            auth_method: "serviceaccount-token",
            cert_fingerprint: None,
            source_ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            group,
            kind,
            subresource: None,
            namespace: Some("team-a"),
            name: "x",
            object: Some(object),
            old_object: old,
            namespace_labels: labels,
            dry_run: false,
        }
    }

    /// Objects with every kind of field (maps, int-or-string, quantities, nested lists,
    /// dates) become entities that Cedar's own checker accepts against the checked-in schema.
    #[test]
    fn entities_conform_to_the_schema() {
        let schema = bulwark_policies::schema::schema_for(PolicyKind::Admission).unwrap();
        let model = crate::test_kinds::model();
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "namespace": "team-a", "labels": {"app": "web"}, "annotations": {"a": "b"},
                          "creationTimestamp": "2026-01-01T00:00:00Z", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u"}]},
            "spec": {
                "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c"], "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 1}},
                    "livenessProbe": {"httpGet": {"port": "http", "path": "/"}},
                    "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": 1000}}],
                "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "app"}],
                "volumes": [{"name": "v", "hostPath": {"path": "/"}}],
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let labels = [("env".to_owned(), "prod".to_owned())];
        let mut old = pod.clone();
        old["spec"]["containers"][0]["image"] = json!("busybox:old");
        let i = input("", "Pod", &pod, Some(&old), &labels);
        let built = model.conforming_entities(&i, Some(schema));
        assert_eq!(
            built.unwrap_or_else(|e| panic!("{e}")),
            4,
            "object, pod view, two containers"
        );
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        });
        let i = input("apps", "Deployment", &deployment, None, &[]);
        let built = model.conforming_entities(&i, Some(schema));
        assert_eq!(built.unwrap_or_else(|e| panic!("{e}")), 3);
        let unmodelled = input("example.com", "Widget", &deployment, None, &[]);
        assert!(model.conforming_entities(&unmodelled, None).is_err());
    }

    fn snapshot(text: &str, mode: Mode) -> AdmissionSnapshot {
        let compiled = Arc::new(CompiledPolicies::compile_admission("test", text).unwrap());
        let (snapshot, skipped) =
            AdmissionSnapshot::build(&crate::test_kinds::model(), &[(compiled, mode)]).unwrap();
        assert!(skipped.is_empty());
        snapshot
    }

    const NO_PROD_LABEL: &str = r#"
        @id("no-prod-configmaps") @reason("configmaps may not say env=prod")
        forbid (principal, action == k8s::admission::Action::"create", resource is k8s::core::v1::ConfigMap)
        when { resource.metadata has labels && resource.metadata.labels.entries.contains({"key": "env", "value": "prod"}) };
        @id("keep-owner") @reason("the owner label may not be removed")
        forbid (principal, action == k8s::admission::Action::"update", resource is k8s::core::v1::ConfigMap)
        when { resource has oldObject && resource.oldObject.metadata has labels && resource.oldObject.metadata.labels.keys.contains("owner")
               && !(resource.metadata has labels && resource.metadata.labels.keys.contains("owner")) };
    "#;

    #[test]
    fn modes_decide_what_a_hit_does() {
        let cm = json!({"metadata": {"name": "x", "labels": {"env": "prod"}}});
        let clean = json!({"metadata": {"name": "x", "labels": {"env": "dev"}}});
        for (mode, admitted) in [
            (Mode::Enforce, false),
            (Mode::Warn, true),
            (Mode::Audit, true),
        ] {
            let s = snapshot(NO_PROD_LABEL, mode);
            let verdict = s.review(&input("", "ConfigMap", &cm, None, &[]));
            assert_eq!(verdict.admitted(), admitted, "{mode:?}");
            let hits = verdict.denied.len() + verdict.warnings.len() + verdict.audited.len();
            assert_eq!(hits, 1);
            assert_eq!(
                s.review(&input("", "ConfigMap", &clean, None, &[])),
                Verdict::default()
            );
        }
        let warn =
            snapshot(NO_PROD_LABEL, Mode::Warn).review(&input("", "ConfigMap", &cm, None, &[]));
        assert_eq!(
            warn.warning_messages(),
            ["admission policy no-prod-configmaps (the object): configmaps may not say env=prod"]
        );
    }

    #[test]
    fn old_objects_are_visible_on_update() {
        let s = snapshot(NO_PROD_LABEL, Mode::Enforce);
        let old = json!({"metadata": {"name": "x", "labels": {"owner": "a"}}});
        let kept = json!({"metadata": {"name": "x", "labels": {"owner": "a", "more": "b"}}});
        let dropped = json!({"metadata": {"name": "x"}});
        assert!(
            s.review(&input("", "ConfigMap", &kept, Some(&old), &[]))
                .admitted()
        );
        let verdict = s.review(&input("", "ConfigMap", &dropped, Some(&old), &[]));
        assert_eq!(
            verdict.denied.first().map(|f| f.policy.as_str()),
            Some("keep-owner")
        );
    }

    #[test]
    fn a_policy_that_errors_denies_in_enforce_mode() {
        // Validation cannot rule out every runtime error; an overflow is one.
        let text = r#"@id("overflow") forbid (principal, action, resource is k8s::core::v1::ConfigMap)
            when { 9223372036854775807 + (if resource.metadata has name then 1 else 0) > 0 };"#;
        let s = snapshot(text, Mode::Enforce);
        let verdict = s.review(&input(
            "",
            "ConfigMap",
            &json!({"metadata": {"name": "x"}}),
            None,
            &[],
        ));
        assert!(!verdict.admitted());
        assert!(
            verdict.denial_message().contains("could not be evaluated"),
            "{}",
            verdict.denial_message()
        );
    }

    #[test]
    fn policy_objects_and_unknown_kinds_are_not_admitted_through_cedar() {
        let s = snapshot(
            r#"@id("all") forbid (principal, action, resource);"#,
            Mode::Enforce,
        );
        let any = json!({"metadata": {"name": "x"}});
        assert!(
            s.review(&input("policy.bulwark.dev", "CedarPolicy", &any, None, &[]))
                .admitted()
        );
        assert!(
            s.review(&input("example.com", "Widget", &any, None, &[]))
                .admitted()
        );
        assert!(
            !s.review(&input("", "ConfigMap", &any, None, &[]))
                .admitted()
        );
    }

    #[test]
    fn colliding_ids_skip_the_later_source() {
        let a = Arc::new(
            CompiledPolicies::compile_admission(
                "a",
                r#"@id("x") forbid (principal, action, resource);"#,
            )
            .unwrap(),
        );
        let b = Arc::new(
            CompiledPolicies::compile_admission(
                "b",
                r#"@id("x") forbid (principal, action, resource);"#,
            )
            .unwrap(),
        );
        let (s, skipped) = AdmissionSnapshot::build(
            &crate::test_kinds::model(),
            &[(a, Mode::Enforce), (b, Mode::Warn)],
        )
        .unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped.first().unwrap().name, "b");
        assert_eq!(s.policy_ids(), ["x"]);
    }

    #[test]
    fn permits_are_refused() {
        let err = CompiledPolicies::compile_admission(
            "p",
            r#"@id("p") permit (principal, action, resource);"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("may only forbid"), "{err}");
    }
}
