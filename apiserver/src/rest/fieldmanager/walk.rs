//! Walking objects by their schema: which paths an object sets, which differ between two
//! objects, merging an applied configuration into a live object, and removing paths.
//!
//! Lists are merged as the schema says: associative lists item by item (by their key
//! fields), sets value by value, all other lists as a whole. Maps and structs are merged key
//! by key unless atomic. Kinds without an upstream schema (Bulwark's own) are deduced, as
//! upstream deduces custom resources without one: objects key by key, lists whole.
//! Associative lists are indexed once per list, so every walk is linear in the objects.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::fieldset::{Element, FieldSet};
use crate::registry::schema::{Merge, Schema, Special, Type};

/// How a value at some path merges.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape<'a> {
    /// A struct of the schema, by message index: field by field.
    Struct(usize),
    /// A map whose values have this type: key by key.
    Map(&'a Type),
    /// A list of structs identified by these key fields.
    ListMap(&'a Type, &'a [String]),
    /// A list of distinct scalars.
    ListSet,
    /// Replaced as a whole.
    Atomic,
    /// No schema: objects key by key, everything else whole.
    Deduced,
}

/// A schema and the walks over it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walker<'a> {
    pub schema: &'a Schema,
}

impl<'a> Walker<'a> {
    /// The shape of a value of type `ty` whose field says `merge`.
    fn shape_of(&self, ty: &'a Type, merge: &'a Merge) -> Shape<'a> {
        match ty {
            Type::Repeated(item) => match merge {
                Merge::ListMap(keys) => Shape::ListMap(item, keys),
                Merge::ListSet => Shape::ListSet,
                _ => Shape::Atomic,
            },
            Type::Map(value) => match merge {
                Merge::MapAtomic => Shape::Atomic,
                _ => Shape::Map(value),
            },
            Type::Message(index) => match self.schema.message(*index) {
                Some(m) if m.special == Special::None && !m.atomic => Shape::Struct(*index),
                _ => Shape::Atomic,
            },
            Type::Scalar(_) => Shape::Atomic,
        }
    }

    /// The shape of the member `key` of a value of `shape` (`value` is the member, for
    /// deduced shapes).
    fn child(&self, shape: Shape<'a>, key: &str, value: &Value) -> Shape<'a> {
        static DEFAULT: Merge = Merge::Default;
        match shape {
            Shape::Struct(index) => self
                .schema
                .message(index)
                .and_then(|m| m.json_field(self.schema, key))
                .map_or(Shape::Atomic, |f| self.shape_of(&f.ty, &f.merge)),
            Shape::Map(ty) => self.shape_of(ty, &DEFAULT),
            Shape::Deduced if value.is_object() => Shape::Deduced,
            _ => Shape::Atomic,
        }
    }

    /// The shape of an item of an associative list.
    fn item(&self, ty: &'a Type) -> Shape<'a> {
        match ty {
            Type::Message(index) => Shape::Struct(*index),
            _ => Shape::Atomic,
        }
    }

    /// Every path `value` sets (what applying it claims).
    pub(crate) fn fields_of(&self, shape: Shape<'a>, value: &Value) -> FieldSet {
        self.diff(shape, None, value)
    }

    /// The paths of `new` whose values differ from `old`'s (all of them without `old`); an
    /// associative list item that `old` lacks is itself a member.
    pub(crate) fn diff(&self, shape: Shape<'a>, old: Option<&Value>, new: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        match (shape, new) {
            (Shape::Struct(_) | Shape::Map(_) | Shape::Deduced, Value::Object(fields))
                if !fields.is_empty() =>
            {
                let old_fields = old.and_then(Value::as_object);
                for (key, value) in fields {
                    if value.is_null() {
                        continue;
                    }
                    let child = self.child(shape, key, value);
                    let before = old_fields.and_then(|o| o.get(key));
                    let changed = self.diff(child, before, value);
                    if !changed.is_empty() {
                        set.children.insert(Element::Field(key.clone()), changed);
                    }
                }
                if set.children.is_empty() && old.is_none() {
                    set.this = true;
                }
            }
            (Shape::ListMap(item, keys), Value::Array(items)) if !items.is_empty() => {
                let before = old.map(|o| index_by_key(o, keys)).unwrap_or_default();
                for value in items {
                    let key = key_of(value, keys);
                    let previous = before.get(&key).copied();
                    let mut changed = self.diff(self.item(item), previous, value);
                    if previous.is_none() {
                        changed.this = true;
                    }
                    if !changed.is_empty() {
                        set.children.insert(Element::Key(key), changed);
                    }
                }
            }
            (Shape::ListSet, Value::Array(items)) if !items.is_empty() => {
                let before: HashSet<String> = old
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(Value::to_string).collect())
                    .unwrap_or_default();
                for value in items {
                    let text = value.to_string();
                    if !before.contains(&text) {
                        set.children.insert(Element::Value(text), FieldSet::leaf());
                    }
                }
            }
            _ => {
                if old != Some(new) {
                    set.this = true;
                }
            }
        }
        set
    }

    /// The paths `old` sets that `new` no longer does.
    pub(crate) fn removed(&self, shape: Shape<'a>, old: &Value, new: Option<&Value>) -> FieldSet {
        let Some(new) = new.filter(|n| !n.is_null()) else {
            return FieldSet::leaf();
        };
        let mut set = FieldSet::default();
        match (shape, old, new) {
            (
                Shape::Struct(_) | Shape::Map(_) | Shape::Deduced,
                Value::Object(before),
                Value::Object(after),
            ) => {
                for (key, value) in before {
                    if value.is_null() {
                        continue;
                    }
                    let child = self.child(shape, key, value);
                    let gone = self.removed(child, value, after.get(key));
                    if !gone.is_empty() {
                        set.children.insert(Element::Field(key.clone()), gone);
                    }
                }
            }
            (Shape::ListMap(item, keys), Value::Array(before), Value::Array(_)) => {
                let after = index_by_key(new, keys);
                for value in before {
                    let key = key_of(value, keys);
                    let gone = self.removed(self.item(item), value, after.get(&key).copied());
                    if !gone.is_empty() {
                        set.children.insert(Element::Key(key), gone);
                    }
                }
            }
            (Shape::ListSet, Value::Array(before), Value::Array(after)) => {
                let after: HashSet<String> = after.iter().map(Value::to_string).collect();
                for value in before {
                    let text = value.to_string();
                    if !after.contains(&text) {
                        set.children.insert(Element::Value(text), FieldSet::leaf());
                    }
                }
            }
            _ => {}
        }
        set
    }

    /// `applied` merged into `live`: what `applied` sets wins, everything else stays.
    pub(crate) fn merge(&self, shape: Shape<'a>, live: &Value, applied: &Value) -> Value {
        match (shape, live, applied) {
            (
                Shape::Struct(_) | Shape::Map(_) | Shape::Deduced,
                Value::Object(live_fields),
                Value::Object(applied_fields),
            ) => {
                let mut out = live_fields.clone();
                for (key, value) in applied_fields {
                    if value.is_null() {
                        out.remove(key);
                        continue;
                    }
                    let merged = match live_fields.get(key) {
                        Some(current) => self.merge(self.child(shape, key, value), current, value),
                        None => value.clone(),
                    };
                    out.insert(key.clone(), merged);
                }
                Value::Object(out)
            }
            (Shape::ListMap(item, keys), Value::Array(live_items), Value::Array(applied_items)) => {
                let mut out = live_items.clone();
                let mut positions: HashMap<String, usize> = out
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (key_of(v, keys), i))
                    .collect();
                for value in applied_items {
                    let key = key_of(value, keys);
                    match positions.get(&key).and_then(|i| out.get_mut(*i)) {
                        Some(current) => *current = self.merge(self.item(item), current, value),
                        None => {
                            positions.insert(key, out.len());
                            out.push(value.clone());
                        }
                    }
                }
                Value::Array(out)
            }
            (Shape::ListSet, Value::Array(live_items), Value::Array(applied_items)) => {
                let mut out = live_items.clone();
                let mut present: HashSet<String> = out.iter().map(Value::to_string).collect();
                for value in applied_items {
                    if present.insert(value.to_string()) {
                        out.push(value.clone());
                    }
                }
                Value::Array(out)
            }
            _ => applied.clone(),
        }
    }

    /// Removes the member paths of `set` from `value`.
    pub(crate) fn remove(&self, shape: Shape<'a>, value: &mut Value, set: &FieldSet) {
        match (shape, value) {
            (Shape::Struct(_) | Shape::Map(_) | Shape::Deduced, Value::Object(fields)) => {
                for (element, below) in &set.children {
                    let Element::Field(key) = element else {
                        continue;
                    };
                    if below.this {
                        fields.remove(key);
                    } else if let Some(child_value) = fields.get_mut(key) {
                        let child = self.child(shape, key, child_value);
                        self.remove(child, child_value, below);
                    }
                }
            }
            (Shape::ListMap(item, keys), Value::Array(items)) => {
                for (element, below) in &set.children {
                    let Element::Key(key) = element else {
                        continue;
                    };
                    if below.this {
                        items.retain(|v| key_of(v, keys) != *key);
                    } else if let Some(found) = items.iter_mut().find(|v| key_of(v, keys) == *key) {
                        self.remove(self.item(item), found, below);
                    }
                }
            }
            (Shape::ListSet, Value::Array(items)) => {
                let gone: HashSet<&String> = set
                    .children
                    .iter()
                    .filter_map(|(e, below)| match e {
                        Element::Value(text) if below.this => Some(text),
                        _ => None,
                    })
                    .collect();
                items.retain(|v| !gone.contains(&v.to_string()));
            }
            _ => {}
        }
    }
}

