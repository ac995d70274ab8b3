//! Sets of field paths, and upstream's `FieldsV1` encoding of them (`managedFields`).
//!
//! A path is a sequence of elements: `f:<name>` (a struct field or map key), `k:<json>` (the
//! item of an associative list with these key values), `v:<json>` (the item of a set list)
//! and `i:<n>` (a list index, read but never written). In `FieldsV1` a member path ends in
//! `{}`, and a path that is a member and has members below it carries `".": {}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Element {
    /// A struct field or a map key.
    Field(String),
    /// An associative list item, by its key fields (compact JSON, keys sorted).
    Key(String),
    /// A set item, by its value (compact JSON).
    Value(String),
    /// A list index.
    Index(usize),
}

impl Element {
    fn encode(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(json) => format!("k:{json}"),
            Self::Value(json) => format!("v:{json}"),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(text: &str) -> Result<Self, String> {
        let (prefix, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not a path element"))?;
        let json = |rest: &str| -> Result<String, String> {
            let v: Value = serde_json::from_str(rest)
                .map_err(|_| format!("{text:?}: the value is not JSON"))?;
            Ok(v.to_string())
        };
        match prefix {
            "f" => Ok(Self::Field(rest.to_owned())),
            "k" => {
                let key = json(rest)?;
                if !key.starts_with('{') {
                    return Err(format!("{text:?}: a key must be a JSON object"));
                }
                Ok(Self::Key(key))
            }
            "v" => Ok(Self::Value(json(rest)?)),
            "i" => rest
                .parse()
                .map(Self::Index)
                .map_err(|_| format!("{text:?}: not an index")),
            _ => Err(format!("{text:?} has an unknown prefix")),
        }
    }

    /// The element as upstream prints it in conflict messages.
    pub(crate) fn display(&self) -> String {
        match self {
            Self::Field(name) => format!(".{name}"),
            Self::Key(json) => {
                let fields: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            Self::Value(json) => format!("[={json}]"),
            Self::Index(i) => format!("[{i}]"),
        }
    }
}

/// A set of paths, as a tree: a node is a member itself (`this`) and/or has members below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    /// Whether the path leading here is in the set.
    pub this: bool,
    /// Members below.
    pub children: BTreeMap<Element, FieldSet>,
}

/// Deepest `FieldsV1` accepted (objects nest far less; a bound against hostile input).
const MAX_DEPTH: usize = 100;

impl FieldSet {
    /// A set holding only the empty path (the node itself).
    pub(crate) fn leaf() -> Self {
        Self {
            this: true,
            children: BTreeMap::new(),
        }
    }

    /// Whether no path is in the set.
    pub(crate) fn is_empty(&self) -> bool {
        !self.this && self.children.values().all(Self::is_empty)
    }

    /// The child set at `element`, created empty if absent.
    pub(crate) fn child(&mut self, element: Element) -> &mut FieldSet {
        self.children.entry(element).or_default()
    }

    /// Adds every path of `other`.
    pub(crate) fn union(&mut self, other: &FieldSet) {
        self.this |= other.this;
        for (element, set) in &other.children {
            self.child(element.clone()).union(set);
        }
    }

    /// Removes every path of `other`.
    pub(crate) fn subtract(&mut self, other: &FieldSet) {
        if other.this {
            self.this = false;
        }
        for (element, set) in &other.children {
            if let Some(mine) = self.children.get_mut(element) {
                mine.subtract(set);
            }
        }
        self.children.retain(|_, set| !set.is_empty());
    }

    /// The paths in both.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            this: self.this && other.this,
            children: BTreeMap::new(),
        };
        for (element, set) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = set.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(element.clone(), both);
                }
            }
        }
        out
    }

    /// Every path in the set, in order.
    pub(crate) fn paths(&self) -> Vec<Vec<Element>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<Element>, out: &mut Vec<Vec<Element>>) {
        if self.this {
            out.push(prefix.clone());
        }
        for (element, set) in &self.children {
            prefix.push(element.clone());
            set.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON of the set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.this && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (element, set) in &self.children {
            if !set.is_empty() {
                map.insert(element.encode(), set.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// Reads `FieldsV1` JSON (a 4xx-worthy message on malformed input).
    pub(crate) fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        Self::read(value, 0)
    }

    fn read(value: &Value, depth: usize) -> Result<FieldSet, String> {
        if depth > MAX_DEPTH {
            return Err("fieldsV1 is nested too deeply".into());
        }
        let map = value
            .as_object()
            .ok_or_else(|| "fieldsV1 must be an object of objects".to_owned())?;
        let mut set = FieldSet::default();
        for (key, child) in map {
            if key == "." {
                set.this = true;
                continue;
            }
            let element = Element::decode(key)?;
            let mut child_set = Self::read(child, depth + 1)?;
            if child_set.children.is_empty() {
                child_set.this = true;
            }
            set.children.insert(element, child_set);
        }
        Ok(set)
    }
}

/// A path as upstream prints it: `.spec.containers[name="app"].image`.
pub(crate) fn display(path: &[Element]) -> String {
    path.iter().map(Element::display).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips_as_upstream_writes_it() {
        let v1 = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}},
                "f:finalizers": {"v:\"a\"": {}}
            }
        });
        let set = FieldSet::from_fields_v1(&v1).unwrap();
        assert_eq!(set.to_fields_v1(), v1);
        let paths: Vec<String> = set.paths().iter().map(|p| display(p)).collect();
        assert!(paths.contains(&".spec.template.spec.containers[name=\"app\"].image".to_owned()));
        assert!(paths.contains(&".spec.finalizers[=\"a\"]".to_owned()));
        assert!(paths.contains(&".metadata.labels".to_owned()));
    }

    #[test]
    fn set_operations() {
        let a = FieldSet::from_fields_v1(&json!({"f:a": {}, "f:b": {"f:c": {}}})).unwrap();
        let b = FieldSet::from_fields_v1(&json!({"f:b": {"f:c": {}, "f:d": {}}})).unwrap();
        let both = a.intersection(&b);
        assert_eq!(both.to_fields_v1(), json!({"f:b": {"f:c": {}}}));
        let mut rest = a.clone();
        rest.subtract(&b);
        assert_eq!(rest.to_fields_v1(), json!({"f:a": {}}));
        let mut all = a;
        all.union(&b);
        assert_eq!(
            all.to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}})
        );
        assert!(FieldSet::default().is_empty());
    }

    #[test]
    fn malformed_fields_v1_is_an_error() {
        for bad in [
            json!([]),
            json!({"x": {}}),
            json!({"f:a": 5}),
            json!({"k:[1]": {}}),
            json!({"v:{": {}}),
            json!({"i:x": {}}),
            json!({"q:a": {}}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
        let mut deep = json!({});
        for _ in 0..200 {
            deep = json!({"f:a": deep});
        }
        assert!(FieldSet::from_fields_v1(&deep).is_err());
    }
}
