//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic
//! merge patch, whose lists of known fields merge by key (containers by `name`, container
//! ports by `containerPort`, …) and which understands the `$patch`, `$retainKeys`,
//! `$setElementOrder/` and `$deleteFromPrimitiveList/` directives kubectl sends.

use serde_json::{Map, Value};

use crate::http::error::ApiError;
use bulwark_api::StatusReason;

/// A PATCH content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
}

impl PatchType {
    /// The patch type of a `Content-Type`, or None (415).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            _ => None,
        }
    }
}

/// What one patch may cost: its operations, what its copies add, and the size of the result
/// ([`crate::http::limits::RequestLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchBudget {
    /// Most JSON patch operations.
    pub max_operations: usize,
    /// Most bytes all `copy` operations of a JSON patch may copy together.
    pub max_copy_bytes: usize,
    /// Largest patched document, as encoded JSON.
    pub max_result_bytes: usize,
}

impl PatchBudget {
    /// The budget the server's request limits give.
    pub fn from_limits(limits: &crate::http::limits::RequestLimits) -> Self {
        Self {
            max_operations: limits.max_json_patch_operations,
            max_copy_bytes: limits.max_json_patch_copy_bytes,
            max_result_bytes: limits.max_object_bytes,
        }
    }
}

impl Default for PatchBudget {
    fn default() -> Self {
        Self::from_limits(&crate::http::limits::RequestLimits::default())
    }
}

fn over_budget(limit: crate::http::limits::Limit, message: String) -> ApiError {
    limit.refuse(StatusReason::RequestEntityTooLarge, message)
}

/// Applies a patch to `original` within `budget`: a patch whose operations, copies or result
/// would exceed it is refused (413) before the work is done, so no patch can make the server
/// build a document bigger than the object limit.
pub fn apply(
    kind: PatchType,
    original: &Value,
    body: &[u8],
    budget: &PatchBudget,
) -> Result<Value, ApiError> {
    use crate::http::limits::{Limit, json_size_within};
    let mut doc = original.clone();
    match kind {
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            if patch.0.len() > budget.max_operations {
                return Err(over_budget(
                    Limit::JsonPatchOperations,
                    format!(
                        "The allowed maximum operations in a JSON patch is {}, got {}",
                        budget.max_operations,
                        patch.0.len()
                    ),
                ));
            }
            let mut copied = 0usize;
            for (index, operation) in patch.0.iter().enumerate() {
                if let json_patch::PatchOperation::Copy(copy) = operation {
                    let remaining = budget.max_copy_bytes.saturating_sub(copied);
                    let size = doc
                        .pointer(copy.from.as_str())
                        .map(|v| json_size_within(v, remaining));
                    match size {
                        Some(Some(size)) => copied += size,
                        Some(None) => {
                            return Err(over_budget(
                                Limit::JsonPatchCopyBytes,
                                format!(
                                    "the JSON patch could not be applied: operation {index} (copy from {}) would copy more than the limit of {} bytes in total",
                                    copy.from.as_str(),
                                    budget.max_copy_bytes
                                ),
                            ));
                        }
                        // A missing source: the operation itself reports it below.
                        None => {}
                    }
                }
                // The document is this request's own copy: a failed operation discards it, so
                // the library's undo log (a second copy of every replaced value) is not needed.
                json_patch::patch_unsafe(&mut doc, std::slice::from_ref(operation)).map_err(
                    |e| {
                        ApiError::new(
                            StatusReason::Invalid,
                            format!(
                                "the JSON patch could not be applied: operation '/{index}' failed at path '{}': {}",
                                e.path, e.kind
                            ),
                        )
                    },
                )?;
            }
        }
        PatchType::Merge => {
            let patch: Value = parse_object(body)?;
            json_patch::merge(&mut doc, &patch);
        }
        PatchType::StrategicMerge => {
            let patch = parse_object(body)?;
            let (Some(target), Some(patch)) = (doc.as_object_mut(), patch.as_object()) else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            merge_map(target, patch, "")?;
        }
    }
    if json_size_within(&doc, budget.max_result_bytes).is_none() {
        return Err(over_budget(
            Limit::ObjectBytes,
            format!(
                "the patched object would be larger than the limit of {} bytes",
                budget.max_result_bytes
            ),
        ));
    }
    Ok(doc)
}

fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid patch: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the patch must be a JSON object"));
    }
    Ok(value)
}

/// How a list field merges.
enum ListStrategy {
    /// Objects merge by this key.
    ByKey(&'static str),
    /// Primitive values are unioned.
    PrimitiveUnion,
    /// The patch replaces the list.
    Replace,
}

/// Upstream's `patchMergeKey`/`patchStrategy` for the built-in types' list fields. `parent` is
/// the field holding the map the list is in (e.g. `containers` for a container's `ports`).
fn list_strategy(parent: &str, field: &str) -> ListStrategy {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListStrategy::ByKey("name"),
        "ports"
            if matches!(
                parent,
                "containers" | "initContainers" | "ephemeralContainers"
            ) =>
        {
            ListStrategy::ByKey("containerPort")
        }
        "ports" => ListStrategy::ByKey("port"),
        "volumeMounts" => ListStrategy::ByKey("mountPath"),
        "volumeDevices" => ListStrategy::ByKey("devicePath"),
        "hostAliases" => ListStrategy::ByKey("ip"),
        "conditions" => ListStrategy::ByKey("type"),
        "ownerReferences" => ListStrategy::ByKey("uid"),
        "topologySpreadConstraints" => ListStrategy::ByKey("topologyKey"),
        "finalizers" if parent == "metadata" => ListStrategy::PrimitiveUnion,
        _ => ListStrategy::Replace,
    }
}

