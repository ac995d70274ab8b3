//! Bulwark's Cedar engine, shared by authorization and admission.
//!
//! - [`schema`]: the Kubernetes Cedar schema (`cedar/k8s.cedarschema`) that every policy is
//!   validated against in strict mode; a policy with any validator error *or warning* is
//!   refused.
//! - [`policy_text`]: parsing policy text whose policies carry unique `@id` annotations, which
//!   become their policy ids (the names decisions and denials report).
//! - [`request`]: one request's principal, action, resource and context as Cedar entities.
//! - [`engine`]: the tiered decision — bootstrap (compiled in, so the control plane can never
//!   be locked out), guardrails (forbids; an error in a forbid denies, never fails open),
//!   grants (permits, optionally confined to one namespace), then default deny — over an
//!   immutable snapshot swapped atomically on reload.
//! - [`rbac`]: RBAC roles and bindings translated into Cedar permits.
//! - [`compiled`]: one source (a `CedarPolicy` object) compiled once per change, so a reload
//!   re-parses only what changed.

pub mod compiled;
pub mod engine;
pub mod policy_text;
pub mod rbac;
pub mod request;
pub mod schema;

pub use compiled::{CompiledPolicies, PermitScope};
pub use engine::{Decision, PolicyEngine, Snapshot, Tier};
pub use request::{AccessRequest, Target};

/// What a policy decides: who may send a request, or whether a write is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Requests: principals, verbs and `k8s::Resource`s (default deny).
    Authorization,
    /// Writes: forbids over typed objects (anything not forbidden is admitted).
    Admission,
}

/// Why policies could not be loaded or a request could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The shipped schema does not parse (a build defect).
    #[error("the Cedar schema is invalid: {0}")]
    Schema(String),
    /// Policy text does not parse.
    #[error("{source_name}: syntax error: {message}")]
    Syntax {
        /// Where the text came from.
        source_name: String,
        /// Cedar's diagnostics.
        message: String,
    },
    /// A policy lacks an `@id`, or two share one.
    #[error("{source_name}: {message}")]
    Ids {
        /// Where the text came from.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// The policies do not validate against the schema (errors and warnings both count).
    #[error("{source_name}: policy validation failed:\n{}", .diagnostics.join("\n"))]
    Invalid {
        /// Where the text came from.
        source_name: String,
        /// One line per validator error or warning.
        diagnostics: Vec<String>,
    },
    /// A policy does not belong in the tier it was loaded into.
    #[error("{source_name}: {message}")]
    Tier {
        /// Where the text came from.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A request could not be turned into Cedar entities.
    #[error("request: {0}")]
    Request(String),
}
