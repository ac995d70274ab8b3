//! `scheduling.k8s.io/v1` PriorityClasses.

use serde_json::{Map, Value, json};

use crate::codec::table::{age, int};
use crate::registry::defaults::default;
use crate::registry::strategy::{Column, KindStrategy, typed};
use crate::registry::validation::Causes;

/// The highest value a user-defined priority class may have (upstream's
/// `HighestUserDefinablePriority`); larger ones are reserved for the system classes.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// PriorityClasses (`kubectl create priorityclass`).
#[derive(Debug)]
pub(crate) struct PriorityClasses;

impl KindStrategy for PriorityClasses {
    typed!(k8s_openapi::api::scheduling::v1::PriorityClass);

    fn default(&self, root: &mut Map<String, Value>) {
        default(root, "preemptionPolicy", json!("PreemptLowerPriority"));
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        let name = crate::rest::object::meta_str(obj, "name").unwrap_or_default();
        match obj.get("value").and_then(Value::as_i64) {
            None => v.required("value"),
            Some(value) if value > HIGHEST_USER_PRIORITY && !name.starts_with("system-") => v
                .invalid(
                    "value",
                    value,
                    "maximum allowed value of a user defined priority is 1000000000",
                ),
            Some(_) => {}
        }
        if let Some(policy) = obj.get("preemptionPolicy").and_then(Value::as_str)
            && !matches!(policy, "PreemptLowerPriority" | "Never")
        {
            v.unsupported(
                "preemptionPolicy",
                policy,
                &["Never", "PreemptLowerPriority"],
            );
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Value", "integer", 0),
            ("Global-Default", "boolean", 0),
            ("Age", "string", 0),
            ("PreemptionPolicy", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(int(o, "/value")),
            json!(
                o.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(o),
            json!(
                o.get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("PreemptLowerPriority")
            ),
        ]
    }
}
