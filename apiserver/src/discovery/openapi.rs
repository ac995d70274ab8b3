//! OpenAPI documents for clients.
//!
//! - `/openapi/v3` and `/openapi/v3/<api|apis/group>/<version>`: the real schemas of every
//!   served kind (generated from k8s-openapi's JSON schemas, descriptions included) and paths
//!   whose PATCH operations declare `fieldValidation`, so `kubectl apply` validates on the
//!   server and `kubectl explain` works.
//!   Schemas carry upstream's merge extensions (`x-kubernetes-list-type`,
//!   `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`) from the type schema that
//!   server-side apply merges by, so client tools see the rules the server applies.
//! - `/openapi/v2`: the same definitions as a Swagger 2.0 document, as JSON or in gnostic's
//!   protobuf form (which client-go asks for first; older kubectl, `kubectl explain
//!   --output=plaintext-openapiv2`, `helm --validate`). PATCH operations in v3 deliberately do
//!   not advertise strategic merge patch, so kubectl computes those patches from its
//!   compiled-in types.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

mod gnostic;

use crate::registry::schema::Merge;
use crate::registry::{ResourceDef, ResourceTable};

/// The URL path segment of a group/version (`api/v1`, `apis/apps/v1`).
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The v3 root document: where each group/version document lives.
pub fn v3_root(table: &ResourceTable) -> Value {
    let paths: Map<String, Value> = table
        .group_versions()
        .into_iter()
        .map(|(g, v)| {
            let path = gv_path(g, v);
            let url = format!("/openapi/v3/{path}");
            (path, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// Registers `T`'s schema with `generator`; its definition name.
pub(crate) fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

fn schema_name(def: &ResourceDef, generator: &mut SchemaGenerator) -> Option<String> {
    def.strategy().schema(generator)
}

fn gvk(def: &ResourceDef) -> Value {
    json!({"group": def.group(), "version": def.version(), "kind": def.kind()})
}

fn operation(
    def: &ResourceDef,
    action: &str,
    schema_ref: &str,
    params: &[&str],
    body: Option<&[&str]>,
) -> Value {
    let mut op = json!({
        "operationId": format!("{action}{}", def.kind()),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(def),
        "parameters": params.iter().map(|p| json!({"name": p, "in": "query", "schema": {"type": "string"}, "uniqueItems": true})).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
    });
    if let (Some(types), Some(map)) = (body, op.as_object_mut()) {
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({"schema": {"$ref": schema_ref}})))
            .collect();
        map.insert(
            "requestBody".into(),
            json!({"content": content, "required": true}),
        );
    }
    op
}

const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const LIST_PARAMS: &[&str] = &[
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "resourceVersionMatch",
    "timeoutSeconds",
    "watch",
    "allowWatchBookmarks",
];
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
];

fn build_gv(table: &ResourceTable, group: &str, version: &str) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = BTreeMap::new();
    let mut kinds = Vec::new();
    for def in table
        .iter()
        .filter(|r| r.group() == group && r.version() == version)
    {
        let Some(name) = schema_name(def, &mut generator) else {
            continue;
        };
        let schema_ref = format!("#/components/schemas/{name}");
        let base = format!("/{}", gv_path(group, version));
        let collection = if def.namespaced() {
            format!("{base}/namespaces/{{namespace}}/{}", def.plural())
        } else {
            format!("{base}/{}", def.plural())
        };
        if !def.stored() {
            paths.insert(collection, json!({
                "post": operation(def, "post", &schema_ref, WRITE_PARAMS, Some(&["application/json"])),
            }));
            kinds.push((name, gvk(def)));
            continue;
        }
        paths.insert(collection.clone(), json!({
            "get": operation(def, "list", &schema_ref, LIST_PARAMS, None),
            "post": operation(def, "post", &schema_ref, WRITE_PARAMS, Some(&["application/json"])),
            "delete": operation(def, "deletecollection", &schema_ref, LIST_PARAMS, None),
        }));
        paths.insert(format!("{collection}/{{name}}"), json!({
            "get": operation(def, "get", &schema_ref, &[], None),
            "put": operation(def, "put", &schema_ref, WRITE_PARAMS, Some(&["application/json"])),
            "patch": operation(def, "patch", &schema_ref, WRITE_PARAMS, Some(PATCH_TYPES)),
            "delete": operation(def, "delete", &schema_ref, &["dryRun", "gracePeriodSeconds", "propagationPolicy"], None),
        }));
        kinds.push((name, gvk(def)));
    }
    let mut schemas = generator.take_definitions(true);
    annotate_merge(&mut schemas);
    for (name, gvk) in kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Bulwark", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// Adds upstream's merge extensions to k8s-openapi's schemas, from the type schema:
/// definition `io.k8s.api.core.v1.Container` is message `k8s.io.api.core.v1.Container`.
fn annotate_merge(schemas: &mut Map<String, Value>) {
    let Ok(schema) = crate::registry::schema::SCHEMA.as_ref() else {
        return;
    };
    for (name, definition) in schemas.iter_mut() {
        let Some(message) = name
            .strip_prefix("io.k8s.")
            .and_then(|rest| schema.by_name(&format!("k8s.io.{rest}")))
            .and_then(|index| schema.message(index))
        else {
            continue;
        };
        let Some(definition) = definition.as_object_mut() else {
            continue;
        };
        if message.atomic {
            definition.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
        let Some(properties) = definition
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (property, property_schema) in properties.iter_mut() {
            let (Some(field), Some(property_schema)) = (
                message.json_field(schema, property),
                property_schema.as_object_mut(),
            ) else {
                continue;
            };
            match &field.merge {
                Merge::ListMap(keys) => {
                    property_schema.insert("x-kubernetes-list-type".into(), json!("map"));
                    property_schema.insert("x-kubernetes-list-map-keys".into(), json!(keys));
                }
                Merge::ListSet => {
                    property_schema.insert("x-kubernetes-list-type".into(), json!("set"));
                }
                Merge::MapAtomic => {
                    property_schema.insert("x-kubernetes-map-type".into(), json!("atomic"));
                }
                Merge::Default => {}
            }
        }
    }
}

/// The OpenAPI documents of one [`ResourceTable`], built on first use (a table never
/// changes; a new table starts with an empty cache).
#[derive(Debug, Default)]
pub struct DocCache {
    v3: OnceLock<BTreeMap<String, Bytes>>,
    v2: OnceLock<Bytes>,
    v2_protobuf: OnceLock<Bytes>,
}

/// The v3 document of one group/version (`api/v1`, `apis/apps/v1`).
pub fn v3_group_version(table: &ResourceTable, path: &str) -> Option<Bytes> {
    table
        .docs()
        .v3
        .get_or_init(|| {
            table
                .group_versions()
                .into_iter()
                .map(|(g, v)| {
                    (
                        gv_path(g, v),
                        Bytes::from(serde_json::to_vec(&build_gv(table, g, v)).unwrap_or_default()),
                    )
                })
                .collect()
        })
        .get(path)
        .cloned()
}

/// The Swagger 2.0 document as JSON: every served kind's definitions, as in v3.
pub fn v2_json(table: &ResourceTable) -> Bytes {
    table
        .docs()
        .v2
        .get_or_init(|| {
            let mut definitions = Map::new();
            for (g, v) in table.group_versions() {
                if let Some(Value::Object(schemas)) = build_gv(table, g, v)
                    .pointer_mut("/components/schemas")
                    .map(Value::take)
                {
                    definitions.extend(schemas);
                }
            }
            let doc = json!({
                "swagger": "2.0",
                "info": {"title": "Bulwark", "version": env!("CARGO_PKG_VERSION")},
                "paths": {},
                "definitions": definitions,
            });
            // v2 names its definitions' place differently; the schemas are the same.
            Bytes::from(
                doc.to_string()
                    .replace("\"#/components/schemas/", "\"#/definitions/")
                    .into_bytes(),
            )
        })
        .clone()
}

/// The Swagger 2.0 document in gnostic's protobuf form (what client-go's `OpenAPISchema()`
/// asks for): the same definitions as [`v2_json`], transcoded once per table.
pub fn v2_protobuf(table: &ResourceTable) -> Bytes {
    table
        .docs()
        .v2_protobuf
        .get_or_init(|| {
            let doc: Value = serde_json::from_slice(&v2_json(table)).unwrap_or(Value::Null);
            Bytes::from(gnostic::encode_document(&doc))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_documents_have_kinds_and_field_validation() {
        let root = v3_root(crate::registry::builtin());
        assert!(root["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string());
        let doc: Value = serde_json::from_slice(
            &v3_group_version(crate::registry::builtin(), "apis/apps/v1").unwrap(),
        )
        .unwrap();
        let schema = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(
            schema["description"]
                .as_str()
                .unwrap()
                .contains("Deployment")
        );
        let meta_ref = schema["properties"]["metadata"]["allOf"][0]["$ref"]
            .as_str()
            .unwrap();
        assert!(meta_ref.starts_with("#/components/schemas/"), "{meta_ref}");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(v3_group_version(crate::registry::builtin(), "apis/nope/v1").is_none());
    }

    #[test]
    fn merge_rules_are_published() {
        let doc: Value = serde_json::from_slice(
            &v3_group_version(crate::registry::builtin(), "apis/apps/v1").unwrap(),
        )
        .unwrap();
        let schemas = &doc["components"]["schemas"];
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
            "atomic"
        );
    }

    #[test]
    fn v2_has_the_v3_definitions() {
        let doc: Value = serde_json::from_slice(&v2_json(crate::registry::builtin())).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        let deployment = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let raw = v2_json(crate::registry::builtin());
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("#/components/"));
        assert!(doc["definitions"]["io.k8s.api.core.v1.ConfigMap"].is_object());
    }
}
