//! The shape of every upstream type: fields by number with their JSON side, and how
//! server-side apply merges them. The protobuf codec and the field manager read it.
//!
//! Parsed once from `schema.txt`, which `scripts/gen-protobuf-schema` derives from upstream's
//! `generated.proto` files (numbers and types) and Go types (JSON names, `omitempty`,
//! pointers, inline structs, named slices, and the list/map/struct merge markers). Message
//! references are resolved to indexes, so walkers never look a name up per field.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The schema text, generated from k8s.io/api and k8s.io/apimachinery v0.33.9.
const SCHEMA_TEXT: &str = include_str!("schema.txt");

/// The parsed schema (`Err` only if `schema.txt` is malformed, which a unit test rules out).
pub(crate) static SCHEMA: LazyLock<Result<Schema, String>> =
    LazyLock::new(|| Schema::parse(SCHEMA_TEXT));

/// A scalar protobuf type (the only ones Kubernetes uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
}

/// The type of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Type {
    Scalar(Scalar),
    /// A message, by index into [`Schema::messages`].
    Message(usize),
    Repeated(Box<Type>),
    /// A map with string keys.
    Map(Box<Type>),
}

/// A field of a message.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub number: u32,
    /// The JSON name; empty for inline fields.
    pub json: String,
    pub ty: Type,
    /// Go `omitempty`: a zero value is left out of JSON.
    pub omitempty: bool,
    /// A Go pointer: an explicit zero is a value and is kept.
    pub pointer: bool,
    /// Go `inline`: the sub-message's fields are the parent JSON object's own.
    pub inline: bool,
    /// How server-side apply merges the field's value.
    pub merge: Merge,
}

/// How server-side apply merges a list or map field (`x-kubernetes-list-type`,
/// `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Merge {
    /// Lists: replaced as a whole; maps and structs: merged key by key.
    #[default]
    Default,
    /// A list of objects identified by these keys.
    ListMap(Vec<String>),
    /// A list of distinct scalars.
    ListSet,
    /// A map replaced as a whole.
    MapAtomic,
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// An ordinary message.
    None,
    /// `metav1.Time`: RFC 3339 seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `metav1.Duration`: a Go duration string.
    Duration,
    /// `resource.Quantity`: its string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`: embedded JSON (or an embedded protobuf object).
    RawExtension,
    /// `metav1.FieldsV1`: embedded JSON.
    FieldsV1,
    /// A Go named slice (`type ExtraValue []string`): a JSON array of its `items`.
    List,
}

/// One message.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub special: Special,
    /// An atomic struct (`+structType=atomic`): applied as a whole.
    pub atomic: bool,
    /// Sorted by number.
    pub fields: Vec<Field>,
}

impl Message {
    /// The field with `number`.
    pub fn field(&self, number: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .and_then(|i| self.fields.get(i))
    }

    /// The field whose JSON name is `name`, looking into inline fields too.
    pub fn json_field<'a>(&'a self, schema: &'a Schema, name: &str) -> Option<&'a Field> {
        self.fields.iter().find_map(|f| {
            if f.inline {
                let Type::Message(inner) = f.ty else {
                    return None;
                };
                schema.message(inner)?.json_field(schema, name)
            } else {
                (f.json == name).then_some(f)
            }
        })
    }
}

/// Every message, and which package serves each API group/version.
#[derive(Debug)]
pub(crate) struct Schema {
    pub messages: Vec<Message>,
    by_name: HashMap<String, usize>,
    packages: HashMap<(String, String), String>,
}

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

