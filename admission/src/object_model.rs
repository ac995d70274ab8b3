//! The typed shape of every served built-in kind as Cedar sees it, derived from the JSON
//! schemas of the types the API server's registry names ([`KindSchemas`]). The same model renders the Cedar schema that admission policies
//! are validated against ([`render_schema`], checked in as
//! `policies/cedar/k8s-objects.cedarschema`) and converts objects into entity attributes
//! ([`crate::object_entity`]), so a policy that validates reads exactly what it is given.
//!
//! JSON → Cedar: strings (also dates, quantities and int-or-string) are `String`, integers
//! `Long`, booleans `Bool`, lists `Set`, objects records. String maps (labels, annotations,
//! nodeSelector, …) are records `{keys: Set<String>, entries: Set<{key, value}>}` so a policy
//! can ask for a key or a key/value pair. Opaque JSON (`managedFields`, raw extensions) and
//! secret values (`Secret.data`, `Secret.stringData`) are left out.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use bulwark_api::k8s_openapi::schemars::generate::SchemaSettings;
use bulwark_api::k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::AdmissionError;
use crate::workload::CONTAINER_LISTS;

/// Fields never handed to policies: opaque bookkeeping and secret material.
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "managedFields",
    ),
    ("io.k8s.api.core.v1.Secret", "data"),
    ("io.k8s.api.core.v1.Secret", "stringData"),
];

/// The model's name for the pod security view's spec (`k8s::admission::PodSpec`).
pub const WORKLOAD_SPEC: &str = "bulwark.admission.PodSpec";

/// Groups whose kinds are not admitted through Cedar: the policy objects themselves (so an
/// admission policy can never lock policy management out) and the unstored access reviews.
const NOT_ADMITTED: &[&str] = &[
    "policy.bulwark.dev",
    "authorization.k8s.io",
    // PostureExceptions are validated by their kind (and authorized by Cedar): like policy
    // objects, they stay outside admission policies so none can lock risk acceptance out.
    "posture.bulwark.dev",
    // Policy reports are engines' output (the posture scanner's among them, written by the
    // server itself); a workload policy has nothing to judge in them.
    "wgpolicyk8s.io",
];

/// How one field is represented in Cedar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// `String`.
    String,
    /// `Long`.
    Long,
    /// `Bool`.
    Bool,
    /// `Set<T>` (a JSON list).
    Set(Box<FieldType>),
    /// A record type, by index into [`ObjectModel::records`].
    Record(usize),
    /// A string-keyed map: `{keys: Set<String>, entries: Set<{key: String, value: T}>}`.
    Map(Box<FieldType>),
}

/// One record field.
#[derive(Debug, Clone)]
pub struct Field {
    /// The JSON (and Cedar attribute) name.
    pub name: String,
    /// Its type.
    pub ty: FieldType,
    /// Whether the upstream type requires it.
    pub required: bool,
}

/// A named record type (one upstream definition).
#[derive(Debug, Clone)]
pub struct RecordType {
    /// The upstream definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: String,
    /// The Cedar namespace, e.g. `k8s::core::v1`.
    pub namespace: String,
    /// The Cedar type name within it, e.g. `PodSpec`.
    pub name: String,
    /// Its fields, sorted by name.
    pub fields: Vec<Field>,
    /// Field index by name.
    by_name: HashMap<String, usize>,
}

impl RecordType {
    /// The fully qualified Cedar name.
    pub fn cedar_name(&self) -> String {
        format!("{}::{}", self.namespace, self.name)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.by_name.get(name).and_then(|i| self.fields.get(*i))
    }
}

/// One kind admission policies see as an entity type.
#[derive(Debug, Clone)]
pub struct KindModel {
    /// API group ("" for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// The kind's record (its entity attributes).
    pub record: usize,
    /// Where its pod template is ([`KindSchema::pod_template`]).
    pub pod_template: Option<&'static str>,
}

impl KindModel {
    /// The Cedar entity type name, e.g. `k8s::apps::v1::Deployment`.
    pub fn entity_type(&self, model: &ObjectModel) -> String {
        model
            .records
            .get(self.record)
            .map(|r| format!("{}::{}", r.namespace, self.kind))
            .unwrap_or_default()
    }
}

/// Every admitted kind and the record types they use.
#[derive(Debug, Clone)]
pub struct ObjectModel {
    /// Record types; [`FieldType::Record`] indexes here.
    pub records: Vec<RecordType>,
    /// The admitted kinds.
    pub kinds: Vec<KindModel>,
    by_definition: HashMap<String, usize>,
}

/// One kind to model, as its source registered it with a [`SchemaGenerator`].
#[derive(Debug, Clone)]
pub struct KindSchema {
    /// API group ("" for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// The name of the definition its JSON schema was registered under.
    pub definition: String,
    /// The JSON pointer of the pod template its objects stamp out ("" for a Pod; None: it
    /// runs no pods), where the pod security views are taken from.
    pub pod_template: Option<&'static str>,
}

