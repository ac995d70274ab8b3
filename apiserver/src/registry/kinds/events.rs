//! `events.k8s.io/v1` Events (stored as `core/v1` Events: `registry::convert`).

use serde_json::Value;

use super::core::{EVENT_COLUMNS, event_cells};
use crate::registry::strategy::{Column, KindStrategy, typed};

/// `events.k8s.io/v1` Events.
#[derive(Debug)]
pub(crate) struct Events;

impl KindStrategy for Events {
    typed!(k8s_openapi::api::events::v1::Event);

    fn columns(&self) -> &'static [Column] {
        EVENT_COLUMNS
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        event_cells(o, "/regarding", "/note")
    }
}
