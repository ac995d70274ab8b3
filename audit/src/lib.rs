//! Bulwark's audit log: who did what, when, and was it allowed — recorded so that editing the
//! record is detectable.
//!
//! - [`event`]: events in the upstream `audit.k8s.io/v1` shape, with Bulwark's annotations for
//!   authorization and admission decisions.
//! - [`policy`]: the audit policy (upstream's file format) deciding each request's level, with
//!   a hardened default.
//! - [`chain`]: the record format: every line carries its sequence number and the SHA-256 of
//!   the line before it; checkpoints sign the chain head with an Ed25519 key.
//! - [`writer`]: the append-only writer (segments, fsync per batch, checkpoints, rotation,
//!   retention, torn-tail recovery) behind [`AuditSink`], the one interface every component
//!   records through.
//! - [`verify`]: the offline verifier behind `bulwark audit verify`.
//! - [`webhook`]: the optional webhook sink, shipping the log's events in upstream's batch
//!   format with the latest signed checkpoint.
//! - [`index`] and [`query`]: the per-segment query index and the search over it behind
//!   `bulwark audit query` and the `audit.bulwark.dev/v1` API.

pub mod chain;
pub mod event;
pub mod index;
pub mod policy;
pub mod query;
pub mod verify;
pub mod webhook;
pub mod writer;

pub use event::{Event, Level, ObjectRef, Stage, UserInfo};
pub use policy::AuditPolicy;
pub use query::{AuditReader, Query};
pub use writer::{AuditLog, AuditOptions, AuditSink};

/// Why the audit log could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The signing key is missing, unreadable or invalid.
    #[error("audit signing key: {0}")]
    Key(String),
    /// The audit policy does not parse.
    #[error("audit policy: {0}")]
    Policy(String),
    /// An existing log cannot be continued.
    #[error("audit log: {0}")]
    Log(String),
    /// The webhook's configuration is unusable.
    #[error("audit webhook: {0}")]
    Webhook(String),
    /// A query is malformed (a client error).
    #[error("{0}")]
    BadQuery(String),
}

/// Maps an I/O error on `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}
