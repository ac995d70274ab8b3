//! The audit trail of the API: one event per request stage ([`record`]), and the
//! `audit.bulwark.dev/v1` events API that reads the log back ([`query`]).

pub mod query;
pub mod record;
