//! `posture.bulwark.dev/v1`: the posture scanner's API objects. `PostureException` accepts a
//! failing control for a scope, with a justification, an owner and an expiry — an auditor
//! sees each one beside the finding it covers, and an expired exception re-opens it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as MetaSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::selector::{LabelSelector, SelectorError};

/// The API group.
pub const GROUP: &str = "posture.bulwark.dev";
/// The version.
pub const VERSION: &str = "v1";
/// `posture.bulwark.dev/v1`.
pub const API_VERSION: &str = "posture.bulwark.dev/v1";

/// The longest a justification may be (it is shown in every report).
pub const MAX_JUSTIFICATION: usize = 4096;

/// The longest an exception may last (a year and a day): risk acceptance is reviewed.
pub const MAX_LIFETIME_SECONDS: i64 = 366 * 24 * 3600;

/// `posture.bulwark.dev/v1 PostureException`, the stored object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.bulwark.posture.v1.PostureException")]
pub struct PostureExceptionObject {
    /// `posture.bulwark.dev/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `PostureException`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is accepted, where, why, by whom, until when.
    pub spec: PostureExceptionSpec,
}

/// A resource an exception names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceName {
    /// Kind (`DaemonSet`).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (empty: any).
    #[serde(default)]
    pub namespace: String,
}

/// What an exception covers. Every field given must match; none given covers the control's
/// cluster-level findings only (configuration, policies, files), never every object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExceptionScope {
    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<MetaSelector>,
    /// Objects by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<MetaSelector>,
    /// Objects by kind and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceName>,
}

/// `PostureException.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostureExceptionSpec {
    /// The controls accepted (`KSPM-WL-02`).
    pub controls: Vec<String>,
    /// Where.
    #[serde(default)]
    pub scope: ExceptionScope,
    /// Why the risk is accepted.
    pub justification: String,
    /// Who answers for it (a person or team, e.g. an e-mail address).
    pub owner: String,
    /// When it lapses (RFC 3339); the finding re-opens then.
    pub expires: String,
}

/// Why an exception is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExceptionError {
    /// The spec does not have the right shape.
    #[error("spec: {0}")]
    Shape(String),
    /// A required field is empty.
    #[error("spec.{0} must not be empty")]
    Empty(&'static str),
    /// The justification is too long.
    #[error("spec.justification is longer than {MAX_JUSTIFICATION} bytes")]
    TooLong,
    /// `expires` is not an RFC 3339 time.
    #[error("spec.expires {0:?} is not an RFC 3339 time")]
    Expiry(String),
    /// The expiry is in the past or too far away.
    #[error("{0}")]
    Lifetime(String),
    /// A selector does not parse.
    #[error("spec.scope.{field}: {source}")]
    Selector {
        /// `namespaceSelector` or `objectSelector`.
        field: &'static str,
        /// Why.
        source: SelectorError,
    },
}

/// A validated exception, ready to match findings.
#[derive(Debug, Clone, PartialEq)]
pub struct PostureException {
    /// The object's name.
    pub name: String,
    /// The spec.
    pub spec: PostureExceptionSpec,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Parsed `namespaceSelector`.
    pub namespace_selector: Option<LabelSelector>,
    /// Parsed `objectSelector`.
    pub object_selector: Option<LabelSelector>,
}

