//! The Swagger 2.0 document in gnostic's protobuf form (`openapi.v2.Document` of
//! github.com/google/gnostic `openapiv2/OpenAPIv2.proto`), which client-go's
//! `OpenAPISchema()` asks for and kubectl (`explain --output=plaintext-openapiv2`, client-side
//! validation against servers without field validation) and Helm read.
//!
//! It is transcoded from the JSON document, so both forms always hold the same definitions.
//! Values gnostic keeps as `Any` (defaults, enums, examples, `x-` extensions) carry their
//! JSON text in `Any.yaml`, which is how kube-openapi reads them (JSON is YAML). Swagger
//! 2.0 has no `nullable`, `oneOf` or `anyOf`; those keys are left out. A reference wrapped as
//! `allOf: [{$ref}]` (OpenAPI v3's way to put a description next to a reference) becomes the
//! bare reference, as upstream's v2 document has it: kube-openapi reads a schema that is
//! neither reference, type nor properties as an arbitrary value.

use serde_json::{Map, Value};

use crate::codec::protobuf::wire::{put_bytes, put_double_field, put_varint_field};

/// `Document` fields.
mod document {
    pub const SWAGGER: u32 = 1;
    pub const INFO: u32 = 2;
    pub const PATHS: u32 = 8;
    pub const DEFINITIONS: u32 = 9;
}

/// `Schema` fields.
mod schema {
    pub const REF: u32 = 1;
    pub const FORMAT: u32 = 2;
    pub const TITLE: u32 = 3;
    pub const DESCRIPTION: u32 = 4;
    pub const DEFAULT: u32 = 5;
    pub const MULTIPLE_OF: u32 = 6;
    pub const MAXIMUM: u32 = 7;
    pub const EXCLUSIVE_MAXIMUM: u32 = 8;
    pub const MINIMUM: u32 = 9;
    pub const EXCLUSIVE_MINIMUM: u32 = 10;
    pub const MAX_LENGTH: u32 = 11;
    pub const MIN_LENGTH: u32 = 12;
    pub const PATTERN: u32 = 13;
    pub const MAX_ITEMS: u32 = 14;
    pub const MIN_ITEMS: u32 = 15;
    pub const UNIQUE_ITEMS: u32 = 16;
    pub const MAX_PROPERTIES: u32 = 17;
    pub const MIN_PROPERTIES: u32 = 18;
    pub const REQUIRED: u32 = 19;
    pub const ENUM: u32 = 20;
    pub const ADDITIONAL_PROPERTIES: u32 = 21;
    pub const TYPE: u32 = 22;
    pub const ITEMS: u32 = 23;
    pub const ALL_OF: u32 = 24;
    pub const PROPERTIES: u32 = 25;
    pub const DISCRIMINATOR: u32 = 26;
    pub const READ_ONLY: u32 = 27;
    pub const EXAMPLE: u32 = 30;
    pub const VENDOR_EXTENSION: u32 = 31;
}

/// Deepest schema nesting transcoded (the definitions nest a handful of levels; references
/// are not followed).
const MAX_DEPTH: usize = 64;

/// The protobuf form of a Swagger 2.0 JSON document.
pub fn encode_document(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(swagger) = doc.get("swagger").and_then(Value::as_str) {
        put_bytes(&mut out, document::SWAGGER, swagger.as_bytes());
    }
    let mut info = Vec::new();
    for (number, key) in [(1, "title"), (2, "version")] {
        if let Some(text) = doc.pointer(&format!("/info/{key}")).and_then(Value::as_str) {
            put_bytes(&mut info, number, text.as_bytes());
        }
    }
    put_bytes(&mut out, document::INFO, &info);
    // Paths are present (an empty message) so clients see a document with no operations.
    put_bytes(&mut out, document::PATHS, &[]);
    let mut definitions = Vec::new();
    if let Some(Value::Object(defs)) = doc.get("definitions") {
        named_schemas(defs, 1, &mut definitions);
    }
    put_bytes(&mut out, document::DEFINITIONS, &definitions);
    out
}

/// `repeated NamedSchema` (field `number`) of a JSON object's members.
fn named_schemas(members: &Map<String, Value>, depth: usize, out: &mut Vec<u8>) {
    for (name, value) in members {
        let mut named = Vec::new();
        put_bytes(&mut named, 1, name.as_bytes());
        put_bytes(&mut named, 2, &encode_schema(value, depth));
        put_bytes(out, 1, &named);
    }
}

/// An `Any` holding a JSON value as its YAML text.
fn any(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 2, value.to_string().as_bytes());
    out
}

/// A `$ref` standing alone or as the only member of `allOf`.
fn reference(schema: &Map<String, Value>) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return Some(r);
    }
    match schema
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([only]) => only.get("$ref").and_then(Value::as_str),
        _ => None,
    }
}

