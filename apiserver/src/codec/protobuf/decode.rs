//! Protobuf → JSON, as upstream's Go types would marshal what they unmarshalled: zero values
//! of `omitempty` non-pointer fields are left out, explicit zeros of pointer fields kept,
//! inline structs spliced into their parent, and the special messages in their JSON forms.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::wire::{self, Reader};
use super::{CodecError, at, message_at};
use crate::registry::schema::{Field, Scalar, Schema, Special, Type};

/// Decodes the message at `index` from `bytes`.
pub(super) fn message(
    schema: &Schema,
    index: usize,
    bytes: &[u8],
    depth: usize,
) -> Result<Value, CodecError> {
    let msg = message_at(schema, index, depth)?;
    match msg.special {
        Special::None => {}
        Special::Time | Special::MicroTime => {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            let (mut seconds, mut nanos) = (0i64, 0i64);
            let mut reader = Reader::new(bytes);
            while let Some((number, value)) = reader.next_field()? {
                match (number, value) {
                    (1, wire::Value::Varint(v)) => seconds = v as i64,
                    (2, wire::Value::Varint(v)) => nanos = i64::from(v as i32),
                    _ => {}
                }
            }
            return Ok(Value::String(if msg.special == Special::Time {
                super::special::format_time(seconds)?
            } else {
                super::special::format_micro_time(seconds, nanos)?
            }));
        }
        Special::Duration => {
            let mut nanos = 0i64;
            let mut reader = Reader::new(bytes);
            while let Some((number, value)) = reader.next_field()? {
                if let (1, wire::Value::Varint(v)) = (number, value) {
                    nanos = v as i64;
                }
            }
            return Ok(Value::String(super::special::format_duration(nanos)));
        }
        Special::Quantity => {
            let mut text = "0".to_owned();
            let mut reader = Reader::new(bytes);
            while let Some((number, value)) = reader.next_field()? {
                if let (1, wire::Value::Bytes(b)) = (number, value) {
                    text = utf8(b)?.to_owned();
                }
            }
            return Ok(Value::String(text));
        }
        Special::IntOrString => {
            let (mut kind, mut int, mut text) = (0u64, 0i64, String::new());
            let mut reader = Reader::new(bytes);
            while let Some((number, value)) = reader.next_field()? {
                match (number, value) {
                    (1, wire::Value::Varint(v)) => kind = v,
                    (2, wire::Value::Varint(v)) => int = i64::from(v as i32),
                    (3, wire::Value::Bytes(b)) => utf8(b)?.clone_into(&mut text),
                    _ => {}
                }
            }
            return Ok(if kind == 1 {
                Value::String(text)
            } else {
                Value::from(int)
            });
        }
        Special::RawExtension | Special::FieldsV1 => {
            let mut raw: &[u8] = &[];
            let mut reader = Reader::new(bytes);
            while let Some((number, value)) = reader.next_field()? {
                if let (1, wire::Value::Bytes(b)) = (number, value) {
                    raw = b;
                }
            }
            return embedded(schema, raw, depth);
        }
        Special::List => {
            let mut items = Vec::new();
            let mut reader = Reader::new(bytes);
            while let Some((number, value)) = reader.next_field()? {
                if let Some(field) = msg.field(number)
                    && let Type::Repeated(item) = &field.ty
                {
                    repeated(schema, item, value, depth, &mut items)?;
                }
            }
            return Ok(Value::Array(items));
        }
    }
    let mut obj = Map::new();
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field()? {
        let Some(field) = msg.field(number) else {
            continue;
        };
        set(schema, field, value, depth, &mut obj).map_err(|e| at(field_name(field), e))?;
    }
    Ok(Value::Object(obj))
}

fn field_name(field: &Field) -> &str {
    if field.inline {
        "(inline)"
    } else {
        &field.json
    }
}

