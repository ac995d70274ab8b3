//! The field manager: who owns which fields of an object (`metadata.managedFields`, upstream's
//! format), kept on every write, and server-side apply on top of it.
//!
//! - Every create, update and patch (and their subresources) gives the writing manager (the
//!   `fieldManager` option, else the User-Agent's product name) the fields it changed, taken
//!   from every other manager; fields it removed leave every manager.
//! - An apply claims exactly the fields of the applied configuration. A field another manager
//!   owns whose value the apply would change is a conflict (409 naming manager and field)
//!   unless `force`, which moves the field to the applier. Fields the applier applied before
//!   and no longer applies are removed from the object, unless another manager owns them.
//! - Not tracked, as upstream: `apiVersion`, `kind`, the metadata the server owns (name,
//!   namespace, uid, resourceVersion, generation, timestamps, managedFields), and `status`
//!   through the main resource of a kind with a status subresource (only `status` through
//!   the subresource).
//! - Bounded work: every walk is linear in the object; client-sent `managedFields` are parsed
//!   strictly (400 when malformed) with a depth cap.

pub(crate) mod fieldset;
mod walk;

use bulwark_api::{Status, StatusCause, StatusReason};
use serde_json::{Map, Value, json};

use crate::http::error::ApiError;
use crate::registry::schema::SCHEMA;
use crate::registry::{ResourceDef, Subresource};
use fieldset::FieldSet;
use walk::{Shape, Walker};

/// Longest manager name upstream accepts.
const MAX_MANAGER_LEN: usize = 128;

/// The metadata the server owns: never anybody's field.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation.as_str(),
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.subresource.is_empty()
            && let Some(map) = entry.as_object_mut()
        {
            map.insert("subresource".into(), json!(self.subresource));
        }
        entry
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
        let manager = text("manager");
        if manager.len() > MAX_MANAGER_LEN {
            return Err(format!(
                "manager: Too long: may not be longer than {MAX_MANAGER_LEN}"
            ));
        }
        let operation = match text("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => {
                return Err(format!(
                    "operation: Unsupported value: {other:?}: supported values: \"Apply\", \"Update\""
                ));
            }
        };
        match value.get("fieldsType").and_then(Value::as_str) {
            Some("FieldsV1") => {}
            _ => return Err("fieldsType: Unsupported value: must be \"FieldsV1\"".into()),
        }
        let fields = FieldSet::from_fields_v1(value.get("fieldsV1").unwrap_or(&json!({})))
            .map_err(|e| format!("fieldsV1: {e}"))?;
        Ok(Self {
            manager: manager.to_owned(),
            operation,
            api_version: text("apiVersion").to_owned(),
            time: text("time").to_owned(),
            subresource: text("subresource").to_owned(),
            fields,
        })
    }
}

/// Reads `managedFields` entries (a message naming the entry when one is malformed).
fn parse_entries(list: &Value) -> Result<Vec<Entry>, String> {
    let items = list
        .as_array()
        .ok_or_else(|| "metadata.managedFields must be a list".to_owned())?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            Entry::from_json(item).map_err(|e| format!("metadata.managedFields[{i}].{e}"))
        })
        .collect()
}

fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.pointer("/metadata/managedFields")
        .filter(|v| !v.is_null())
}

/// The manager name of an update without `fieldManager`: the User-Agent's product (upstream
/// takes what precedes the first `/`).
pub(crate) fn manager_from_user_agent(headers: &http::HeaderMap) -> String {
    let agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let product = agent.split('/').next().unwrap_or_default().trim();
    let product: String = product.chars().take(MAX_MANAGER_LEN).collect();
    if product.is_empty() {
        "unknown".to_owned()
    } else {
        product
    }
}

/// Checks a `fieldManager` query value.
pub(crate) fn check_manager(name: &str) -> Result<(), ApiError> {
    if name.len() > MAX_MANAGER_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "fieldManager: Invalid value: must be at most {MAX_MANAGER_LEN} printable characters"
        )));
    }
    Ok(())
}

/// The field manager of one resource (and subresource).
pub(crate) struct FieldManager {
    walker: Walker<'static>,
    root: Shape<'static>,
    api_version: String,
    subresource: &'static str,
    /// Track only `status` (the status subresource), or everything but it (`Some(false)`: the
    /// main resource of a kind whose status is a subresource), or everything (`None`).
    status_only: Option<bool>,
}