/// A value from a patch with every directive removed.
fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|v| !is_directive_only(v))
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn directive(value: &Value) -> Option<&str> {
    value.get("$patch").and_then(Value::as_str)
}

fn is_directive_only(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("$patch"))
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    parent: &str,
) -> Result<(), ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            if let Value::Object(clean) = strip_directives(&Value::Object(patch.clone())) {
                *target = clean;
            }
            return Ok(());
        }
        Some("delete") => {
            target.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch directive $patch: {other}"
            )));
        }
    }
    let mut orders = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            orders.push((field, value));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = value.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = target.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(_) if directive(value) == Some("delete") => {
                target.remove(key);
            }
            Value::Object(child) => match target.get_mut(key) {
                Some(Value::Object(existing)) => merge_map(existing, child, key)?,
                _ => {
                    target.insert(key.clone(), strip_directives(value));
                }
            },
            Value::Array(items) => {
                let merged = merge_list(target.get(key), items, parent, key)?;
                target.insert(key.clone(), merged);
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
    }
    for (field, order) in orders {
        if let (Some(Value::Array(list)), Some(order)) = (target.get_mut(field), order.as_array()) {
            reorder(list, order, parent, field);
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        target.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(())
}

fn key_of<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key)
}

fn merge_list(
    existing: Option<&Value>,
    patch: &[Value],
    parent: &str,
    field: &str,
) -> Result<Value, ApiError> {
    if patch.iter().any(|v| directive(v) == Some("replace")) {
        return Ok(strip_directives(&Value::Array(patch.to_vec())));
    }
    let mut list = existing
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match list_strategy(parent, field) {
        ListStrategy::Replace => Ok(strip_directives(&Value::Array(patch.to_vec()))),
        ListStrategy::PrimitiveUnion => {
            for v in patch {
                if !list.contains(v) {
                    list.push(v.clone());
                }
            }
            Ok(Value::Array(list))
        }
        ListStrategy::ByKey(merge_key) => {
            for item in patch {
                let Some(key) = key_of(item, merge_key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {item} does not contain declared merge key: {merge_key}"
                    )));
                };
                let position = list.iter().position(|e| key_of(e, merge_key) == Some(key));
                match (directive(item), position) {
                    (Some("delete"), Some(i)) => {
                        list.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => {
                        if let (Some(Value::Object(target)), Some(patch_item)) =
                            (list.get_mut(i), item.as_object())
                        {
                            merge_map(target, patch_item, field)?;
                        }
                    }
                    (_, None) => list.push(strip_directives(item)),
                }
            }
            Ok(Value::Array(list))
        }
    }
}

