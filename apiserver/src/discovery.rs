//! API discovery (`/api`, `/apis`, `/apis/<group>`, `/api/v1`, `/apis/<group>/<version>`) in
//! the legacy (unaggregated) format, which every client understands: resources with their
//! verbs, kinds, short names, categories and subresources.

pub(crate) mod openapi;

use serde_json::{Value, json};

use crate::registry::{ResourceDef, ResourceTable, Subresource};

/// The verbs every stored resource serves (what discovery lists, and what a rules review
/// asks about).
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

fn group_doc(table: &ResourceTable, group: &str) -> Value {
    let versions: Vec<Value> = table
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": preferred})
}

/// `/apis`.
pub fn groups(table: &ResourceTable) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in table.group_versions() {
        if !g.is_empty() && !names.contains(&g) {
            names.push(g);
        }
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": names.into_iter().map(|g| group_doc(table, g)).collect::<Vec<_>>()})
}

/// `/apis/<group>`, if served.
pub fn group(table: &ResourceTable, name: &str) -> Option<Value> {
    table
        .group_versions()
        .iter()
        .any(|(g, _)| *g == name && !g.is_empty())
        .then(|| group_doc(table, name))
}

fn subresource_entry(def: &ResourceDef, sub: Subresource) -> Value {
    let name = format!("{}/{}", def.plural(), sub.name());
    match sub {
        Subresource::Status => {
            json!({"name": name, "singularName": "", "namespaced": def.namespaced(), "kind": def.kind(), "verbs": ["get", "patch", "update"]})
        }
        Subresource::Scale => {
            json!({"name": name, "singularName": "", "namespaced": def.namespaced(), "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        }
        Subresource::Binding => {
            json!({"name": name, "singularName": "", "namespaced": def.namespaced(), "kind": "Binding", "verbs": ["create"]})
        }
        Subresource::Token => {
            json!({"name": name, "singularName": "", "namespaced": def.namespaced(), "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]})
        }
        Subresource::Approval => {
            json!({"name": name, "singularName": "", "namespaced": def.namespaced(), "kind": def.kind(), "verbs": ["get", "patch", "update"]})
        }
    }
}

/// `/api/v1` or `/apis/<group>/<version>`, if served.
pub fn resources(table: &ResourceTable, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = table
        .iter()
        .filter(|r| r.group() == group && r.version() == version)
        .map(|r| &**r)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for def in &defs {
        let mut entry = json!({
            "name": def.plural(), "singularName": def.singular(), "namespaced": def.namespaced(),
            "kind": def.kind(), "verbs": def.serving().verbs(),
        });
        if let Some(map) = entry.as_object_mut() {
            let short_names: Vec<&str> = def.short_names().collect();
            if !short_names.is_empty() {
                map.insert("shortNames".into(), json!(short_names));
            }
            let categories: Vec<&str> = def.categories().collect();
            if !categories.is_empty() {
                map.insert("categories".into(), json!(categories));
            }
        }
        entries.push(entry);
        entries.extend(
            def.subresources()
                .iter()
                .map(|s| subresource_entry(def, *s)),
        );
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let apps = resources(crate::registry::builtin(), "apps", "v1").unwrap();
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(!names.contains(&"daemonsets/scale"));
        assert_eq!(
            groups(crate::registry::builtin())["groups"][0]["name"],
            "apps"
        );
        assert!(group(crate::registry::builtin(), "").is_none());
        assert!(group(crate::registry::builtin(), "apps").is_some());
        assert!(resources(crate::registry::builtin(), "apps", "v2").is_none());
    }
}