/// Upstream's defaults for key fields clients may leave out (`protocol` of container and
/// service ports), so `{containerPort: 80}` and `{containerPort: 80, protocol: TCP}` are the
/// same item.
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

/// The key of an associative list item: its key fields as compact JSON, keys sorted.
fn key_of(item: &Value, keys: &[String]) -> String {
    let mut key = Map::new();
    for name in keys {
        let value = item.get(name).cloned().unwrap_or_else(|| {
            KEY_DEFAULTS
                .iter()
                .find(|(k, _)| k == name)
                .map_or(Value::Null, |(_, v)| Value::String((*v).to_owned()))
        });
        key.insert(name.clone(), value);
    }
    Value::Object(key).to_string()
}

/// The items of a list by their keys.
fn index_by_key<'v>(list: &'v Value, keys: &[String]) -> HashMap<String, &'v Value> {
    list.as_array()
        .map(|items| items.iter().map(|v| (key_of(v, keys), v)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::schema::SCHEMA;
    use serde_json::json;

    fn deployment() -> (Walker<'static>, Shape<'static>) {
        let schema = SCHEMA.as_ref().unwrap();
        let index = schema.kind("apps/v1", "Deployment").unwrap();
        (Walker { schema }, Shape::Struct(index))
    }

    #[test]
    fn fields_follow_the_schema() {
        let (w, root) = deployment();
        let obj = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "app", "image": "i",
                "ports": [{"containerPort": 80}]}]}}}});
        let set = w.fields_of(root, &obj);
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:containerPort": {}}}
                }}}}
            }})
        );
    }

    #[test]
    fn merge_diff_and_remove() {
        let (w, root) = deployment();
        let live = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "old", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "s"}]}}}});
        let applied = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "new"}, {"name": "third", "image": "t"}]}}}});
        let merged = w.merge(root, &live, &applied);
        let containers = &merged["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "new");
        assert_eq!(
            containers[0]["env"][0]["value"], "1",
            "unapplied fields stay"
        );
        assert_eq!(containers[1]["name"], "side");
        assert_eq!(containers[2]["name"], "third");
        let changed = w.diff(root, Some(&live), &merged);
        assert_eq!(
            changed.to_fields_v1(),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {"f:image": {}},
                "k:{\"name\":\"third\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}})
        );
        let gone = w.removed(root, &live, Some(&merged));
        assert!(gone.is_empty());
        let mut trimmed = merged.clone();
        let side = FieldSet::from_fields_v1(&json!({"f:spec": {"f:replicas": {},
            "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"side\"}": {}}}}}}))
        .unwrap();
        w.remove(root, &mut trimmed, &side);
        assert!(trimmed["spec"].get("replicas").is_none());
        assert_eq!(
            trimmed["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            w.removed(root, &merged, Some(&trimmed)).to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"side\"}": {}}}}}})
        );
    }

    /// Large associative lists cost linear time (an env list of 50,000 entries).
    #[test]
    fn big_lists_are_indexed() {
        let (w, root) = deployment();
        let env: Vec<Value> = (0..50_000)
            .map(|i| json!({"name": format!("V{i}"), "value": "x"}))
            .collect();
        let obj = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "i", "env": env}]}}}});
        let merged = w.merge(root, &obj, &obj);
        assert!(w.diff(root, Some(&obj), &merged).is_empty());
        assert!(w.removed(root, &obj, Some(&merged)).is_empty());
    }
}
