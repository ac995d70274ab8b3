//! End-to-end tests: the real `bulwark` binary, started on a free port with a fresh data
//! directory, driven by kubectl, the official Python client and raw HTTPS, one module per
//! area. One test binary, so the harness is built and linked once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

#[path = "../../audit/tests/support/receiver.rs"]
mod receiver;
mod server;

mod audit;
mod bad_input;
mod cedar_admission;
mod cedar_authz;
mod cert_rotation;
mod encryption;
mod foundationdb;
mod hostile_clients;
mod kubectl;
mod posture;
mod python_client;
mod rbac;
