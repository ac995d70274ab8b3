//! Bulwark's API vocabulary, shared by every crate and free of I/O.
//!
//! - [`status`]: `metav1.Status`, the one error shape every client understands, with the
//!   upstream `reason` strings and HTTP codes.
//! - [`selector`]: label selectors (equality- and set-based) and field selectors, parsed with
//!   upstream's grammar and matched against JSON objects.
//! - [`names`]: the DNS-1123 name rules upstream applies to object names, namespaces and labels.
//! - [`gvk`]: [`GroupVersionKind`] and [`GroupVersionResource`], how types and URLs are named.
//! - [`cedar_policy`]: `policy.bulwark.dev/v1 CedarPolicy`, the API object security teams
//!   write Cedar policies in.
//! - [`posture`]: `posture.bulwark.dev/v1 PostureException`, how a failing control is accepted
//!   for a scope, with an owner and an expiry.
//! - [`policy_report`]: `wgpolicyk8s.io/v1alpha2 PolicyReport` and `ClusterPolicyReport`, the
//!   Policy WG's report format the posture scanner publishes its results in.
//!
//! Objects themselves stay `serde_json::Value` in the generic paths (see DESIGN.md): the
//! apiserver stores and serves upstream shapes without a typed round trip.

pub mod cedar_policy;
pub mod gvk;
pub mod names;
pub mod policy_report;
pub mod posture;
pub mod selector;
pub mod status;

pub use gvk::{GroupVersionKind, GroupVersionResource};
/// Re-exported so the crates that model upstream types (admission) use the same version.
pub use k8s_openapi;
pub use selector::{FieldSelector, LabelSelector, SelectorError};
pub use status::{Status, StatusCause, StatusReason};
