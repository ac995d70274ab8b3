//! The resource registry seam: handlers find what a URL addresses through a
//! [`ResourceRegistry`], never through a static list, so served resources can change while
//! the server runs (custom resources: a new [`ResourceTable`] is installed whole and
//! atomically; a request keeps the snapshot it started with).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bulwark_api::GroupVersionResource;

use super::ResourceDef;

/// Where handlers look resources up.
pub trait ResourceRegistry: Send + Sync + std::fmt::Debug {
    /// The resources served now: one consistent snapshot.
    fn snapshot(&self) -> Arc<ResourceTable>;

    /// The resource served at `gvr` now.
    fn resource(&self, gvr: &GroupVersionResource<'_>) -> Option<Arc<ResourceDef>> {
        self.snapshot().get(gvr).cloned()
    }
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two definitions claim one group/version/resource.
    #[error("{0} is defined twice")]
    Duplicate(String),
}

/// An immutable set of served resources in discovery order, indexed by plural name.
#[derive(Debug, Default)]
pub struct ResourceTable {
    defs: Vec<Arc<ResourceDef>>,
    by_plural: HashMap<String, Vec<usize>>,
    docs: crate::discovery::openapi::DocCache,
}

impl ResourceTable {
    /// A table of `defs` (discovery lists them in this order); refused when two claim the
    /// same group/version/resource.
    pub fn new(defs: Vec<Arc<ResourceDef>>) -> Result<Self, RegistryError> {
        let mut table = Self {
            defs: Vec::with_capacity(defs.len()),
            ..Self::default()
        };
        for def in defs {
            if table.get(&def.gvr()).is_some() {
                return Err(RegistryError::Duplicate(def.gvr().to_string()));
            }
            table
                .by_plural
                .entry(def.plural().to_owned())
                .or_default()
                .push(table.defs.len());
            table.defs.push(def);
        }
        Ok(table)
    }

    /// The resource at `gvr`.
    pub fn get(&self, gvr: &GroupVersionResource<'_>) -> Option<&Arc<ResourceDef>> {
        self.by_plural
            .get(&*gvr.resource)
            .into_iter()
            .flatten()
            .filter_map(|i| self.defs.get(*i))
            .find(|def| def.group() == gvr.group && def.version() == gvr.version)
    }

    /// This table's OpenAPI documents.
    pub(crate) fn docs(&self) -> &crate::discovery::openapi::DocCache {
        &self.docs
    }

    /// Every resource, in discovery order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        self.defs.iter()
    }

    /// The group/versions served, in discovery order (core first, then groups by first
    /// mention).
    pub fn group_versions(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for def in &self.defs {
            if !out.contains(&(def.group(), def.version())) {
                out.push((def.group(), def.version()));
            }
        }
        out
    }
}

/// The registry a server runs with: a table replaced whole and atomically.
#[derive(Debug)]
pub struct ServedResources {
    current: ArcSwap<ResourceTable>,
}

impl ServedResources {
    /// Serves `table`.
    pub fn new(table: ResourceTable) -> Self {
        Self {
            current: ArcSwap::from_pointee(table),
        }
    }

    /// Serves the built-in resources.
    pub fn builtin() -> Self {
        Self {
            current: ArcSwap::new(Arc::clone(super::builtin_shared())),
        }
    }

    /// Serves `table` from now on; requests already running keep theirs.
    pub fn install(&self, table: ResourceTable) {
        self.current.store(Arc::new(table));
    }
}

impl ResourceRegistry for ServedResources {
    fn snapshot(&self) -> Arc<ResourceTable> {
        self.current.load_full()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::registry::builtin;
    use bulwark_api::GroupVersionKind;

    fn widgets() -> Arc<ResourceDef> {
        Arc::new(ResourceDef::new_stored(
            GroupVersionKind::new("example.com", "v1", "Widget"),
            "widgets",
            true,
            Arc::new(crate::registry::strategy::Untyped),
        ))
    }

    #[test]
    fn an_installed_table_is_served_and_running_requests_keep_theirs() {
        let served = ServedResources::builtin();
        let gvr = GroupVersionResource::new("example.com", "v1", "widgets");
        let before = served.snapshot();
        assert!(served.resource(&gvr).is_none());
        let mut defs: Vec<_> = builtin().iter().cloned().collect();
        defs.push(widgets());
        served.install(ResourceTable::new(defs).unwrap());
        assert_eq!(served.resource(&gvr).unwrap().kind(), "Widget");
        assert!(before.get(&gvr).is_none(), "a taken snapshot never changes");
        assert_eq!(
            served.snapshot().group_versions().last(),
            Some(&("example.com", "v1"))
        );
        // Same plural, other group: both resolve, each to its own.
        let events = GroupVersionResource::new("events.k8s.io", "v1", "events");
        assert_eq!(served.resource(&events).unwrap().group(), "events.k8s.io");
    }

    #[test]
    fn a_resource_defined_twice_is_refused() {
        let err = ResourceTable::new(vec![widgets(), widgets()]).unwrap_err();
        assert_eq!(
            err,
            RegistryError::Duplicate("example.com/v1, Resource=widgets".into())
        );
    }
}