impl PostureException {
    /// Validates a `PostureException` object.
    pub fn from_object(object: &Value) -> Result<Self, ExceptionError> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let spec = object
            .get("spec")
            .ok_or_else(|| ExceptionError::Shape("missing".to_owned()))?;
        let spec: PostureExceptionSpec = serde_json::from_value(spec.clone())
            .map_err(|e| ExceptionError::Shape(e.to_string()))?;
        if spec.controls.is_empty() || spec.controls.iter().any(|c| c.trim().is_empty()) {
            return Err(ExceptionError::Empty("controls"));
        }
        if spec.justification.trim().is_empty() {
            return Err(ExceptionError::Empty("justification"));
        }
        if spec.justification.len() > MAX_JUSTIFICATION {
            return Err(ExceptionError::TooLong);
        }
        if spec.owner.trim().is_empty() {
            return Err(ExceptionError::Empty("owner"));
        }
        let expires_at = time::OffsetDateTime::parse(
            &spec.expires,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| ExceptionError::Expiry(spec.expires.clone()))?
        .unix_timestamp();
        let selector = |field: &'static str, v: &Option<MetaSelector>| {
            v.as_ref()
                .map(|s| LabelSelector::from_object(&serde_json::to_value(s).unwrap_or_default()))
                .transpose()
                .map_err(|source| ExceptionError::Selector { field, source })
        };
        let namespace_selector = selector("namespaceSelector", &spec.scope.namespace_selector)?;
        let object_selector = selector("objectSelector", &spec.scope.object_selector)?;
        Ok(Self {
            name,
            spec,
            expires_at,
            namespace_selector,
            object_selector,
        })
    }

    /// The rules a new or changed exception must also meet at `now`: it expires in the
    /// future, within [`MAX_LIFETIME_SECONDS`].
    pub fn check_lifetime(&self, now: i64) -> Result<(), ExceptionError> {
        if self.expires_at <= now {
            return Err(ExceptionError::Lifetime(format!(
                "spec.expires {} is in the past: an exception must expire in the future",
                self.spec.expires
            )));
        }
        if self.expires_at - now > MAX_LIFETIME_SECONDS {
            return Err(ExceptionError::Lifetime(format!(
                "spec.expires {} is more than a year and a day away: exceptions are reviewed at least yearly",
                self.spec.expires
            )));
        }
        Ok(())
    }

    /// Whether it has lapsed at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// Whether the scope says nothing about objects (it covers cluster-level findings).
    pub fn cluster_level(&self) -> bool {
        let s = &self.spec.scope;
        s.namespaces.is_empty()
            && s.resources.is_empty()
            && self.namespace_selector.is_none()
            && self.object_selector.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "PostureException", "metadata": {"name": "e"}, "spec": spec})
    }

    #[test]
    fn a_valid_exception_parses_and_bad_ones_say_why() {
        let good = object(json!({
            "controls": ["KSPM-WL-02"],
            "scope": {"namespaces": ["monitoring"], "objectSelector": {"matchLabels": {"app": "node-exporter"}}},
            "justification": "node-exporter reads host metrics",
            "owner": "platform@example.com",
            "expires": "2027-03-01T00:00:00Z"
        }));
        let e = PostureException::from_object(&good).unwrap();
        assert!(!e.expired(0));
        assert!(e.expired(e.expires_at));
        assert!(!e.cluster_level());
        let mut cases = Vec::new();
        for (field, value) in [
            ("controls", json!([])),
            ("justification", json!(" ")),
            ("owner", json!("")),
            ("expires", json!("next tuesday")),
        ] {
            let mut spec = good["spec"].clone();
            spec[field] = value;
            cases.push((
                field,
                PostureException::from_object(&object(spec)).unwrap_err(),
            ));
        }
        for (field, err) in &cases {
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
        let mut spec = good["spec"].clone();
        spec["scope"]["namespaceSelector"] =
            json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        let err = PostureException::from_object(&object(spec)).unwrap_err();
        assert!(err.to_string().contains("namespaceSelector"), "{err}");
        // Lifetimes: in the future, at most a year and a day.
        assert!(e.check_lifetime(e.expires_at - 3600).is_ok());
        assert!(
            e.check_lifetime(e.expires_at + 1)
                .unwrap_err()
                .to_string()
                .contains("in the past")
        );
        assert!(
            e.check_lifetime(e.expires_at - 2 * MAX_LIFETIME_SECONDS)
                .unwrap_err()
                .to_string()
                .contains("year")
        );
        let mut spec = good["spec"].clone();
        spec["scop"] = json!({});
        assert!(matches!(
            PostureException::from_object(&object(spec)),
            Err(ExceptionError::Shape(_))
        ));
    }
}
