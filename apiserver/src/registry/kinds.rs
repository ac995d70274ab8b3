//! The built-in kinds' strategies, one file per API group: everything the server knows
//! about a kind beyond its registry row.

pub(crate) mod apps;
pub(crate) mod authorization;
pub(crate) mod batch;
pub(crate) mod bulwark;
pub(crate) mod certificates;
pub(crate) mod coordination;
pub(crate) mod core;
pub(crate) mod events;
pub(crate) mod rbac;
pub(crate) mod scheduling;
