//! What the server knows about one kind beyond its registry row, in one place per kind
//! (upstream's REST strategy is the model): typed decoding and schema, defaulting,
//! validation, initial status, and Table columns and cells. The built-in kinds implement it
//! in `registry/kinds/`, one file per API group; a schema-driven strategy will serve custom
//! resources.

use k8s_openapi::schemars::SchemaGenerator;
use serde_json::{Map, Value, json};

use super::validation::Causes;
use super::{ResourceDef, Subresource};
use crate::codec::table;

/// A Table column after NAME: (name, type, priority).
pub type Column = (&'static str, &'static str, u8);

/// The columns of a kind without columns of its own.
pub const AGE_ONLY: &[Column] = &[("Age", "string", 0)];

/// One kind's behaviour.
pub trait KindStrategy: std::fmt::Debug + Send + Sync {
    /// Decodes `value` as the kind's type and serializes it back, so fields the type does not
    /// know are pruned (the error names the bad field's path, never its value).
    fn roundtrip(&self, value: &Value) -> Result<Value, String>;

    /// Registers the kind's JSON schema with `generator` and returns its definition name
    /// (`None`: no schema is published).
    fn schema(&self, generator: &mut SchemaGenerator) -> Option<String>;

    /// The JSON pointer of the pod template objects of this kind stamp out ("" for a Pod;
    /// None: it runs no pods). Pod Security admission and the container-count limit read the
    /// pod there.
    fn pod_template(&self) -> Option<&'static str> {
        None
    }

    /// The resource whose storage this kind shares, served in its own shape (None: it has
    /// its own storage and is stored as served).
    fn stored_as(&self) -> Option<bulwark_api::GroupVersionResource<'static>> {
        None
    }

    /// Converts an object of this kind's shape into the shape it is stored in.
    fn stored_from_served(&self, obj: Value) -> Value {
        obj
    }

    /// Converts a stored object into this kind's shape.
    fn served_from_stored(&self, obj: Value) -> Value {
        obj
    }

    /// Upstream's defaulting: fills absent fields, never overwrites.
    fn default(&self, _obj: &mut Map<String, Value>) {}

    /// Semantic validation beyond the type (metadata is validated for every kind alike).
    fn validate(&self, _obj: &Value, _causes: &mut Causes) {}

    /// The status a new object starts with (`submitted` is what the client sent): the
    /// server owns the status of kinds with a status subresource.
    fn initial_status(&self, def: &ResourceDef, submitted: Option<Value>) -> Option<Value> {
        if def.has(Subresource::Status) {
            Some(json!({}))
        } else {
            submitted
        }
    }

    /// Whether deleting `obj` is graceful (marked with a deletion timestamp, removed later by
    /// whoever owns it) rather than immediate: a pod bound to a node waits for its node agent.
    fn graceful_delete(&self, _obj: &Value) -> bool {
        false
    }

    /// Whether a pending deletion whose `metadata.finalizers` are all gone must still wait:
    /// a namespace for its `spec.finalizers`, a bound pod for its node agent.
    fn deletion_waits(&self, _obj: &Value) -> bool {
        false
    }

    /// Whether a DELETE answers with the deleted object instead of a `Status` (upstream's
    /// `ReturnDeletedObject`).
    fn delete_returns_object(&self) -> bool {
        false
    }

    /// For kinds whose deletion always goes through a pending phase (namespaces: their
    /// contents go first), the status they show meanwhile.
    fn terminating_status(&self) -> Option<Value> {
        None
    }

    /// The Table columns after NAME.
    fn columns(&self) -> &'static [Column] {
        AGE_ONLY
    }

    /// One object's cells, one per column.
    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![table::age(obj)]
    }
}

/// Implements the typed part of [`KindStrategy`] (decoding and schema) for an upstream type.
macro_rules! typed {
    ($ty:ty) => {
        fn roundtrip(&self, value: &serde_json::Value) -> Result<serde_json::Value, String> {
            $crate::registry::typed::roundtrip::<$ty>(value)
        }

        fn schema(&self, generator: &mut k8s_openapi::schemars::SchemaGenerator) -> Option<String> {
            Some($crate::discovery::openapi::register::<$ty>(generator))
        }
    };
}
pub(crate) use typed;

/// A kind with only typed decoding and schema: every other behaviour is the default.
macro_rules! plain_kind {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl $crate::registry::strategy::KindStrategy for $name {
            $crate::registry::strategy::typed!($ty);
        }
    };
}
pub(crate) use plain_kind;

/// A kind that keeps whatever JSON it is given and publishes no schema: what tests serve as a
/// kind the server was not built with (a stand-in for a custom resource).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Untyped;

#[cfg(test)]
impl KindStrategy for Untyped {
    fn roundtrip(&self, value: &Value) -> Result<Value, String> {
        Ok(value.clone())
    }

    fn schema(&self, _generator: &mut SchemaGenerator) -> Option<String> {
        None
    }
}