/// Where the kinds admission models come from: the API server's resource registry (each
/// kind's strategy knows its type), so a kind is declared once, where it is served. Test code
/// uses a [`KindSource`] list.
pub trait KindSchemas {
    /// Registers the schema of every kind to model with `generator` (OpenAPI 3 settings).
    fn register(&self, generator: &mut SchemaGenerator) -> Vec<KindSchema>;
}

/// A kind and the function that registers its type's schema: a fixed list of these is a
/// [`KindSchemas`] (for tests, benches and tools without a registry).
#[derive(Debug, Clone, Copy)]
pub struct KindSource {
    /// API group ("" for core).
    pub group: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Registers the type's schema; its definition name.
    pub register: fn(&mut SchemaGenerator) -> String,
    /// Where its pod template is ([`KindSchema::pod_template`]).
    pub pod_template: Option<&'static str>,
}

impl KindSchemas for &[KindSource] {
    fn register(&self, generator: &mut SchemaGenerator) -> Vec<KindSchema> {
        self.iter()
            .map(|source| KindSchema {
                group: source.group.to_owned(),
                kind: source.kind.to_owned(),
                definition: (source.register)(generator),
                pod_template: source.pod_template,
            })
            .collect()
    }
}

/// Registers `T`'s schema with `generator`; its definition name (a [`KindSource::register`]).
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The Cedar namespace and name of an upstream definition, if it is a record type.
fn cedar_path(definition: &str) -> Option<(String, String)> {
    let rest = definition
        .strip_prefix("io.k8s.api.")
        .or_else(|| definition.strip_prefix("io.k8s.apimachinery.pkg.apis."))?;
    let mut parts: Vec<&str> = rest.split('.').collect();
    let name = parts.pop()?;
    if parts.len() != 2 {
        return None;
    }
    Some((format!("k8s::{}", parts.join("::")), name.to_owned()))
}

/// Builds a model from JSON schemas (`definitions`: name → schema).
struct Builder<'a> {
    definitions: &'a Map<String, Value>,
    records: Vec<RecordType>,
    by_definition: HashMap<String, usize>,
    in_progress: Vec<String>,
}

impl Builder<'_> {
    fn definition_ref(schema: &Value) -> Option<&str> {
        let reference = schema.get("$ref").and_then(Value::as_str).or_else(|| {
            schema
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|all| all.first())
                .and_then(|first| first.get("$ref"))
                .and_then(Value::as_str)
        })?;
        reference.rsplit('/').next()
    }

    /// The type of a field schema; None: not representable (left out).
    fn field_type(&mut self, schema: &Value) -> Result<Option<FieldType>, AdmissionError> {
        if let Some(definition) = Self::definition_ref(schema) {
            let Some(target) = self.definitions.get(definition) else {
                return Ok(None);
            };
            if target.get("properties").is_some() {
                return Ok(self.record(definition)?.map(FieldType::Record));
            }
            return self.field_type(&target.clone());
        }
        if schema.get("x-kubernetes-int-or-string").is_some() {
            return Ok(Some(FieldType::String));
        }
        Ok(match schema.get("type").and_then(Value::as_str) {
            Some("string") | Some("number") => Some(FieldType::String),
            Some("integer") => Some(FieldType::Long),
            Some("boolean") => Some(FieldType::Bool),
            Some("array") => match schema.get("items") {
                Some(items) => self.field_type(items)?.map(|t| FieldType::Set(Box::new(t))),
                None => None,
            },
            Some("object") => match schema.get("additionalProperties") {
                Some(values) if values.is_object() => self
                    .field_type(values)?
                    .map(|t| FieldType::Map(Box::new(t))),
                _ => None,
            },
            _ => None,
        })
    }

    /// The record for `definition`, built on first use.
    fn record(&mut self, definition: &str) -> Result<Option<usize>, AdmissionError> {
        if let Some(index) = self.by_definition.get(definition) {
            return Ok(Some(*index));
        }
        let Some((namespace, name)) = cedar_path(definition) else {
            return Ok(None);
        };
        if self.in_progress.iter().any(|d| d == definition) {
            return Err(AdmissionError::Model(format!(
                "{definition} is recursive; Cedar records cannot be"
            )));
        }
        let Some(schema) = self.definitions.get(definition) else {
            return Ok(None);
        };
        self.in_progress.push(definition.to_owned());
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (field, field_schema) in &properties {
            if LEFT_OUT.contains(&(definition, field.as_str())) {
                continue;
            }
            if let Some(ty) = self.field_type(field_schema)? {
                fields.push(Field {
                    name: field.clone(),
                    ty,
                    required: required.contains(&field.as_str()),
                });
            }
        }
        self.in_progress.pop();
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let index = self.records.len();
        self.records.push(RecordType {
            definition: definition.to_owned(),
            namespace,
            name,
            fields,
            by_name,
        });
        self.by_definition.insert(definition.to_owned(), index);
        Ok(Some(index))
    }
}

