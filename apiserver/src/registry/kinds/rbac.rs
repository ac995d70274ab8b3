//! `rbac.authorization.k8s.io/v1`: Roles, ClusterRoles and their bindings (the escalation
//! check on writes is an admission plugin: `admission::rbac`).

use k8s_openapi::api::rbac::v1 as api;
use serde_json::{Value, json};

use crate::codec::table::{age, text};
use crate::registry::strategy::{Column, KindStrategy, plain_kind, typed};

plain_kind!(
    /// Roles.
    Roles,
    api::Role
);

plain_kind!(
    /// ClusterRoles.
    ClusterRoles,
    api::ClusterRole
);

const BINDING_COLUMNS: &[Column] = &[("Role", "string", 0), ("Age", "string", 0)];

fn binding_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(format!(
            "{}/{}",
            text(o, "/roleRef/kind"),
            text(o, "/roleRef/name")
        )),
        age(o),
    ]
}

/// RoleBindings.
#[derive(Debug)]
pub(crate) struct RoleBindings;

impl KindStrategy for RoleBindings {
    typed!(api::RoleBinding);

    fn columns(&self) -> &'static [Column] {
        BINDING_COLUMNS
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        binding_cells(o)
    }
}

/// ClusterRoleBindings.
#[derive(Debug)]
pub(crate) struct ClusterRoleBindings;

impl KindStrategy for ClusterRoleBindings {
    typed!(api::ClusterRoleBinding);

    fn columns(&self) -> &'static [Column] {
        BINDING_COLUMNS
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        binding_cells(o)
    }
}
