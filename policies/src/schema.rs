//! The Cedar schemas policies are validated against, parsed once.
//!
//! - Authorization: `cedar/k8s.cedarschema`, hand-written (principals, `k8s::Resource`,
//!   `k8s::NonResourceURL`, the request verbs).
//! - Admission: the same plus `cedar/k8s-objects.cedarschema`, generated from the built-in
//!   types by the admission crate (one entity type per kind, the pod security views and the
//!   `k8s::admission::Action`s).
//!
//! A validator per schema is kept too: building one clones the schema, which for the object
//! schema costs more than validating a policy.

use std::sync::OnceLock;

use cedar_policy::{Schema, Validator};

use crate::{PolicyError, PolicyKind};

/// The authorization schema text.
pub const SCHEMA_TEXT: &str = include_str!("../cedar/k8s.cedarschema");
/// The generated object schema text (admission).
pub const OBJECT_SCHEMA_TEXT: &str = include_str!("../cedar/k8s-objects.cedarschema");

type Parsed = OnceLock<Result<(Schema, Validator), String>>;

fn parsed(
    cell: &'static Parsed,
    text: impl FnOnce() -> String,
) -> Result<&'static (Schema, Validator), PolicyError> {
    cell.get_or_init(|| {
        Schema::from_cedarschema_str(&text())
            .map(|(schema, _warnings)| (schema.clone(), Validator::new(schema)))
            .map_err(|e| format!("{e:?}"))
    })
    .as_ref()
    .map_err(|e| PolicyError::Schema(e.clone()))
}

fn of(kind: PolicyKind) -> Result<&'static (Schema, Validator), PolicyError> {
    static AUTHORIZATION: Parsed = OnceLock::new();
    static ADMISSION: Parsed = OnceLock::new();
    match kind {
        PolicyKind::Authorization => parsed(&AUTHORIZATION, || SCHEMA_TEXT.to_owned()),
        PolicyKind::Admission => parsed(&ADMISSION, || {
            format!("{SCHEMA_TEXT}\n{OBJECT_SCHEMA_TEXT}")
        }),
    }
}

/// The authorization schema.
pub fn schema() -> Result<&'static Schema, PolicyError> {
    of(PolicyKind::Authorization).map(|(schema, _)| schema)
}

/// The schema policies of `kind` are validated against.
pub fn schema_for(kind: PolicyKind) -> Result<&'static Schema, PolicyError> {
    of(kind).map(|(schema, _)| schema)
}

/// A validator over [`schema_for`]`(kind)`.
pub fn validator(kind: PolicyKind) -> Result<&'static Validator, PolicyError> {
    of(kind).map(|(_, validator)| validator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_schemas_parse() {
        for kind in [PolicyKind::Authorization, PolicyKind::Admission] {
            let parsed = schema_for(kind).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(parsed, Ok(()), "{kind:?}");
        }
    }
}
