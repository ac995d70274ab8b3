//! `certificates.k8s.io/v1` CertificateSigningRequests.

use serde_json::{Value, json};

use crate::codec::table::{age, text};
use crate::registry::strategy::{Column, KindStrategy, typed};
use crate::registry::validation::Causes;

/// CertificateSigningRequests: a request and a signer are required.
#[derive(Debug)]
pub(crate) struct CertificateSigningRequests;

impl KindStrategy for CertificateSigningRequests {
    typed!(k8s_openapi::api::certificates::v1::CertificateSigningRequest);

    fn validate(&self, obj: &Value, v: &mut Causes) {
        for (pointer, field) in [
            ("/spec/request", "spec.request"),
            ("/spec/signerName", "spec.signerName"),
        ] {
            if obj
                .pointer(pointer)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                v.required(field);
            }
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Age", "string", 0),
            ("SignerName", "string", 0),
            ("Requestor", "string", 0),
            ("Condition", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let types: Vec<String> = o
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("type").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut condition = if types.is_empty() {
            "Pending".to_owned()
        } else {
            types.join(",")
        };
        if o.pointer("/status/certificate").is_some() {
            condition.push_str(",Issued");
        }
        vec![
            age(o),
            json!(text(o, "/spec/signerName")),
            json!(text(o, "/spec/username")),
            json!(condition),
        ]
    }
}