/// Puts one wire field into the JSON object.
fn set(
    schema: &Schema,
    field: &Field,
    value: wire::Value<'_>,
    depth: usize,
    obj: &mut Map<String, Value>,
) -> Result<(), CodecError> {
    match &field.ty {
        Type::Repeated(item) => {
            let slot = obj
                .entry(field.json.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = slot {
                repeated(schema, item, value, depth, items)?;
            }
        }
        Type::Map(value_ty) => {
            let wire::Value::Bytes(entry) = value else {
                return Err(CodecError::WireType);
            };
            let (key, entry_value) = map_entry(schema, value_ty, entry, depth)?;
            let slot = obj
                .entry(field.json.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = slot {
                map.insert(key, entry_value);
            }
        }
        ty => {
            let decoded = single(schema, ty, value, depth)?;
            if field.inline {
                if let Value::Object(inner) = decoded {
                    obj.extend(inner);
                }
            } else if decoded.is_null() || (field.omitempty && !field.pointer && is_zero(&decoded))
            {
                obj.remove(&field.json);
            } else {
                obj.insert(field.json.clone(), decoded);
            }
        }
    }
    Ok(())
}

/// Appends the element(s) of a repeated field: scalars may come packed.
fn repeated(
    schema: &Schema,
    item: &Type,
    value: wire::Value<'_>,
    depth: usize,
    items: &mut Vec<Value>,
) -> Result<(), CodecError> {
    if let (
        Type::Scalar(s @ (Scalar::Int32 | Scalar::Int64 | Scalar::Bool)),
        wire::Value::Bytes(b),
    ) = (item, value)
    {
        let mut packed = Reader::new(b);
        while !packed.is_empty() {
            let v = packed.varint()?;
            items.push(scalar_varint(*s, v));
        }
        return Ok(());
    }
    items.push(single(schema, item, value, depth)?);
    Ok(())
}

fn map_entry(
    schema: &Schema,
    value_ty: &Type,
    entry: &[u8],
    depth: usize,
) -> Result<(String, Value), CodecError> {
    let mut key = String::new();
    let mut found = None;
    let mut reader = Reader::new(entry);
    while let Some((number, value)) = reader.next_field()? {
        match number {
            1 => match value {
                wire::Value::Bytes(b) => utf8(b)?.clone_into(&mut key),
                _ => return Err(CodecError::WireType),
            },
            2 => found = Some(single(schema, value_ty, value, depth)?),
            _ => {}
        }
    }
    let value = match found {
        Some(v) => v,
        // An absent value is the type's zero value.
        None => match value_ty {
            Type::Scalar(Scalar::String | Scalar::Bytes) => Value::String(String::new()),
            Type::Scalar(s) => scalar_varint(*s, 0),
            Type::Message(index) => message(schema, *index, &[], depth + 1)?,
            Type::Repeated(_) | Type::Map(_) => Value::Null,
        },
    };
    Ok((key, value))
}

fn single(
    schema: &Schema,
    ty: &Type,
    value: wire::Value<'_>,
    depth: usize,
) -> Result<Value, CodecError> {
    match (ty, value) {
        (Type::Scalar(Scalar::String), wire::Value::Bytes(b)) => {
            Ok(Value::String(utf8(b)?.to_owned()))
        }
        (Type::Scalar(Scalar::Bytes), wire::Value::Bytes(b)) => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b),
        )),
        (
            Type::Scalar(s @ (Scalar::Int32 | Scalar::Int64 | Scalar::Bool)),
            wire::Value::Varint(v),
        ) => Ok(scalar_varint(*s, v)),
        (Type::Message(index), wire::Value::Bytes(b)) => message(schema, *index, b, depth + 1),
        _ => Err(CodecError::WireType),
    }
}

fn scalar_varint(scalar: Scalar, v: u64) -> Value {
    match scalar {
        Scalar::Int32 => Value::from(v as i32),
        Scalar::Bool => Value::Bool(v != 0),
        _ => Value::from(v as i64),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

fn utf8(b: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(b).map_err(|_| CodecError::NotUtf8)
}

/// The JSON of a `RawExtension` or `FieldsV1`: embedded JSON, or an embedded protobuf object.
fn embedded(schema: &Schema, raw: &[u8], depth: usize) -> Result<Value, CodecError> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(super::MAGIC) {
        return super::decode_enveloped(schema, raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|_| CodecError::Expected("embedded JSON"))
}