/// One `Schema` message.
fn encode_schema(value: &Value, depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let Value::Object(s) = value else {
        return out;
    };
    if depth > MAX_DEPTH {
        return out;
    }
    let next = depth + 1;
    if let Some(r) = reference(s) {
        put_bytes(&mut out, schema::REF, r.as_bytes());
    }
    for (key, v) in s {
        match (key.as_str(), v) {
            ("format", Value::String(t)) => put_bytes(&mut out, schema::FORMAT, t.as_bytes()),
            ("title", Value::String(t)) => put_bytes(&mut out, schema::TITLE, t.as_bytes()),
            ("description", Value::String(t)) => {
                put_bytes(&mut out, schema::DESCRIPTION, t.as_bytes());
            }
            ("pattern", Value::String(t)) => put_bytes(&mut out, schema::PATTERN, t.as_bytes()),
            ("discriminator", Value::String(t)) => {
                put_bytes(&mut out, schema::DISCRIMINATOR, t.as_bytes());
            }
            ("default", v) => put_bytes(&mut out, schema::DEFAULT, &any(v)),
            ("example", v) => put_bytes(&mut out, schema::EXAMPLE, &any(v)),
            ("multipleOf", Value::Number(n)) => double(&mut out, schema::MULTIPLE_OF, n),
            ("maximum", Value::Number(n)) => double(&mut out, schema::MAXIMUM, n),
            ("minimum", Value::Number(n)) => double(&mut out, schema::MINIMUM, n),
            ("exclusiveMaximum", Value::Bool(true)) => {
                put_varint_field(&mut out, schema::EXCLUSIVE_MAXIMUM, 1);
            }
            ("exclusiveMinimum", Value::Bool(true)) => {
                put_varint_field(&mut out, schema::EXCLUSIVE_MINIMUM, 1);
            }
            ("uniqueItems", Value::Bool(true)) => {
                put_varint_field(&mut out, schema::UNIQUE_ITEMS, 1);
            }
            ("readOnly", Value::Bool(true)) => put_varint_field(&mut out, schema::READ_ONLY, 1),
            ("maxLength", Value::Number(n)) => int64(&mut out, schema::MAX_LENGTH, n),
            ("minLength", Value::Number(n)) => int64(&mut out, schema::MIN_LENGTH, n),
            ("maxItems", Value::Number(n)) => int64(&mut out, schema::MAX_ITEMS, n),
            ("minItems", Value::Number(n)) => int64(&mut out, schema::MIN_ITEMS, n),
            ("maxProperties", Value::Number(n)) => int64(&mut out, schema::MAX_PROPERTIES, n),
            ("minProperties", Value::Number(n)) => int64(&mut out, schema::MIN_PROPERTIES, n),
            ("required", Value::Array(names)) => {
                for name in names.iter().filter_map(Value::as_str) {
                    put_bytes(&mut out, schema::REQUIRED, name.as_bytes());
                }
            }
            ("enum", Value::Array(values)) => {
                for v in values {
                    put_bytes(&mut out, schema::ENUM, &any(v));
                }
            }
            ("additionalProperties", Value::Bool(b)) => {
                let mut item = Vec::new();
                put_varint_field(&mut item, 2, u64::from(*b));
                put_bytes(&mut out, schema::ADDITIONAL_PROPERTIES, &item);
            }
            ("additionalProperties", v @ Value::Object(_)) => {
                let mut item = Vec::new();
                put_bytes(&mut item, 1, &encode_schema(v, next));
                put_bytes(&mut out, schema::ADDITIONAL_PROPERTIES, &item);
            }
            ("type", Value::String(t)) => {
                let mut item = Vec::new();
                put_bytes(&mut item, 1, t.as_bytes());
                put_bytes(&mut out, schema::TYPE, &item);
            }
            ("type", Value::Array(types)) => {
                // Swagger 2.0 has no null type; `["string", "null"]` is a string.
                let mut item = Vec::new();
                for t in types
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                {
                    put_bytes(&mut item, 1, t.as_bytes());
                }
                put_bytes(&mut out, schema::TYPE, &item);
            }
            ("items", v @ Value::Object(_)) => {
                let mut item = Vec::new();
                put_bytes(&mut item, 1, &encode_schema(v, next));
                put_bytes(&mut out, schema::ITEMS, &item);
            }
            ("items", Value::Array(schemas)) => {
                let mut item = Vec::new();
                for v in schemas {
                    put_bytes(&mut item, 1, &encode_schema(v, next));
                }
                put_bytes(&mut out, schema::ITEMS, &item);
            }
            ("allOf", Value::Array(schemas)) if reference(s).is_none() => {
                for v in schemas {
                    put_bytes(&mut out, schema::ALL_OF, &encode_schema(v, next));
                }
            }
            ("properties", Value::Object(members)) => {
                let mut properties = Vec::new();
                named_schemas(members, next, &mut properties);
                put_bytes(&mut out, schema::PROPERTIES, &properties);
            }
            (name, v) if name.starts_with("x-") => {
                let mut named = Vec::new();
                put_bytes(&mut named, 1, name.as_bytes());
                put_bytes(&mut named, 2, &any(v));
                put_bytes(&mut out, schema::VENDOR_EXTENSION, &named);
            }
            _ => {}
        }
    }
    out
}

fn double(out: &mut Vec<u8>, number: u32, n: &serde_json::Number) {
    if let Some(f) = n.as_f64() {
        put_double_field(out, number, f);
    }
}

