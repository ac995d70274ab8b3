//! Label and field selectors, with upstream's grammar (`k8s.io/apimachinery/pkg/labels` and
//! `pkg/fields`), so `kubectl get -l 'tier in (web,api),!canary'` means the same thing here.
//!
//! Parsing untrusted query strings is bounded: selectors longer than [`MAX_SELECTOR_LEN`] are
//! rejected before parsing, and the parsers never recurse.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::names;

/// Longest selector string accepted (upstream has no limit; this bounds work per request).
pub const MAX_SELECTOR_LEN: usize = 16 * 1024;

/// Why a selector string was rejected (a 400 at the API edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector is longer than [`MAX_SELECTOR_LEN`].
    #[error("selector is longer than {MAX_SELECTOR_LEN} bytes")]
    TooLong,
    /// The selector does not parse.
    #[error("unable to parse requirement: {0}")]
    Syntax(String),
    /// A key or value breaks the label rules.
    #[error("invalid label {what} {value:?}: {why}")]
    InvalidLabel {
        /// `key` or `value`.
        what: &'static str,
        /// The offending text.
        value: String,
        /// The rule it breaks.
        why: String,
    },
}

/// A label-selector operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOp {
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key=v` / `key==v`.
    Equals(String),
    /// `key!=v`: absent or different.
    NotEquals(String),
    /// `key in (a,b)`.
    In(BTreeSet<String>),
    /// `key notin (a,b)`: absent or not in the set.
    NotIn(BTreeSet<String>),
    /// `key>n`: present and an integer greater than n.
    GreaterThan(i64),
    /// `key<n`: present and an integer less than n.
    LessThan(i64),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// What must hold for it.
    pub op: LabelOp,
}

/// A parsed label selector: every requirement must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, all of which must match.
    pub requirements: Vec<LabelRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

fn lex(input: &str) -> Result<Vec<Token>, SelectorError> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' | '(' | ')' | '<' | '>' => {
                chars.next();
                tokens.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '<' => Token::Lt,
                    _ => Token::Gt,
                });
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::DoubleEq);
                } else {
                    tokens.push(Token::Eq);
                }
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::NotEq);
                } else {
                    tokens.push(Token::Not);
                }
            }
            _ => {
                let mut ident = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || ",()<>=!".contains(c) {
                        break;
                    }
                    ident.push(c);
                    chars.next();
                }
                tokens.push(Token::Ident(ident));
            }
        }
    }
    Ok(tokens)
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    match names::qualified_name(key) {
        None => Ok(()),
        Some(why) => Err(SelectorError::InvalidLabel {
            what: "key",
            value: key.to_owned(),
            why,
        }),
    }
}

fn check_value(value: &str) -> Result<String, SelectorError> {
    match names::label_value(value) {
        None => Ok(value.to_owned()),
        Some(why) => Err(SelectorError::InvalidLabel {
            what: "value",
            value: value.to_owned(),
            why,
        }),
    }
}

struct Parser {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
}

impl Parser {
    fn syntax(msg: impl Into<String>) -> SelectorError {
        SelectorError::Syntax(msg.into())
    }

    /// A single value after `=`, `==` or `!=`; the empty value is allowed (`tier=`).
    fn single_value(&mut self) -> Result<String, SelectorError> {
        match self.tokens.peek() {
            Some(Token::Ident(_)) => match self.tokens.next() {
                Some(Token::Ident(v)) => check_value(&v),
                _ => Err(Self::syntax("expected a value")),
            },
            None | Some(Token::Comma) => Ok(String::new()),
            Some(other) => Err(Self::syntax(format!(
                "unexpected {other:?} where a value was expected"
            ))),
        }
    }

    fn set_values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        if self.tokens.next() != Some(Token::Open) {
            return Err(Self::syntax("expected '(' after in/notin"));
        }
        let mut values = BTreeSet::new();
        let mut expect_value = true;
        loop {
            match self.tokens.next() {
                Some(Token::Ident(v)) if expect_value => {
                    values.insert(check_value(&v)?);
                    expect_value = false;
                }
                Some(Token::Comma) => {
                    if expect_value {
                        values.insert(String::new());
                    }
                    expect_value = true;
                }
                Some(Token::Close) => {
                    if expect_value && !values.is_empty() {
                        values.insert(String::new());
                    }
                    break;
                }
                other => return Err(Self::syntax(format!("unexpected {other:?} in value set"))),
            }
        }
        if values.is_empty() {
            return Err(Self::syntax(
                "for 'in', 'notin' operators, values set can't be empty",
            ));
        }
        Ok(values)
    }

    fn integer(&mut self) -> Result<i64, SelectorError> {
        match self.tokens.next() {
            Some(Token::Ident(v)) => v.parse().map_err(|_| {
                Self::syntax(format!(
                    "for 'Gt', 'Lt' operators, the value must be an integer: {v}"
                ))
            }),
            other => Err(Self::syntax(format!(
                "expected an integer, found {other:?}"
            ))),
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, SelectorError> {
        if self.tokens.peek() == Some(&Token::Not) {
            self.tokens.next();
            let Some(Token::Ident(key)) = self.tokens.next() else {
                return Err(Self::syntax("expected a key after '!'"));
            };
            check_key(&key)?;
            return Ok(LabelRequirement {
                key,
                op: LabelOp::DoesNotExist,
            });
        }
        let Some(Token::Ident(key)) = self.tokens.next() else {
            return Err(Self::syntax("expected a key"));
        };
        check_key(&key)?;
        let op = match self.tokens.peek() {
            None | Some(Token::Comma) => LabelOp::Exists,
            Some(Token::Eq | Token::DoubleEq) => {
                self.tokens.next();
                LabelOp::Equals(self.single_value()?)
            }
            Some(Token::NotEq) => {
                self.tokens.next();
                LabelOp::NotEquals(self.single_value()?)
            }
            Some(Token::Gt) => {
                self.tokens.next();
                LabelOp::GreaterThan(self.integer()?)
            }
            Some(Token::Lt) => {
                self.tokens.next();
                LabelOp::LessThan(self.integer()?)
            }
            Some(Token::Ident(word)) if word == "in" => {
                self.tokens.next();
                LabelOp::In(self.set_values()?)
            }
            Some(Token::Ident(word)) if word == "notin" => {
                self.tokens.next();
                LabelOp::NotIn(self.set_values()?)
            }
            Some(other) => {
                return Err(Self::syntax(format!(
                    "found {other:?}, expected: in, notin, =, ==, !=, gt, lt"
                )));
            }
        };
        Ok(LabelRequirement { key, op })
    }
}

impl LabelSelector {
    /// Parses a `labelSelector` query value.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        if input.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong);
        }
        let mut parser = Parser {
            tokens: lex(input)?.into_iter().peekable(),
        };
        let mut requirements = Vec::new();
        if parser.tokens.peek().is_none() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.tokens.next() {
                None => break,
                Some(Token::Comma) => {}
                Some(other) => {
                    return Err(Parser::syntax(format!(
                        "found {other:?}, expected: ',' or end"
                    )));
                }
            }
        }
        Ok(Self { requirements })
    }

    /// A `metav1.LabelSelector` object (`matchLabels` and `matchExpressions` with operators
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`), as objects carry selectors.
    pub fn from_object(object: &Value) -> Result<Self, SelectorError> {
        let syntax = |why: &str| SelectorError::Syntax(why.to_owned());
        let map = object
            .as_object()
            .ok_or_else(|| syntax("a label selector must be an object"))?;
        if let Some(unknown) = map
            .keys()
            .find(|k| *k != "matchLabels" && *k != "matchExpressions")
        {
            return Err(syntax(&format!("unknown field {unknown:?}")));
        }
        let mut requirements = Vec::new();
        if let Some(labels) = map.get("matchLabels") {
            let labels = labels
                .as_object()
                .ok_or_else(|| syntax("matchLabels must be an object"))?;
            for (key, value) in labels {
                check_key(key)?;
                let value = value
                    .as_str()
                    .ok_or_else(|| syntax("matchLabels values must be strings"))?;
                requirements.push(LabelRequirement {
                    key: key.clone(),
                    op: LabelOp::Equals(check_value(value)?),
                });
            }
        }
        if let Some(expressions) = map.get("matchExpressions") {
            let expressions = expressions
                .as_array()
                .ok_or_else(|| syntax("matchExpressions must be a list"))?;
            for e in expressions {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| syntax("a matchExpression needs a key"))?;
                check_key(key)?;
                let values = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .map(|x| {
                                x.as_str()
                                    .ok_or_else(|| syntax("values must be strings"))
                                    .and_then(check_value)
                            })
                            .collect::<Result<BTreeSet<String>, _>>()
                    })
                    .transpose()?
                    .unwrap_or_default();
                let op = match e.get("operator").and_then(Value::as_str) {
                    Some("In") if !values.is_empty() => LabelOp::In(values),
                    Some("NotIn") if !values.is_empty() => LabelOp::NotIn(values),
                    Some("Exists") if values.is_empty() => LabelOp::Exists,
                    Some("DoesNotExist") if values.is_empty() => LabelOp::DoesNotExist,
                    Some(op @ ("In" | "NotIn")) => {
                        return Err(syntax(&format!("operator {op} needs values")));
                    }
                    Some(op @ ("Exists" | "DoesNotExist")) => {
                        return Err(syntax(&format!("operator {op} takes no values")));
                    }
                    other => {
                        return Err(syntax(&format!(
                            "operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                        )));
                    }
                };
                requirements.push(LabelRequirement {
                    key: key.to_owned(),
                    op,
                });
            }
        }
        Ok(Self { requirements })
    }

    /// True when the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|req| {
            let value = labels.and_then(|l| l.get(&req.key)).and_then(Value::as_str);
            match (&req.op, value) {
                (LabelOp::Exists, v) => v.is_some(),
                (LabelOp::DoesNotExist, v) => v.is_none(),
                (LabelOp::Equals(want), Some(v)) => v == want,
                (LabelOp::NotEquals(want), v) => v != Some(want.as_str()),
                (LabelOp::In(set), Some(v)) => set.contains(v),
                (LabelOp::NotIn(set), v) => v.is_none_or(|v| !set.contains(v)),
                (LabelOp::GreaterThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
                (LabelOp::LessThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
                (_, None) => false,
            }
        })
    }
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name` or `spec.nodeName`.
    pub field: String,
    /// `true` for `=`/`==`, `false` for `!=`.
    pub equals: bool,
    /// The value compared against.
    pub value: String,
}

/// A parsed field selector: every term must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms, all of which must match.
    pub requirements: Vec<FieldRequirement>,
}

/// Splits on unescaped `sep`, keeping escapes for the next step.
fn split_unescaped(input: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in input.chars() {
        let Some(current) = parts.last_mut() else {
            break;
        };
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
        } else {
            current.push(c);
        }
    }
    if escaped && let Some(current) = parts.last_mut() {
        current.push('\\');
    }
    parts
}

fn unescape(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError::Syntax(format!(
                        "invalid escape sequence \\{e}"
                    )));
                }
                None => return Err(SelectorError::Syntax("trailing backslash".into())),
            }
        } else if c == ',' || c == '=' {
            return Err(SelectorError::Syntax(format!("unescaped {c:?} in value")));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        if input.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong);
        }
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self::default());
        }
        for term in split_unescaped(input, ',') {
            let (field, equals, raw) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError::Syntax(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(SelectorError::Syntax(format!(
                    "empty field name in '{term}'"
                )));
            }
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                equals,
                value: unescape(raw)?,
            });
        }
        Ok(Self { requirements })
    }

    /// True when the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Fields the selector mentions, for the caller to check against what the resource supports.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// The value `field` must equal, if a term requires one (`field=value`): a selector on
    /// `metadata.name` narrows a list to one object, so the server reads one key.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.equals && r.field == field)
            .map(|r| r.value.as_str())
    }

    /// Whether the object satisfies every term; `lookup` returns a field's value.
    pub fn matches(&self, lookup: impl Fn(&str) -> String) -> bool {
        self.requirements
            .iter()
            .all(|r| (lookup(&r.field) == r.value) == r.equals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_objects_match_like_their_string_form() {
        let labels = serde_json::json!({"team": "infra", "tier": "web"});
        let labels = labels.as_object();
        let sel = LabelSelector::from_object(&serde_json::json!({
            "matchLabels": {"team": "infra"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert!(sel.matches(labels));
        assert!(
            !LabelSelector::from_object(&serde_json::json!({"matchLabels": {"team": "x"}}))
                .unwrap()
                .matches(labels)
        );
        for bad in [
            serde_json::json!("team=infra"),
            serde_json::json!({"matchLabels": {"bad key!": "x"}}),
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Like", "values": ["b"]}]}),
            serde_json::json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}),
            serde_json::json!({"matchLabel": {}}),
        ] {
            assert!(LabelSelector::from_object(&bad).is_err(), "{bad}");
        }
    }
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn equality_and_sets() {
        let l = labels(json!({"app": "web", "tier": "front", "rank": "7"}));
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=api",
            "missing!=x",
            "tier in (front, back)",
            "tier notin (back)",
            "missing notin (x)",
            "app",
            "!missing",
            "app=web,tier=front",
            "rank>5",
            "rank<8",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        let no = [
            "app=api",
            "tier in (back)",
            "missing",
            "!app",
            "app=web,tier=back",
            "rank>7",
            "app>1",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        assert!(
            LabelSelector::parse("a=")
                .unwrap()
                .matches(Some(&labels(json!({"a": ""}))))
        );
    }

    #[test]
    fn rejects_bad_label_selectors() {
        for s in [
            "app in web",
            "app in ()",
            "=x",
            "app=web=x",
            "app notin",
            "a b",
            "rank>x",
            "Bad Key=x",
            "app=-bad",
            "!",
            "app=(x)",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s}");
        }
        assert_eq!(
            LabelSelector::parse(&"a".repeat(MAX_SELECTOR_LEN + 1)),
            Err(SelectorError::TooLong)
        );
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=web,status.phase!=Failed").unwrap();
        assert_eq!(
            f.fields().collect::<Vec<_>>(),
            ["metadata.name", "status.phase"]
        );
        let lookup = |phase: &'static str| {
            move |field: &str| match field {
                "metadata.name" => "web".to_owned(),
                "status.phase" => phase.to_owned(),
                _ => String::new(),
            }
        };
        assert!(f.matches(lookup("Running")));
        assert!(!f.matches(lookup("Failed")));
        assert_eq!(f.required("metadata.name"), Some("web"));
        assert_eq!(f.required("status.phase"), None, "!= requires no value");
        assert_eq!(FieldSelector::default().required("metadata.name"), None);
        let esc = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(esc.requirements[0].value, "a,b");
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse(r"a=b\x").is_err());
        assert!(FieldSelector::parse("=b").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,64}") {
            let _ = LabelSelector::parse(&s);
            let _ = FieldSelector::parse(&s);
        }

        #[test]
        fn selector_grammar_fragments_never_panic(
            s in "[a-z!=,() ]{0,8}(in|notin)?[a-z!=,()<>0-9 ]{0,16}"
        ) {
            let _ = LabelSelector::parse(&s);
        }
    }
}
