//! Objects as Cedar values, following the [`ObjectModel`]: a field the model does not know, or
//! whose JSON does not have the modelled type, is left out rather than guessed, so the entity
//! always conforms to the checked-in schema (tested against it with Cedar's own checker).

use cedar_policy::RestrictedExpression;
use serde_json::{Map, Value};

use crate::object_model::{Field, FieldType, ObjectModel};

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

/// One JSON value as `ty`; None when it does not have that type.
pub fn value(model: &ObjectModel, ty: &FieldType, json: &Value) -> Option<RestrictedExpression> {
    match (ty, json) {
        (FieldType::String, Value::String(s)) => Some(string(s)),
        (FieldType::String, Value::Number(n)) => Some(string(&n.to_string())),
        (FieldType::Long, Value::Number(n)) => n.as_i64().map(RestrictedExpression::new_long),
        (FieldType::Bool, Value::Bool(b)) => Some(RestrictedExpression::new_bool(*b)),
        (FieldType::Set(inner), Value::Array(items)) => Some(RestrictedExpression::new_set(
            items.iter().filter_map(|item| value(model, inner, item)),
        )),
        (FieldType::Record(index), Value::Object(map)) => {
            let record = model.records.get(*index)?;
            record_value(model, &record.fields, map)
        }
        (FieldType::Map(inner), Value::Object(map)) => {
            let keys = RestrictedExpression::new_set(map.keys().map(|k| string(k)));
            let entries = RestrictedExpression::new_set(map.iter().filter_map(|(k, v)| {
                let v = value(model, inner, v)?;
                RestrictedExpression::new_record([
                    ("key".to_owned(), string(k)),
                    ("value".to_owned(), v),
                ])
                .ok()
            }));
            RestrictedExpression::new_record([
                ("keys".to_owned(), keys),
                ("entries".to_owned(), entries),
            ])
            .ok()
        }
        _ => None,
    }
}

/// The attributes of a JSON object with `fields`.
pub fn attributes(
    model: &ObjectModel,
    fields: &[Field],
    map: &Map<String, Value>,
) -> Vec<(String, RestrictedExpression)> {
    // Walk the smaller side: objects usually set few of the fields their type has.
    let mut out = Vec::with_capacity(map.len());
    for (name, json) in map {
        let Ok(i) = fields.binary_search_by(|f| f.name.as_str().cmp(name)) else {
            continue;
        };
        let Some(field) = fields.get(i) else {
            continue;
        };
        if let Some(v) = value(model, &field.ty, json) {
            out.push((name.clone(), v));
        }
    }
    out
}

fn record_value(
    model: &ObjectModel,
    fields: &[Field],
    map: &Map<String, Value>,
) -> Option<RestrictedExpression> {
    RestrictedExpression::new_record(attributes(model, fields, map)).ok()
}
