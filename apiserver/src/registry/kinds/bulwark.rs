//! Bulwark's own kinds: `policy.bulwark.dev/v1` CedarPolicies and the
//! `audit.bulwark.dev/v1` events read from the audit log.

use serde_json::{Value, json};

use crate::codec::table::{age, len, or_none, text};
use crate::registry::strategy::{Column, KindStrategy, typed};

/// CedarPolicies: the columns show what the servers made of each policy set.
#[derive(Debug)]
pub(crate) struct CedarPolicies;

impl KindStrategy for CedarPolicies {
    typed!(bulwark_api::cedar_policy::CedarPolicy);

    fn columns(&self) -> &'static [Column] {
        &[
            ("Kind", "string", 0),
            ("Mode", "string", 0),
            ("Namespace", "string", 0),
            ("Policies", "integer", 0),
            ("Loaded", "string", 0),
            ("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        // The `Loaded` condition: True, False, or Unknown before any server looked at it.
        let loaded = o
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Loaded"))
            })
            .and_then(|c| c.get("status").and_then(Value::as_str))
            .unwrap_or("Unknown");
        vec![
            json!(text(o, "/spec/kind")),
            json!(or_none(text(o, "/spec/mode"))),
            json!(or_none(text(o, "/spec/namespace"))),
            json!(len(o, "/status/policyIds")),
            json!(loaded),
            age(o),
        ]
    }
}

/// Objects a handler answers with and never stores (audit events, listed from the log, whose
/// Table `audit::query` builds; the encryption API's): no schema, no conversion.
#[derive(Debug)]
pub(crate) struct HandlerServed;

impl KindStrategy for HandlerServed {
    fn roundtrip(&self, value: &Value) -> Result<Value, String> {
        Ok(value.clone())
    }

    fn schema(&self, _: &mut k8s_openapi::schemars::SchemaGenerator) -> Option<String> {
        None
    }
}