impl Schema {
    fn parse(text: &str) -> Result<Self, String> {
        struct RawField<'a> {
            number: u32,
            json: &'a str,
            ty: &'a str,
            flags: &'a str,
            merge: &'a str,
        }
        let mut raw: Vec<(&str, bool, bool, Vec<RawField<'_>>)> = Vec::new();
        let mut packages = HashMap::new();
        for (line_no, line) in text.lines().enumerate() {
            let bad = || format!("schema.txt line {}: {line:?}", line_no + 1);
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                None | Some("#") => {}
                Some("P") => {
                    let (Some(group), Some(version), Some(package)) =
                        (words.next(), words.next(), words.next())
                    else {
                        return Err(bad());
                    };
                    let group = if group == "-" { "" } else { group };
                    packages.insert((group.to_owned(), version.to_owned()), package.to_owned());
                }
                Some("M") => {
                    let name = words.next().ok_or_else(bad)?;
                    let marks: Vec<&str> = words.collect();
                    raw.push((name, marks.contains(&"L"), marks.contains(&"A"), Vec::new()));
                }
                Some("F") => {
                    let (Some(number), Some(json), Some(ty)) =
                        (words.next(), words.next(), words.next())
                    else {
                        return Err(bad());
                    };
                    let field = RawField {
                        number: number.parse().map_err(|_| bad())?,
                        json: if json == "-" { "" } else { json },
                        ty,
                        flags: words.next().unwrap_or_default(),
                        merge: words.next().unwrap_or_default(),
                    };
                    raw.last_mut().ok_or_else(bad)?.3.push(field);
                }
                Some(_) => return Err(bad()),
            }
        }
        packages.insert(("meta.k8s.io".to_owned(), "v1".to_owned()), META.to_owned());
        let by_name: HashMap<String, usize> = raw
            .iter()
            .enumerate()
            .map(|(i, (name, _, _, _))| ((*name).to_owned(), i))
            .collect();
        let resolve = |ty: &str| -> Result<Type, String> { parse_type(ty, &by_name) };
        let mut messages = Vec::with_capacity(raw.len());
        for (name, list, atomic, raw_fields) in &raw {
            let mut fields = raw_fields
                .iter()
                .map(|f| {
                    Ok(Field {
                        number: f.number,
                        json: f.json.to_owned(),
                        ty: resolve(f.ty)?,
                        omitempty: f.flags.contains('o'),
                        pointer: f.flags.contains('p'),
                        inline: f.flags.contains('i'),
                        merge: parse_merge(f.merge)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            fields.sort_by_key(|f| f.number);
            messages.push(Message {
                atomic: *atomic,
                special: special_of(name, *list),
                fields,
            });
        }
        Ok(Self {
            messages,
            by_name,
            packages,
        })
    }

    /// The message at `index`.
    pub fn message(&self, index: usize) -> Option<&Message> {
        self.messages.get(index)
    }

    /// The message by its full name.
    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The message of an object of `kind` in `api_version`; the `meta.k8s.io/v1` kinds
    /// (`Status`, `DeleteOptions`, `WatchEvent`, …) are found in every group version, as
    /// upstream registers them there.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let package = self.packages.get(&(group.to_owned(), version.to_owned()))?;
        self.by_name(&format!("{package}.{kind}"))
            .or_else(|| self.by_name(&format!("{META}.{kind}")))
    }
}

fn parse_merge(text: &str) -> Result<Merge, String> {
    Ok(match text {
        "" => Merge::Default,
        "list=set" => Merge::ListSet,
        "map=atomic" => Merge::MapAtomic,
        other => match other.strip_prefix("list=map:") {
            Some(keys) if !keys.is_empty() => {
                Merge::ListMap(keys.split(',').map(str::to_owned).collect())
            }
            _ => return Err(format!("bad merge rule {other}")),
        },
    })
}

fn parse_type(ty: &str, by_name: &HashMap<String, usize>) -> Result<Type, String> {
    if let Some(item) = ty.strip_prefix("[]") {
        return Ok(Type::Repeated(Box::new(parse_type(item, by_name)?)));
    }
    if let Some(kv) = ty.strip_prefix("map:") {
        let (key, value) = kv
            .split_once(':')
            .ok_or_else(|| format!("bad map type {ty}"))?;
        if key != "string" {
            return Err(format!("map key type {key} is not supported"));
        }
        return Ok(Type::Map(Box::new(parse_type(value, by_name)?)));
    }
    Ok(match ty {
        "string" => Type::Scalar(Scalar::String),
        "bytes" => Type::Scalar(Scalar::Bytes),
        "int32" => Type::Scalar(Scalar::Int32),
        "int64" => Type::Scalar(Scalar::Int64),
        "bool" => Type::Scalar(Scalar::Bool),
        name => Type::Message(
            by_name
                .get(name)
                .copied()
                .ok_or_else(|| format!("unknown message {name}"))?,
        ),
    })
}

fn special_of(name: &str, list: bool) -> Special {
    match name {
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => Special::Time,
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => Special::MicroTime,
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => Special::Duration,
        "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => Special::FieldsV1,
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => Special::Quantity,
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => Special::RawExtension,
        _ if list => Special::List,
        _ => Special::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parses_and_finds_kinds() {
        let schema = SCHEMA.as_ref().unwrap();
        assert!(schema.messages.len() > 1000);
        let pod = schema.kind("v1", "Pod").unwrap();
        assert_eq!(schema.by_name("k8s.io.api.core.v1.Pod"), Some(pod));
        assert_eq!(
            schema.message(pod).unwrap().field(1).unwrap().json,
            "metadata"
        );
        let deploy = schema.kind("apps/v1", "Deployment").unwrap();
        assert_eq!(
            schema.by_name("k8s.io.api.apps.v1.Deployment"),
            Some(deploy)
        );
        let status = schema.kind("v1", "Status").unwrap();
        assert_eq!(schema.by_name(&format!("{META}.Status")), Some(status));
        assert!(schema.kind("apps/v1", "Status").is_some());
        assert!(
            schema
                .kind("policy.bulwark.dev/v1", "CedarPolicy")
                .is_none()
        );
        let spec = schema.by_name("k8s.io.api.apps.v1.DeploymentSpec").unwrap();
        let replicas = schema.message(spec).unwrap().field(1).unwrap();
        assert!(replicas.pointer && replicas.omitempty);
        let extra = schema
            .by_name("k8s.io.api.authentication.v1.ExtraValue")
            .unwrap();
        assert_eq!(schema.message(extra).unwrap().special, Special::List);
        let volume = schema.by_name("k8s.io.api.core.v1.Volume").unwrap();
        let volume = schema.message(volume).unwrap();
        assert!(volume.field(2).unwrap().inline);
        // Inline fields are found by their JSON names.
        assert!(volume.json_field(schema, "emptyDir").is_some());
        let container = schema.by_name("k8s.io.api.core.v1.Container").unwrap();
        let ports = schema
            .message(container)
            .unwrap()
            .json_field(schema, "ports")
            .unwrap();
        assert_eq!(
            ports.merge,
            Merge::ListMap(vec!["containerPort".into(), "protocol".into()])
        );
        let selector = schema
            .by_name("k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelector")
            .unwrap();
        assert!(schema.message(selector).unwrap().atomic);
    }

    #[test]
    fn malformed_schema_lines_are_errors() {
        assert!(Schema::parse("F 1 name string").is_err());
        assert!(Schema::parse("M a\nF x name string").is_err());
        assert!(Schema::parse("M a\nF 1 name b.Unknown").is_err());
        assert!(Schema::parse("Q").is_err());
        assert!(Schema::parse("M a\nF 1 x string - list=map:").is_err());
    }
}
