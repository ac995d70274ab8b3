//! Bulwark admission: whether a write is admitted, decided by Cedar admission policies.
//!
//! - [`object_model`]: every kind the API server's registry admits as a typed Cedar entity,
//!   derived from the kinds' types ([`object_model::KindSchemas`]); it renders the checked-in
//!   object schema and drives conversion.
//! - [`object_entity`]: objects (and old objects) as entity attributes.
//! - [`workload`]: pod security views: the pod of a Pod or of a workload's template, and each
//!   of its containers, as entities a policy can quantify over.
//! - [`engine`]: the admission snapshot (forbids only, each in its object's mode: enforce,
//!   warn or audit), evaluated against the object and its pod views; swapped atomically.
//! - [`policy_test`]: policy test cases as data (`bulwark policy test`), for requests and for
//!   objects.
//!
//! The shipped Pod Security Standards profiles live in `policies/cedar/pod-security.cedar`.

pub mod engine;
pub mod object_entity;
pub mod object_model;
pub mod policy_test;
#[cfg(test)]
#[allow(clippy::panic, reason = "test code")]
mod test_kinds;
pub mod workload;

pub use engine::{
    AdmissionEngine, AdmissionInput, AdmissionModel, AdmissionSnapshot, Finding, Mode, Operation,
    Verdict,
};

/// Why admission could not be set up or a write could not be evaluated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmissionError {
    /// The upstream types could not be modelled (a build defect).
    #[error("object model: {0}")]
    Model(String),
    /// The write could not be turned into Cedar entities.
    #[error("admission request: {0}")]
    Request(String),
    /// Policies could not be loaded.
    #[error(transparent)]
    Policy(#[from] std::sync::Arc<bulwark_policies::PolicyError>),
}

impl From<bulwark_policies::PolicyError> for AdmissionError {
    fn from(e: bulwark_policies::PolicyError) -> Self {
        Self::Policy(std::sync::Arc::new(e))
    }
}