fn int64(out: &mut Vec<u8>, number: u32, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        // int64 goes on the wire as its two's-complement varint.
        put_varint_field(out, number, u64::from_ne_bytes(i.to_ne_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::protobuf::wire::{Reader, Value as Wire};
    use serde_json::json;

    /// The length-delimited fields of a message, by number, in order.
    fn fields(buf: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut reader = Reader::new(buf);
        let mut out = Vec::new();
        while let Some((n, v)) = reader.next_field().unwrap() {
            match v {
                Wire::Bytes(b) => out.push((n, b.to_vec())),
                Wire::Varint(x) => out.push((n, x.to_string().into_bytes())),
                Wire::Fixed => out.push((n, Vec::new())),
            }
        }
        out
    }

    fn field(buf: &[u8], number: u32) -> Vec<Vec<u8>> {
        fields(buf)
            .into_iter()
            .filter(|(n, _)| *n == number)
            .map(|(_, b)| b)
            .collect()
    }

    fn text(buf: &[u8], number: u32) -> String {
        String::from_utf8(field(buf, number).concat()).unwrap()
    }

    #[test]
    fn a_document_carries_definitions_with_types_properties_and_extensions() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Bulwark", "version": "1"},
            "definitions": {
                "io.k8s.api.core.v1.ConfigMap": {
                    "description": "Holds data.",
                    "type": "object",
                    "required": ["metadata"],
                    "properties": {
                        "data": {"type": "object", "additionalProperties": {"type": "string"}},
                        "metadata": {"allOf": [{"$ref": "#/definitions/Meta"}], "description": "m"},
                        "items": {"type": "array", "items": {"type": ["string", "null"]}},
                        "n": {"type": "integer", "format": "int32", "minimum": 1, "maxLength": 5},
                    },
                    "nullable": true,
                    "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}],
                }
            }
        });
        let pb = encode_document(&doc);
        assert_eq!(text(&pb, document::SWAGGER), "2.0");
        assert_eq!(text(&field(&pb, document::INFO)[0], 1), "Bulwark");
        assert_eq!(field(&pb, document::PATHS), vec![Vec::<u8>::new()]);
        let defs = field(&pb, document::DEFINITIONS);
        let named = field(&defs[0], 1);
        assert_eq!(named.len(), 1);
        assert_eq!(text(&named[0], 1), "io.k8s.api.core.v1.ConfigMap");
        let s = &field(&named[0], 2)[0];
        assert_eq!(text(s, schema::DESCRIPTION), "Holds data.");
        assert_eq!(text(&field(s, schema::TYPE)[0], 1), "object");
        assert_eq!(text(s, schema::REQUIRED), "metadata");
        let ext = &field(s, schema::VENDOR_EXTENSION)[0];
        assert_eq!(text(ext, 1), "x-kubernetes-group-version-kind");
        let yaml = text(&field(ext, 2)[0], 2);
        let gvk: Value = serde_json::from_str(&yaml).unwrap();
        assert_eq!(gvk[0]["kind"], "ConfigMap");
        // `nullable` has no Swagger 2.0 form.
        let mut numbers: Vec<u32> = fields(s).into_iter().map(|(n, _)| n).collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers,
            [
                schema::DESCRIPTION,
                schema::REQUIRED,
                schema::TYPE,
                schema::PROPERTIES,
                schema::VENDOR_EXTENSION
            ]
        );

        let props = &field(s, schema::PROPERTIES)[0];
        let by_name: std::collections::BTreeMap<String, Vec<u8>> = field(props, 1)
            .iter()
            .map(|p| (text(p, 1), field(p, 2).remove(0)))
            .collect();
        let data = &by_name["data"];
        let additional = &field(data, schema::ADDITIONAL_PROPERTIES)[0];
        assert_eq!(
            text(&field(&field(additional, 1)[0], schema::TYPE)[0], 1),
            "string"
        );
        let metadata = &by_name["metadata"];
        assert_eq!(text(metadata, schema::REF), "#/definitions/Meta");
        assert!(field(metadata, schema::ALL_OF).is_empty());
        let items = &field(&by_name["items"], schema::ITEMS)[0];
        let item_schemas = field(items, 1);
        assert_eq!(item_schemas.len(), 1);
        assert_eq!(
            field(&field(&item_schemas[0], schema::TYPE)[0], 1),
            [b"string"]
        );
        let n = &by_name["n"];
        assert_eq!(text(n, schema::FORMAT), "int32");
        assert_eq!(text(n, schema::MAX_LENGTH), "5");
    }

    #[test]
    fn the_served_document_names_every_kind() {
        let table = crate::registry::builtin();
        let doc: Value = serde_json::from_slice(&super::super::v2_json(table)).unwrap();
        let pb = encode_document(&doc);
        let defs = &field(&pb, document::DEFINITIONS)[0];
        let names: Vec<String> = field(defs, 1).iter().map(|n| text(n, 1)).collect();
        assert!(names.contains(&"io.k8s.api.apps.v1.Deployment".to_string()));
        assert_eq!(names.len(), doc["definitions"].as_object().unwrap().len());
    }
}
