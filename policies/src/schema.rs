//! The Kubernetes Cedar schema (`cedar/k8s.cedarschema`), parsed once.

use std::sync::OnceLock;

use cedar_policy::Schema;

use crate::PolicyError;

/// The schema's source text, compiled into the binary.
pub const SCHEMA_TEXT: &str = include_str!("../cedar/k8s.cedarschema");

/// The parsed schema.
pub fn schema() -> Result<&'static Schema, PolicyError> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA_TEXT)
                .map(|(schema, _warnings)| schema)
                .map_err(|e| format!("{e:?}"))
        })
        .as_ref()
        .map_err(|e| PolicyError::Schema(e.clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_schema_parses() {
        assert!(super::schema().is_ok());
    }
}
