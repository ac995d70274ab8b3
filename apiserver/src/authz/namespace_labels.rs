//! The labels of every namespace, mirrored in memory so authorization can hand them to
//! Cedar as the request resource's tags (`resource.getTag("env")`) without a store read per
//! request.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;

use crate::storage::mirror::Objects;

/// Labels as (key, value) pairs.
pub type Labels = Arc<[(String, String)]>;

/// Namespace name → labels, replaced as a whole on every change.
#[derive(Debug, Default)]
pub struct NamespaceLabels {
    map: ArcSwap<HashMap<String, Labels>>,
}

impl NamespaceLabels {
    /// The labels of `namespace` (empty if it does not exist or has none).
    pub fn get(&self, namespace: &str) -> Labels {
        self.map
            .load()
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| Arc::from([]))
    }

    /// Replaces the map from the mirrored namespace objects.
    pub fn update(&self, namespaces: &Objects) {
        let map = namespaces
            .values()
            .filter_map(|ns| {
                let meta = ns.get("metadata")?;
                let name = meta.get("name")?.as_str()?.to_owned();
                let labels: Labels = meta
                    .get("labels")
                    .and_then(Value::as_object)
                    .map(|l| {
                        l.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_else(|| Arc::from([]));
                Some((name, labels))
            })
            .collect();
        self.map.store(Arc::new(map));
    }
}
