//! `policy.bulwark.dev/v1 CedarPolicy`: Cedar policy text as a cluster-scoped API object, so
//! policies are written, reviewed, rolled out and audited like any other manifest, and every
//! API server picks them up from the store within a second.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of Bulwark's policy objects.
pub const GROUP: &str = "policy.bulwark.dev";

/// A set of Cedar policies (one object = one reviewable change).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.bulwark.policy.v1.CedarPolicy")]
pub struct CedarPolicy {
    /// `policy.bulwark.dev/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `CedarPolicy`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policies.
    pub spec: CedarPolicySpec,
    /// What the API servers made of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CedarPolicyStatus>,
}

/// What a policy object contains.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CedarPolicySpec {
    /// `Authorization` (who may do what) or `Admission` (what may be written).
    pub kind: CedarPolicyKind,
    /// Admission only: `Enforce` (deny), `Warn` (admit with a warning) or `Audit` (record
    /// only). Defaults to `Enforce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CedarPolicyMode>,
    /// Cedar policy text. Every policy needs a unique `@id("…")`; `@reason("…")` is shown to
    /// users a decision affects. Forbids form the guardrail tier, permits the grant tier.
    pub policies: String,
    /// Confines the object's permits to one namespace: they are evaluated only for requests
    /// in it, whatever their conditions say. Confined objects may hold only permits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What a policy object decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CedarPolicyKind {
    /// Authorization: may this user do this?
    #[default]
    Authorization,
    /// Admission: may this object be written?
    Admission,
}

/// How an admission policy's denials are applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CedarPolicyMode {
    /// Deny the write.
    #[default]
    Enforce,
    /// Admit, and return a `Warning` header kubectl prints.
    Warn,
    /// Admit, and only record the decision in the audit log.
    Audit,
}

/// What the API servers made of a policy object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CedarPolicyStatus {
    /// The `metadata.generation` in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_generation: Option<i64>,
    /// The policy ids in force from this object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_ids: Vec<String>,
    /// `Loaded`: whether the object's policies are in force, and if not, why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn upstream_shape_roundtrips() {
        let json = serde_json::json!({
            "apiVersion": "policy.bulwark.dev/v1", "kind": "CedarPolicy",
            "metadata": {"name": "team-a"},
            "spec": {"kind": "Admission", "mode": "Warn", "policies": "", "namespace": "team-a"},
        });
        let typed: CedarPolicy = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(typed.spec.mode, Some(CedarPolicyMode::Warn));
        assert_eq!(serde_json::to_value(&typed).unwrap(), json);
        assert!(
            serde_json::from_value::<CedarPolicy>(
                serde_json::json!({"spec": {"kind": "Rbac", "policies": ""}})
            )
            .is_err()
        );
    }
}
