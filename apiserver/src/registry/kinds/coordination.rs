//! `coordination.k8s.io/v1` Leases.

use serde_json::{Value, json};

use crate::codec::table::{age, text};
use crate::registry::strategy::{Column, KindStrategy, typed};

/// Leases.
#[derive(Debug)]
pub(crate) struct Leases;

impl KindStrategy for Leases {
    typed!(k8s_openapi::api::coordination::v1::Lease);

    fn columns(&self) -> &'static [Column] {
        &[("Holder", "string", 0), ("Age", "string", 0)]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![json!(text(o, "/spec/holderIdentity")), age(o)]
    }
}