impl ObjectModel {
    /// Builds the model of the kinds `source` registers (the policy objects, posture exceptions and the access
    /// reviews are left out: they are never admitted through Cedar).
    pub fn build(source: &dyn KindSchemas) -> Result<Self, AdmissionError> {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let kinds = source.register(&mut generator);
        let definitions: Map<String, Value> = generator.take_definitions(true);
        let mut builder = Builder {
            definitions: &definitions,
            records: Vec::new(),
            by_definition: HashMap::new(),
            in_progress: Vec::new(),
        };
        let mut kind_models = Vec::new();
        for KindSchema {
            group,
            kind,
            definition,
            pod_template,
        } in kinds
        {
            if NOT_ADMITTED.contains(&group.as_str()) {
                continue;
            }
            let record = builder.record(&definition)?.ok_or_else(|| {
                AdmissionError::Model(format!("{definition} is not a record type"))
            })?;
            kind_models.push(KindModel {
                group,
                kind,
                record,
                pod_template,
            });
        }
        let mut records = builder.records;
        let mut by_definition = builder.by_definition;
        // The pod security view's spec: a PodSpec without its container lists (each container
        // is an entity of its own), so a pod's containers are converted once, not twice.
        let pod_spec = by_definition
            .get("io.k8s.api.core.v1.PodSpec")
            .and_then(|i| records.get(*i))
            .ok_or_else(|| AdmissionError::Model("no PodSpec type".into()))?;
        let fields: Vec<Field> = pod_spec
            .fields
            .iter()
            .filter(|f| !CONTAINER_LISTS.iter().any(|(list, _)| *list == f.name))
            .cloned()
            .collect();
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        by_definition.insert(WORKLOAD_SPEC.to_owned(), records.len());
        records.push(RecordType {
            definition: WORKLOAD_SPEC.to_owned(),
            namespace: "k8s::admission".to_owned(),
            name: "PodSpec".to_owned(),
            fields,
            by_name,
        });
        Ok(Self {
            records,
            kinds: kind_models,
            by_definition,
        })
    }

    /// The record of an upstream definition.
    pub fn record(&self, definition: &str) -> Option<&RecordType> {
        self.by_definition
            .get(definition)
            .and_then(|i| self.records.get(*i))
    }

    /// Index of an upstream definition's record.
    pub fn record_index(&self, definition: &str) -> Option<usize> {
        self.by_definition.get(definition).copied()
    }

    /// The admitted kind `group`/`kind`.
    pub fn kind(&self, group: &str, kind: &str) -> Option<&KindModel> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.kind == kind)
    }

    /// A type as Cedar schema text.
    pub fn type_text(&self, ty: &FieldType) -> String {
        match ty {
            FieldType::String => "String".into(),
            FieldType::Long => "Long".into(),
            FieldType::Bool => "Bool".into(),
            FieldType::Set(inner) => format!("Set<{}>", self.type_text(inner)),
            FieldType::Record(i) => self
                .records
                .get(*i)
                .map(RecordType::cedar_name)
                .unwrap_or_default(),
            FieldType::Map(inner) => format!(
                "{{ \"keys\": Set<String>, \"entries\": Set<{{ \"key\": String, \"value\": {} }}> }}",
                self.type_text(inner)
            ),
        }
    }

    /// A record's fields as Cedar schema attribute declarations (one per line).
    pub fn fields_text(&self, fields: &[Field], indent: &str) -> String {
        let mut out = String::new();
        for field in fields {
            let _ = writeln!(
                out,
                "{indent}{:?}{}: {},",
                field.name,
                if field.required { "" } else { "?" },
                self.type_text(&field.ty)
            );
        }
        out
    }
}

