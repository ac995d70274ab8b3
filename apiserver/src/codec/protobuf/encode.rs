//! JSON → protobuf: fields in number order, map entries sorted by key, as upstream writes
//! them, so the bytes match upstream's wherever the JSON holds the same values.

use base64::Engine as _;
use serde_json::Value;

use super::wire::{put_bytes, put_varint_field};
use super::{CodecError, at, message_at};
use crate::registry::schema::{Field, Scalar, Schema, Special, Type};

/// Encodes `value` as the message at `index`, appending to `out`.
pub(super) fn message(
    schema: &Schema,
    index: usize,
    value: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    let msg = message_at(schema, index, depth)?;
    match msg.special {
        Special::None => {}
        Special::Time | Special::MicroTime => {
            let text = value
                .as_str()
                .ok_or(CodecError::Expected("a time string"))?;
            let (seconds, nanos) = super::special::parse_time(text)?;
            put_varint_field(out, 1, seconds as u64);
            put_varint_field(out, 2, i64::from(nanos) as u64);
            return Ok(());
        }
        Special::Duration => {
            let text = value
                .as_str()
                .ok_or(CodecError::Expected("a duration string"))?;
            put_varint_field(out, 1, super::special::parse_duration(text)? as u64);
            return Ok(());
        }
        Special::Quantity => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(CodecError::Expected("a quantity")),
            };
            put_bytes(out, 1, text.as_bytes());
            return Ok(());
        }
        Special::IntOrString => {
            match value {
                Value::Number(n) => {
                    let int = n.as_i64().ok_or(CodecError::Expected("an integer"))?;
                    let int =
                        i32::try_from(int).map_err(|_| CodecError::Expected("a 32-bit integer"))?;
                    put_varint_field(out, 1, 0);
                    put_varint_field(out, 2, i64::from(int) as u64);
                    put_bytes(out, 3, b"");
                }
                Value::String(s) => {
                    put_varint_field(out, 1, 1);
                    put_varint_field(out, 2, 0);
                    put_bytes(out, 3, s.as_bytes());
                }
                _ => return Err(CodecError::Expected("an integer or a string")),
            }
            return Ok(());
        }
        Special::RawExtension | Special::FieldsV1 => {
            let raw = serde_json::to_vec(value).map_err(|_| CodecError::Expected("JSON"))?;
            put_bytes(out, 1, &raw);
            return Ok(());
        }
        Special::List => {
            let items = value.as_array().ok_or(CodecError::Expected("an array"))?;
            if let Some(Field {
                number,
                ty: Type::Repeated(item),
                ..
            }) = msg.fields.first()
            {
                for v in items {
                    single(schema, *number, item, v, out, depth)?;
                }
            }
            return Ok(());
        }
    }
    let obj = value.as_object().ok_or(CodecError::Expected("an object"))?;
    for field in &msg.fields {
        if field.inline {
            let Type::Message(inner) = field.ty else {
                continue;
            };
            let mut sub = Vec::new();
            message(schema, inner, value, &mut sub, depth + 1).map_err(|e| at("(inline)", e))?;
            put_bytes(out, field.number, &sub);
            continue;
        }
        let Some(v) = obj.get(&field.json).filter(|v| !v.is_null()) else {
            continue;
        };
        put_field(schema, field, v, out, depth).map_err(|e| at(&field.json, e))?;
    }
    Ok(())
}

fn put_field(
    schema: &Schema,
    field: &Field,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    match &field.ty {
        Type::Repeated(item) => {
            let items = v.as_array().ok_or(CodecError::Expected("an array"))?;
            for item_value in items {
                single(schema, field.number, item, item_value, out, depth)?;
            }
        }
        Type::Map(value_ty) => {
            let map = v.as_object().ok_or(CodecError::Expected("an object"))?;
            for (key, entry_value) in map {
                let mut entry = Vec::with_capacity(key.len() + 16);
                put_bytes(&mut entry, 1, key.as_bytes());
                if entry_value.is_null() {
                    put_bytes(&mut entry, 2, b"");
                } else {
                    single(schema, 2, value_ty, entry_value, &mut entry, depth)
                        .map_err(|e| at(key, e))?;
                }
                put_bytes(out, field.number, &entry);
            }
        }
        ty => single(schema, field.number, ty, v, out, depth)?,
    }
    Ok(())
}

fn single(
    schema: &Schema,
    number: u32,
    ty: &Type,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    match ty {
        Type::Scalar(Scalar::String) => {
            let s = v.as_str().ok_or(CodecError::Expected("a string"))?;
            put_bytes(out, number, s.as_bytes());
        }
        Type::Scalar(Scalar::Bytes) => {
            let s = v.as_str().ok_or(CodecError::Expected("a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| CodecError::Expected("base64"))?;
            put_bytes(out, number, &bytes);
        }
        Type::Scalar(Scalar::Int32) => {
            let n = v.as_i64().ok_or(CodecError::Expected("an integer"))?;
            let n = i32::try_from(n).map_err(|_| CodecError::Expected("a 32-bit integer"))?;
            put_varint_field(out, number, i64::from(n) as u64);
        }
        Type::Scalar(Scalar::Int64) => {
            let n = v.as_i64().ok_or(CodecError::Expected("an integer"))?;
            put_varint_field(out, number, n as u64);
        }
        Type::Scalar(Scalar::Bool) => {
            let b = v.as_bool().ok_or(CodecError::Expected("a boolean"))?;
            put_varint_field(out, number, u64::from(b));
        }
        Type::Message(index) => {
            let mut sub = Vec::new();
            message(schema, *index, v, &mut sub, depth + 1)?;
            put_bytes(out, number, &sub);
        }
        Type::Repeated(_) | Type::Map(_) => return Err(CodecError::Malformed("nested repetition")),
    }
    Ok(())
}