impl FieldManager {
    /// The manager for writes to `def` (or its `subresource`: entries name it, and through
    /// `status` only the status is tracked).
    pub(crate) fn new(
        def: &ResourceDef,
        subresource: Option<Subresource>,
    ) -> Result<Self, ApiError> {
        let schema = SCHEMA
            .as_ref()
            .map_err(|e| ApiError::internal(format!("the type schema is unavailable: {e}")))?;
        let api_version = def.api_version();
        let root = schema
            .kind(&api_version, def.kind())
            .map_or(Shape::Deduced, Shape::Struct);
        let status_only = match subresource {
            Some(Subresource::Status) => Some(true),
            _ if def.has(Subresource::Status) => Some(false),
            _ => None,
        };
        Ok(Self {
            walker: Walker { schema },
            root,
            api_version,
            subresource: subresource.map_or("", Subresource::name),
            status_only,
        })
    }

    /// The part of `obj` whose fields are tracked.
    fn tracked(&self, obj: &Value) -> Value {
        let Some(fields) = obj.as_object() else {
            return json!({});
        };
        let mut out = Map::new();
        for (key, value) in fields {
            let keep = match (key.as_str(), self.status_only) {
                ("apiVersion" | "kind", _) => false,
                ("status", Some(only)) => only,
                (_, Some(true)) => false,
                _ => true,
            };
            if !keep {
                continue;
            }
            if key == "metadata"
                && let Value::Object(meta) = value
            {
                let meta: Map<String, Value> = meta
                    .iter()
                    .filter(|(k, _)| !SERVER_METADATA.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !meta.is_empty() {
                    out.insert(key.clone(), Value::Object(meta));
                }
                continue;
            }
            out.insert(key.clone(), value.clone());
        }
        Value::Object(out)
    }

    fn is_mine(&self, entry: &Entry, manager: &str, operation: Operation) -> bool {
        entry.manager == manager
            && entry.operation == operation
            && entry.subresource == self.subresource
    }

    fn write(entries: Vec<Entry>, obj: &mut Value) {
        let list: Vec<Value> = entries
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(Entry::to_json)
            .collect();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if list.is_empty() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), Value::Array(list));
            }
        }
    }

    /// Records a create or update by `manager` (`old` is `None` for a create). `sent` is
    /// the `managedFields` the client wrote, when it changed them: they replace the old ones
    /// (an empty list clears them), and malformed ones are a 400.
    pub(crate) fn update(
        &self,
        old: Option<&Value>,
        new: &mut Value,
        manager: &str,
        sent: Option<&Value>,
    ) -> Result<(), ApiError> {
        let mut entries = match sent {
            Some(list) => parse_entries(list).map_err(ApiError::bad_request)?,
            None => old
                .and_then(managed_fields)
                .and_then(|list| parse_entries(list).ok())
                .unwrap_or_default(),
        };
        let old_view = old.map(|o| self.tracked(o));
        let new_view = self.tracked(new);
        let changed = self.walker.diff(self.root, old_view.as_ref(), &new_view);
        let removed = old_view
            .as_ref()
            .map(|o| self.walker.removed(self.root, o, Some(&new_view)))
            .unwrap_or_default();
        for entry in &mut entries {
            entry.fields.subtract(&changed);
            entry.fields.subtract(&removed);
        }
        if !changed.is_empty() {
            let now = crate::rest::object::now_rfc3339();
            match entries
                .iter_mut()
                .find(|e| self.is_mine(e, manager, Operation::Update))
            {
                Some(entry) => {
                    entry.fields.union(&changed);
                    entry.time = now;
                    entry.api_version.clone_from(&self.api_version);
                }
                None => entries.push(Entry {
                    manager: manager.to_owned(),
                    operation: Operation::Update,
                    api_version: self.api_version.clone(),
                    time: now,
                    subresource: self.subresource.to_owned(),
                    fields: changed,
                }),
            }
        }
        Self::write(entries, new);
        Ok(())
    }

    /// Server-side apply of `applied` by `manager` onto `live` (`None`: the object does not
    /// exist yet): the merged object, with its `managedFields`.
    pub(crate) fn apply(
        &self,
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let empty = json!({});
        let live = live.unwrap_or(&empty);
        let mut entries = managed_fields(live)
            .and_then(|list| parse_entries(list).ok())
            .unwrap_or_default();
        let mut applied = applied.clone();
        if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        if self.status_only == Some(false)
            && let Some(root) = applied.as_object_mut()
        {
            // Status is the status subresource's to write.
            root.remove("status");
        }
        let mut merged = self.walker.merge(self.root, live, &applied);
        let claimed = self.walker.fields_of(self.root, &self.tracked(&applied));
        let changed =
            self.walker
                .diff(self.root, Some(&self.tracked(live)), &self.tracked(&merged));
        let changed = changed.intersection(&claimed);
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for entry in &mut entries {
            if self.is_mine(entry, manager, Operation::Apply) {
                continue;
            }
            let taken = changed.intersection(&entry.fields);
            if taken.is_empty() {
                continue;
            }
            if force {
                entry.fields.subtract(&taken);
            } else {
                for path in taken.paths() {
                    conflicts.push((
                        format!(
                            "conflict with {:?}{} using {}",
                            entry.manager,
                            if entry.subresource.is_empty() {
                                String::new()
                            } else {
                                format!(" with subresource {:?}", entry.subresource)
                            },
                            entry.api_version
                        ),
                        fieldset::display(&path),
                    ));
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(conflict_error(&conflicts));
        }
        let previous = entries
            .iter()
            .find(|e| self.is_mine(e, manager, Operation::Apply))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut dropped = previous;
        dropped.subtract(&claimed);
        for entry in entries
            .iter()
            .filter(|e| !self.is_mine(e, manager, Operation::Apply))
        {
            dropped.subtract(&entry.fields);
        }
        self.walker.remove(self.root, &mut merged, &dropped);
        let now = crate::rest::object::now_rfc3339();
        match entries
            .iter_mut()
            .find(|e| self.is_mine(e, manager, Operation::Apply))
        {
            Some(entry) => {
                if entry.fields != claimed {
                    entry.time = now;
                }
                entry.fields = claimed;
                entry.api_version.clone_from(&self.api_version);
            }
            None => entries.push(Entry {
                manager: manager.to_owned(),
                operation: Operation::Apply,
                api_version: self.api_version.clone(),
                time: now,
                subresource: self.subresource.to_owned(),
                fields: claimed,
            }),
        }
        if merged.get("metadata").is_none()
            && let Some(root) = merged.as_object_mut()
        {
            root.insert("metadata".into(), json!({}));
        }
        Self::write(entries, &mut merged);
        Ok(merged)
    }
}

/// For the fuzz target: parses `body` as an apply configuration (YAML), its
/// `managedFields` strictly, and applies it as a Deployment onto itself and onto nothing.
/// Every input must end in a value or an error, never a panic or unbounded work.
#[doc(hidden)]
pub fn fuzz_apply(body: &[u8]) {
    let Ok(config) = crate::codec::request::parse_yaml(body) else {
        return;
    };
    if let Some(list) = managed_fields(&config) {
        let _ = parse_entries(list);
    }
    let Some(def) = crate::registry::lookup(&bulwark_api::GroupVersionResource::new(
        "apps",
        "v1",
        "deployments",
    )) else {
        return;
    };
    let Ok(manager) = FieldManager::new(&def, None) else {
        return;
    };
    let _ = manager.apply(None, &config, "fuzz", false);
    let _ = manager.apply(Some(&config), &config, "fuzz", true);
    let mut copy = config.clone();
    let _ = manager.update(Some(&config), &mut copy, "fuzz", managed_fields(&config));
}

/// Upstream's 409 for apply conflicts: one cause per field, the message naming each
/// manager and its fields.
fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let message = match conflicts {
        [(who, field)] => format!("Apply failed with 1 conflict: {who}: {field}"),
        _ => {
            let mut text = format!("Apply failed with {} conflicts:", conflicts.len());
            let mut last: Option<&str> = None;
            for (who, field) in conflicts {
                if last != Some(who.as_str()) {
                    let plural = who.replacen("conflict with", "conflicts with", 1);
                    text.push_str(&format!(" {plural}:"));
                    last = Some(who);
                }
                text.push_str(&format!("\n- {field}"));
            }
            text
        }
    };
    let mut status = Status::failure(StatusReason::Conflict, message);
    status.details = Some(bulwark_api::status::StatusDetails {
        causes: conflicts
            .iter()
            .map(|(who, field)| StatusCause {
                kind: "FieldManagerConflict".into(),
                message: who.clone(),
                field: field.clone(),
            })
            .collect(),
        ..Default::default()
    });
    status.into()
}

#[cfg(test)]
mod tests;