/// The entity types and actions admission adds beside the object records, in
/// `k8s::admission` (see [`crate::workload`] for what the pod views hold).
fn admission_namespace(model: &ObjectModel) -> Result<String, AdmissionError> {
    let container = model
        .record("io.k8s.api.core.v1.Container")
        .ok_or_else(|| AdmissionError::Model("no Container type".into()))?;
    let mut kinds: Vec<String> = model.kinds.iter().map(|k| k.entity_type(model)).collect();
    kinds.push("Workload".into());
    kinds.push("Container".into());
    let spec = model
        .record(WORKLOAD_SPEC)
        .ok_or_else(|| AdmissionError::Model("no workload spec type".into()))?;
    let mut out = String::new();
    out.push_str("// Pod security views and admission actions: see docs/policies.md.\n");
    out.push_str("namespace k8s::admission {\n");
    out.push_str(
        "  // A pod spec without its container lists: each container is a Container entity.\n",
    );
    out.push_str("  type PodSpec = {\n");
    out.push_str(&model.fields_text(&spec.fields, "    "));
    out.push_str("  };\n");
    out.push_str(
        "  // The pod a Pod is, or the pod template a workload (Deployment, Job, …) stamps out.\n",
    );
    out.push_str("  entity Workload = {\n");
    out.push_str("    \"kind\": String,\n    \"name\": String,\n    \"namespace\": String,\n");
    out.push_str("    \"metadata\": k8s::meta::v1::ObjectMeta,\n    \"spec\": PodSpec,\n");
    out.push_str("    \"volumeTypes\": Set<String>,\n    \"sysctlNames\": Set<String>,\n");
    out.push_str("  } tags String;\n");
    out.push_str("  // One container (init, regular or ephemeral) of a workload.\n");
    out.push_str("  entity Container in [Workload] = {\n");
    out.push_str(&model.fields_text(&container.fields, "    "));
    out.push_str("    \"containerType\": String,\n    \"namespace\": String,\n");
    out.push_str("    \"workload\": Workload,\n    \"hostPorts\": Set<Long>,\n");
    out.push_str("  } tags String;\n");
    out.push_str("  type Context = {\n    \"authMethod\": String,\n    \"certFingerprint\"?: String,\n    \"sourceIp\": ipaddr,\n    \"dryRun\": Bool,\n    \"subresource\"?: String,\n  };\n");
    let _ = writeln!(
        out,
        "  action \"create\", \"update\", \"delete\", \"connect\" appliesTo {{\n    principal: [k8s::User, k8s::ServiceAccount, k8s::Node],\n    resource: [{}],\n    context: Context,\n  }};",
        kinds.join(", ")
    );
    out.push_str("}\n");
    Ok(out)
}

/// The Cedar schema of every admitted kind, its record types, the pod views and the admission
/// actions. Deterministic, so it can be checked in and diffed.
pub fn render_schema(model: &ObjectModel) -> Result<String, AdmissionError> {
    let mut by_namespace: BTreeMap<&str, Vec<&RecordType>> = BTreeMap::new();
    for record in model
        .records
        .iter()
        .filter(|r| r.definition != WORKLOAD_SPEC)
    {
        by_namespace
            .entry(record.namespace.as_str())
            .or_default()
            .push(record);
    }
    let mut out = String::from(
        "// GENERATED from the built-in Kubernetes types (k8s-openapi) by the admission crate's\n\
         // object model; do not edit. Regenerate: BULWARK_WRITE_SCHEMA=1 cargo test -p bulwark-apiserver\n\
         // Each admitted kind is an entity type whose attributes are the object's fields, plus\n\
         // `oldObject` (on update and delete, the stored object). Tags: the namespace's labels.\n",
    );
    for (namespace, mut records) in by_namespace {
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let _ = writeln!(out, "namespace {namespace} {{");
        for record in records {
            let kind = model.kinds.iter().find(|k| {
                model
                    .records
                    .get(k.record)
                    .is_some_and(|r| r.definition == record.definition)
            });
            match kind {
                Some(kind) => {
                    let _ = writeln!(out, "  entity {} = {{", kind.kind);
                    out.push_str(&model.fields_text(&record.fields, "    "));
                    let _ = writeln!(out, "    \"oldObject\"?: {},", kind.kind);
                    out.push_str("  } tags String;\n");
                }
                None => {
                    let _ = writeln!(out, "  type {} = {{", record.name);
                    out.push_str(&model.fields_text(&record.fields, "    "));
                    out.push_str("  };\n");
                }
            }
        }
        out.push_str("}\n");
    }
    out.push_str(&admission_namespace(model)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
    use super::*;

    #[test]
    fn kinds_and_fields_are_modelled() {
        let model = crate::test_kinds::objects();
        assert!(model.kind("", "Pod").is_some());
        assert!(model.kind("apps", "Deployment").is_some());
        assert!(model.kind("policy.bulwark.dev", "CedarPolicy").is_none());
        let secret = model.record("io.k8s.api.core.v1.Secret").unwrap();
        assert!(secret.field("data").is_none() && secret.field("stringData").is_none());
        assert!(secret.field("type").is_some());
        let meta = model
            .record("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .unwrap();
        assert!(matches!(
            meta.field("labels").unwrap().ty,
            FieldType::Map(_)
        ));
        assert!(meta.field("managedFields").is_none());
        let port = model.record("io.k8s.api.core.v1.ContainerPort").unwrap();
        assert_eq!(port.field("hostPort").unwrap().ty, FieldType::Long);
        assert!(port.field("containerPort").unwrap().required);
    }
}
