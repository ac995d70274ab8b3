//! Kubernetes REST semantics over the object storage: get, create, update and delete of one
//! object, list and delete of collections, watch, patch, and the subresources.

pub(crate) mod collection;
pub mod fieldmanager;
pub mod handler;
pub(crate) mod list_stream;
pub(crate) mod object;
pub mod patch;
pub(crate) mod resource;
pub(crate) mod subresource;
pub(crate) mod watch;
pub mod watch_slots;
