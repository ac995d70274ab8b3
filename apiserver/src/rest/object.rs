//! Object lifecycle rules shared by every kind: what the server sets on create (uid,
//! creationTimestamp, generation, a generated name), what an update may not change, the
//! status/spec split of the status subresource, generation bumps on spec changes only, and the
//! metadata validation upstream applies to every object.

use bulwark_api::{StatusCause, names};
use rand::Rng;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::http::error::ApiError;
use crate::registry::{NameRule, ResourceDef, Subresource};

/// A time as upstream formats timestamps (`2026-11-21T10:00:00Z`, second precision).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Now, as upstream formats timestamps.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// Increments `metadata.generation` (absent counts as 0).
pub fn bump_generation(meta: &mut Map<String, Value>) {
    let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
    meta.insert("generation".into(), json!(generation));
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `metadata` of an object, if it is a map.
pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata` as a mutable map, created if missing.
pub fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let root = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

/// `metadata.labels`.
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
}

/// A label map as a selector string, `k1=v1,k2=v2` (Scale status, Table columns).
pub fn selector_string(labels: Option<&Value>) -> String {
    labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The value of a dotted field path as a string, as field selectors compare it.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut current = obj;
    for part in path.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Fills in a missing `apiVersion`/`kind` from the endpoint and rejects a mismatch (400).
pub fn check_kind(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let api_version = def.api_version();
    let root = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    match root.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            root.insert("kind".into(), Value::String(def.kind().into()));
        }
        Some(kind) if kind == def.kind() => {}
        Some(kind) => {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): kind {kind:?} is not served at this endpoint",
                def.kind()
            )));
        }
    }
    match root.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            root.insert("apiVersion".into(), Value::String(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    Ok(())
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .filter_map(|_| GENERATE_ALPHABET.get(rng.random_range(0..GENERATE_ALPHABET.len())))
        .map(|&b| char::from(b))
        .collect()
}

/// Upstream's metadata validation; returns field causes (empty = valid).
pub fn validate_meta(def: &ResourceDef, obj: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let name = meta_str(obj, "name").unwrap_or_default();
    let rule = match def.name_rule() {
        NameRule::Subdomain => names::dns1123_subdomain(name),
        NameRule::Label => names::dns1123_label(name),
        NameRule::Dns1035 => names::dns1035_label(name),
        NameRule::PathSegment => names::path_segment(name),
    };
    if name.is_empty() {
        causes.push(StatusCause::required("metadata.name"));
    } else if let Some(why) = rule {
        causes.push(StatusCause::invalid(
            "metadata.name",
            format!("Invalid value: {name:?}: {why}"),
        ));
    }
    if let Some(labels) = labels(obj) {
        for (key, value) in labels {
            if let Some(why) = names::qualified_name(key) {
                causes.push(StatusCause::invalid(
                    "metadata.labels",
                    format!("Invalid value: {key:?}: {why}"),
                ));
            }
            match value.as_str() {
                Some(v) => {
                    if let Some(why) = names::label_value(v) {
                        causes.push(StatusCause::invalid(
                            format!("metadata.labels.{key}"),
                            format!("Invalid value: {v:?}: {why}"),
                        ));
                    }
                }
                None => causes.push(StatusCause::invalid(
                    format!("metadata.labels.{key}"),
                    "must be a string",
                )),
            }
        }
    }
    if let Some(annotations) = meta(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (key, value) in annotations {
            total += key.len() + value.as_str().map_or(0, str::len);
            if let Some(why) = names::qualified_name(&key.to_lowercase()) {
                causes.push(StatusCause::invalid(
                    "metadata.annotations",
                    format!("Invalid value: {key:?}: {why}"),
                ));
            }
        }
        if total > 256 * 1024 {
            causes.push(StatusCause::invalid(
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
            ));
        }
    }
    if let Some(finalizers) = meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
    {
        for f in finalizers {
            let ok = f
                .as_str()
                .is_some_and(|f| names::qualified_name(f).is_none());
            if !ok {
                causes.push(StatusCause::invalid(
                    "metadata.finalizers",
                    format!("Invalid value: {f}: must be a qualified name"),
                ));
            }
        }
    }
    causes
}

/// Prepares a new object: name (from generateName), namespace, uid, timestamps, generation,
/// status; then validates metadata (422).
pub fn prepare_create(
    def: &ResourceDef,
    obj: &mut Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    check_kind(def, obj)?;
    let meta = meta_mut(obj)?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty()
        && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
    {
        let prefix = prefix.to_owned();
        meta.insert(
            "name".into(),
            Value::String(format!("{prefix}{}", generated_suffix())),
        );
    }
    match (
        def.namespaced(),
        namespace,
        meta.get("namespace").and_then(Value::as_str),
    ) {
        (true, Some(ns), Some(body)) if !body.is_empty() && body != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (true, Some(ns), _) => {
            meta.insert("namespace".into(), Value::String(ns.to_owned()));
        }
        (true, None, _) => {
            return Err(ApiError::bad_request(
                "a namespaced object must be created in a namespace",
            ));
        }
        (false, _, _) => {
            meta.remove("namespace");
        }
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    crate::registry::defaults::apply(def, obj);
    if let Some(root) = obj.as_object_mut() {
        let submitted = root.remove("status");
        if let Some(status) = def.strategy().initial_status(def, submitted) {
            root.insert("status".into(), status);
        }
    }
    let mut causes = validate_meta(def, obj);
    causes.extend(crate::registry::validation::validate_spec(def, obj));
    if !causes.is_empty() {
        let name = meta_str(obj, "name").unwrap_or_default().to_owned();
        return Err(bulwark_api::Status::invalid(def.group(), def.kind(), &name, causes).into());
    }
    Ok(())
}

/// The object without metadata and status: what `generation` tracks.
fn desired_state(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(root) = copy.as_object_mut() {
        root.remove("metadata");
        root.remove("status");
    }
    copy
}

/// How an update addresses the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// The main resource: status changes are ignored for kinds with a status subresource.
    Main,
    /// The status subresource: only status changes.
    Status,
}

/// Prepares an update of `old` into `new`: immutable metadata is kept, the status/spec split
/// is applied, generation bumps on desired-state changes; then validates metadata (422).
pub fn prepare_update(
    def: &ResourceDef,
    new: &mut Value,
    old: &Value,
    kind: UpdateKind,
) -> Result<(), ApiError> {
    check_kind(def, new)?;
    let old_meta = meta(old).cloned().unwrap_or_default();
    if kind == UpdateKind::Status {
        let status = new.get("status").cloned();
        // The client's resourceVersion is its precondition: a stale status write is a 409,
        // not a lost update (the read-modify-write checks it).
        let precondition = meta_str(new, "resourceVersion").map(str::to_owned);
        let mut merged = old.clone();
        if let Some(root) = merged.as_object_mut() {
            match status {
                Some(status) => root.insert("status".into(), status),
                None => root.remove("status"),
            };
        }
        if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
            match precondition {
                Some(rv) => meta.insert("resourceVersion".into(), Value::String(rv)),
                None => meta.remove("resourceVersion"),
            };
        }
        *new = merged;
    } else if def.has(Subresource::Status)
        && let Some(root) = new.as_object_mut()
    {
        match old.get("status") {
            Some(status) => root.insert("status".into(), status.clone()),
            None => root.remove("status"),
        };
    }
    let new_name = meta_str(new, "name").unwrap_or_default().to_owned();
    let old_name = old_meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !new_name.is_empty() && new_name != old_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({old_name})"
        )));
    }
    if let Some(ns) = meta_str(new, "namespace") {
        let old_ns = old_meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !ns.is_empty() && ns != old_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    if let Some(uid) = meta_str(new, "uid") {
        let old_uid = old_meta
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !uid.is_empty() && uid != old_uid {
            return Err(bulwark_api::Status::conflict(
                def.group(),
                def.plural(),
                &old_name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
                ),
            )
            .into());
        }
    }
    let bump = desired_state(new) != desired_state(old);
    let meta = meta_mut(new)?;
    for immutable in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(immutable) {
            Some(v) => meta.insert(immutable.into(), v.clone()),
            None => meta.remove(immutable),
        };
    }
    // managedFields stay: the field manager checks what the client sent and rewrites them.
    meta.remove("selfLink");
    // `generation` was just copied from the old object.
    if bump {
        bump_generation(meta);
    }
    let mut causes = validate_meta(def, new);
    causes.extend(crate::registry::validation::validate_spec(def, new));
    if !causes.is_empty() {
        return Err(
            bulwark_api::Status::invalid(def.group(), def.kind(), &old_name, causes).into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    /// A valid Deployment spec; `replicas` only if given.
    fn spec(replicas: Option<i64>) -> Value {
        let mut spec = json!({"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.local/web:1"}]}}});
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        spec
    }

    #[test]
    fn create_sets_server_fields() {
        let def = lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap();
        let mut obj = json!({"metadata": {"generateName": "web-", "resourceVersion": "9"}, "spec": spec(None), "status": {"replicas": 5}});
        prepare_create(&def, &mut obj, Some("default")).unwrap();
        assert_eq!(obj["kind"], "Deployment");
        assert_eq!(obj["apiVersion"], "apps/v1");
        assert!(
            obj["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("web-")
        );
        assert_eq!(obj["metadata"]["name"].as_str().unwrap().len(), 9);
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert_eq!(obj["status"], json!({}));
        assert_eq!(obj["spec"]["replicas"], 1);
        let mut bad = json!({"metadata": {"name": "Bad_Name"}, "spec": spec(None)});
        assert_eq!(
            prepare_create(&def, &mut bad, Some("default"))
                .unwrap_err()
                .code(),
            422
        );
        let mut wrong = json!({"kind": "Pod", "metadata": {"name": "x"}});
        assert_eq!(
            prepare_create(&def, &mut wrong, Some("default"))
                .unwrap_err()
                .code(),
            400
        );
        let mut other_ns = json!({"metadata": {"name": "x", "namespace": "b"}});
        assert_eq!(
            prepare_create(&def, &mut other_ns, Some("a"))
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn updates_keep_status_and_bump_generation_on_spec_only() {
        let def = lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap();
        let mut old = json!({"metadata": {"name": "web"}, "spec": spec(Some(1))});
        prepare_create(&def, &mut old, Some("default")).unwrap();
        old["status"] = json!({"replicas": 1});
        let mut relabel = old.clone();
        relabel["metadata"]["labels"] = json!({"a": "b"});
        relabel["status"] = json!({"replicas": 7});
        prepare_update(&def, &mut relabel, &old, UpdateKind::Main).unwrap();
        assert_eq!(relabel["metadata"]["generation"], 1);
        assert_eq!(relabel["status"]["replicas"], 1);
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        prepare_update(&def, &mut scaled, &old, UpdateKind::Main).unwrap();
        assert_eq!(scaled["metadata"]["generation"], 2);
        let mut status = old.clone();
        status["spec"]["replicas"] = json!(9);
        status["status"] = json!({"replicas": 2});
        prepare_update(&def, &mut status, &old, UpdateKind::Status).unwrap();
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 2);
        assert_eq!(status["metadata"]["generation"], 1);
    }

    /// A status write keeps the client's resourceVersion (its precondition, checked against
    /// the stored one) instead of taking the stored object's, which made stale writes win.
    #[test]
    fn status_updates_keep_the_clients_resource_version() {
        let def = lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap();
        let mut old = json!({"metadata": {"name": "web"}, "spec": spec(Some(1))});
        prepare_create(&def, &mut old, Some("default")).unwrap();
        old["metadata"]["resourceVersion"] = json!("20");
        let mut stale = old.clone();
        stale["metadata"]["resourceVersion"] = json!("7");
        stale["status"] = json!({"replicas": 2});
        prepare_update(&def, &mut stale, &old, UpdateKind::Status).unwrap();
        assert_eq!(stale["metadata"]["resourceVersion"], "7");
        let mut unconditional = old.clone();
        unconditional["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        prepare_update(&def, &mut unconditional, &old, UpdateKind::Status).unwrap();
        assert!(unconditional["metadata"].get("resourceVersion").is_none());
    }
}
