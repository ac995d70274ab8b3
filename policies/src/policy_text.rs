//! Policy text → a validated Cedar policy set whose policy ids are the `@id` annotations.

use std::collections::HashSet;

use cedar_policy::{PolicyId, PolicySet, ValidationMode};

use crate::{PolicyError, PolicyKind, schema};

/// Largest policy text accepted (bounds parse and validation work per submission).
pub const MAX_POLICY_TEXT: usize = 8 * 1024 * 1024;

/// Parses `text`, renames every policy to its `@id`, and validates strictly against the
/// schema. Any validator error or warning rejects the whole text.
pub fn parse(source_name: &str, text: &str) -> Result<PolicySet, PolicyError> {
    parse_for(source_name, text, PolicyKind::Authorization)
}

/// Like [`parse`], validated against the schema of `kind`.
pub fn parse_for(
    source_name: &str,
    text: &str,
    kind: PolicyKind,
) -> Result<PolicySet, PolicyError> {
    if text.len() > MAX_POLICY_TEXT {
        return Err(PolicyError::Syntax {
            source_name: source_name.to_owned(),
            message: format!(
                "policy text is {} bytes; the limit is {MAX_POLICY_TEXT}",
                text.len()
            ),
        });
    }
    let parsed: PolicySet =
        text.parse()
            .map_err(|e: cedar_policy::ParseErrors| PolicyError::Syntax {
                source_name: source_name.to_owned(),
                message: format!("{e}"),
            })?;
    if parsed.templates().next().is_some() {
        return Err(PolicyError::Ids {
            source_name: source_name.to_owned(),
            message: "policy templates are not supported; write concrete policies".into(),
        });
    }
    let mut seen = HashSet::new();
    let mut renamed = Vec::new();
    for policy in parsed.policies() {
        let Some(id) = policy.annotation("id") else {
            return Err(PolicyError::Ids {
                source_name: source_name.to_owned(),
                message: format!("a policy has no @id annotation:\n{policy}"),
            });
        };
        if !seen.insert(id.to_owned()) {
            return Err(PolicyError::Ids {
                source_name: source_name.to_owned(),
                message: format!("duplicate @id(\"{id}\")"),
            });
        }
        renamed.push(policy.new_id(PolicyId::new(id)));
    }
    let set = PolicySet::from_policies(renamed).map_err(|e| PolicyError::Ids {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    })?;
    let validator = schema::validator(kind)?;
    let result = validator.validate(&set, ValidationMode::Strict);
    let diagnostics: Vec<String> = result
        .validation_errors()
        .map(|e| format!("error: {e}"))
        .chain(
            result
                .validation_warnings()
                .map(|w| format!("warning: {w}")),
        )
        .collect();
    if !diagnostics.is_empty() {
        return Err(PolicyError::Invalid {
            source_name: source_name.to_owned(),
            diagnostics,
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_policy_ids() {
        let set = parse("t", r#"@id("a.one") permit (principal in k8s::Group::"dev", action == k8s::Action::"get", resource is k8s::Resource);"#).unwrap();
        assert_eq!(set.policies().next().unwrap().id().to_string(), "a.one");
    }

    #[test]
    fn bad_policies_are_refused() {
        let cases = [
            ("permit (principal, action, resource", "syntax"),
            (r#"permit (principal, action, resource);"#, "no @id"),
            (
                r#"@id("x") permit (principal, action, resource); @id("x") forbid (principal, action, resource);"#,
                "duplicate",
            ),
            (
                r#"@id("x") permit (principal is k8s::Pod, action, resource);"#,
                "unknown entity type",
            ),
            (
                r#"@id("x") permit (principal, action, resource is k8s::Resource) when { resource.colour == "red" };"#,
                "unknown attribute",
            ),
            (
                r#"@id("x") permit (principal, action == k8s::Action::"post", resource is k8s::Resource);"#,
                "impossible (warning or error)",
            ),
        ];
        for (text, why) in cases {
            assert!(parse("t", text).is_err(), "{why}: {text}");
        }
        let huge = format!(
            r#"@id("x") permit (principal, action, resource) when {{ "{}" == "" }};"#,
            "a".repeat(MAX_POLICY_TEXT)
        );
        assert!(parse("t", &huge).is_err());
    }
}