/// Orders `list` as `order` says (kubectl's `$setElementOrder`); items not named keep their
/// relative order after the named ones.
fn reorder(list: &mut Vec<Value>, order: &[Value], parent: &str, field: &str) {
    let key = match list_strategy(parent, field) {
        ListStrategy::ByKey(k) => Some(k),
        _ => None,
    };
    let rank = |item: &Value| {
        order.iter().position(|o| match key {
            Some(k) => o.get(k).is_some() && o.get(k) == item.get(k),
            None => o == item,
        })
    };
    let mut ranked: Vec<(usize, Value)> = list
        .drain(..)
        .map(|item| (rank(&item).unwrap_or(usize::MAX), item))
        .collect();
    ranked.sort_by_key(|(r, _)| *r);
    list.extend(ranked.into_iter().map(|(_, item)| item));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(kind: PatchType, original: &Value, body: &[u8]) -> Result<Value, ApiError> {
        super::apply(kind, original, body, &PatchBudget::default())
    }

    /// The reproduction from the hostile-client review: 24 copies that each double a 1 KB
    /// annotation map would build a 16 GB document. It is refused once the copies pass the
    /// budget, having built at most the budget.
    #[test]
    fn a_copy_bomb_is_refused_within_the_budget() {
        let mut ops = vec![
            json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(1000)}}),
        ];
        for i in 0..24 {
            ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
        }
        let body = serde_json::to_vec(&ops).unwrap();
        let obj = json!({"metadata": {"name": "bomb"}});
        let err = apply(PatchType::Json, &obj, &body).unwrap_err();
        assert_eq!(
            (err.code(), err.0.reason.as_str()),
            (413, "RequestEntityTooLarge")
        );
        assert!(
            err.0.message.contains("copy from /metadata/annotations"),
            "{}",
            err.0.message
        );
        // A few copies within the budget still work.
        let ok = super::apply(
            PatchType::Json,
            &obj,
            &serde_json::to_vec(&ops[..4]).unwrap(),
            &PatchBudget::default(),
        )
        .unwrap();
        assert_eq!(
            ok["metadata"]["annotations"]["c2"]["c1"]["c0"]["a"]
                .as_str()
                .map(str::len),
            Some(1000)
        );
    }

    #[test]
    fn operation_count_and_result_size_are_bounded() {
        let obj = json!({"data": {}});
        let budget = PatchBudget {
            max_operations: 3,
            max_copy_bytes: 1 << 20,
            max_result_bytes: 200,
        };
        let ops: Vec<Value> = (0..4)
            .map(|i| json!({"op": "add", "path": format!("/data/k{i}"), "value": "v"}))
            .collect();
        let err = super::apply(
            PatchType::Json,
            &obj,
            &serde_json::to_vec(&ops).unwrap(),
            &budget,
        )
        .unwrap_err();
        assert_eq!(err.code(), 413);
        assert_eq!(
            err.0.message,
            "The allowed maximum operations in a JSON patch is 3, got 4"
        );
        // Every patch type: a result over the object limit is refused.
        let big = format!(r#"{{"data": {{"k": "{}"}}}}"#, "x".repeat(300));
        for kind in [PatchType::Merge, PatchType::StrategicMerge] {
            let err = super::apply(kind, &obj, big.as_bytes(), &budget).unwrap_err();
            assert_eq!(err.code(), 413, "{kind:?}");
        }
        let add = format!(
            r#"[{{"op": "add", "path": "/data/k", "value": "{}"}}]"#,
            "x".repeat(300)
        );
        assert_eq!(
            super::apply(PatchType::Json, &obj, add.as_bytes(), &budget)
                .unwrap_err()
                .code(),
            413
        );
    }

    #[test]
    fn a_failed_operation_names_its_index() {
        let obj = json!({"data": {"a": "1"}});
        let err = apply(
            PatchType::Json,
            &obj,
            br#"[{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/nope"}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(
            err.0
                .message
                .contains("operation '/1' failed at path '/nope'"),
            "{}",
            err.0.message
        );
    }

    fn smp(original: Value, patch: Value) -> Value {
        apply(
            PatchType::StrategicMerge,
            &original,
            &serde_json::to_vec(&patch).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn containers_merge_by_name() {
        let deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "side:1"}
        ]}}}});
        let out = smp(
            deploy.clone(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
                "containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]
            }}}}),
        );
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "app:2");
        assert_eq!(c[0]["ports"][0]["containerPort"], 80);
        assert_eq!(c[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(c[1]["name"], "side");

        let out = smp(
            deploy.clone(),
            json!({"spec": {"template": {"spec": {
            "containers": [{"name": "side", "$patch": "delete"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        let out = smp(
            deploy,
            json!({"spec": {"template": {"spec": {
            "containers": [{"name": "new", "image": "n"}, {"$patch": "replace"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "new", "image": "n"}])
        );
    }

    #[test]
    fn directives_and_nulls() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
                         "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "args": ["a"]}});
        let out = smp(
            obj,
            json!({
                "metadata": {"labels": {"a": null, "c": "3"}, "finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]},
                "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}, "args": ["b"]}
            }),
        );
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(out["spec"]["args"], json!(["b"]));
    }

    #[test]
    fn json_and_merge_patches() {
        let obj = json!({"data": {"a": "1"}});
        let out = apply(
            PatchType::Merge,
            &obj,
            br#"{"data": {"a": null, "b": "2"}}"#,
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"b": "2"}}));
        let out = apply(
            PatchType::Json,
            &obj,
            br#"[{"op": "add", "path": "/data/c", "value": "3"}]"#,
        )
        .unwrap();
        assert_eq!(out["data"]["c"], "3");
        let err = apply(
            PatchType::Json,
            &obj,
            br#"[{"op": "test", "path": "/data/a", "value": "9"}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(apply(PatchType::Json, &obj, b"{").unwrap_err().code(), 400);
        assert_eq!(
            apply(PatchType::StrategicMerge, &obj, b"[1]")
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(
            apply(
                PatchType::StrategicMerge,
                &json!({"spec": {"containers": []}}),
                br#"{"spec": {"containers": [{"image": "x"}]}}"#
            )
            .unwrap_err()
            .code(),
            400
        );
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z$/]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("$patch".to_owned()),
                        Just("$retainKeys".to_owned()),
                        Just("$setElementOrder/containers".to_owned()),
                        Just("$deleteFromPrimitiveList/finalizers".to_owned()),
                        Just("containers".to_owned()),
                        Just("ports".to_owned()),
                        Just("finalizers".to_owned()),
                        Just("name".to_owned()),
                        "[a-z]{1,4}",
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn patches_never_panic(original in arb_json(), patch in arb_json()) {
            let body = serde_json::to_vec(&patch).unwrap();
            for kind in [PatchType::StrategicMerge, PatchType::Merge, PatchType::Json] {
                let _ = apply(kind, &original, &body);
            }
        }
    }
}
