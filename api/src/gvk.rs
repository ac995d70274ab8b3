//! How types and URLs are named: a kind is a group, version and kind (what `apiVersion` and
//! `kind` say), a resource is a group, version and plural resource name (what a URL says).
//! Both borrow or own their parts, so a lookup from a request path allocates nothing and a
//! definition (a built-in's or a custom resource's) owns its names.

use std::borrow::Cow;
use std::fmt;

/// A kind's full name: `apps/v1, Kind=Deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersionKind<'a> {
    /// API group ("" for core).
    pub group: Cow<'a, str>,
    /// Version.
    pub version: Cow<'a, str>,
    /// Kind.
    pub kind: Cow<'a, str>,
}

impl<'a> GroupVersionKind<'a> {
    /// A kind from its borrowed parts.
    pub fn new(group: &'a str, version: &'a str, kind: &'a str) -> Self {
        Self {
            group: Cow::Borrowed(group),
            version: Cow::Borrowed(version),
            kind: Cow::Borrowed(kind),
        }
    }

    /// The kind an object's `apiVersion` (`group/version`, or `version` for core) and `kind`
    /// name.
    pub fn from_api_version(api_version: &'a str, kind: &'a str) -> Self {
        let (group, version) = split_api_version(api_version);
        Self::new(group, version, kind)
    }

    /// `group/version`, or `version` for core: what objects carry as `apiVersion`.
    pub fn api_version(&self) -> String {
        join_api_version(&self.group, &self.version)
    }

    /// Whether this is `kind` of `group` (any version): kind checks always name the group,
    /// so a custom kind called `Pod` is never taken for the core one.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }

    /// The same name, owning its parts.
    pub fn into_owned(self) -> GroupVersionKind<'static> {
        GroupVersionKind {
            group: Cow::Owned(self.group.into_owned()),
            version: Cow::Owned(self.version.into_owned()),
            kind: Cow::Owned(self.kind.into_owned()),
        }
    }
}

impl fmt::Display for GroupVersionKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, Kind={}", self.api_version(), self.kind)
    }
}

/// A resource's full name: `apps/v1, Resource=deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersionResource<'a> {
    /// API group ("" for core).
    pub group: Cow<'a, str>,
    /// Version.
    pub version: Cow<'a, str>,
    /// Plural resource name (the URL segment).
    pub resource: Cow<'a, str>,
}

impl<'a> GroupVersionResource<'a> {
    /// A resource from its borrowed parts.
    pub fn new(group: &'a str, version: &'a str, resource: &'a str) -> Self {
        Self {
            group: Cow::Borrowed(group),
            version: Cow::Borrowed(version),
            resource: Cow::Borrowed(resource),
        }
    }

    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        join_api_version(&self.group, &self.version)
    }

    /// The same name, owning its parts.
    pub fn into_owned(self) -> GroupVersionResource<'static> {
        GroupVersionResource {
            group: Cow::Owned(self.group.into_owned()),
            version: Cow::Owned(self.version.into_owned()),
            resource: Cow::Owned(self.resource.into_owned()),
        }
    }
}

impl fmt::Display for GroupVersionResource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, Resource={}", self.api_version(), self.resource)
    }
}

/// Splits an `apiVersion` into group and version (`v1` is the core group's).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

fn join_api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_split_and_join() {
        let core = GroupVersionKind::from_api_version("v1", "Pod");
        assert_eq!((&*core.group, &*core.version), ("", "v1"));
        assert_eq!(core.api_version(), "v1");
        assert_eq!(core.to_string(), "v1, Kind=Pod");
        let apps = GroupVersionKind::from_api_version("apps/v1", "Deployment");
        assert_eq!((&*apps.group, &*apps.version), ("apps", "v1"));
        assert_eq!(apps.api_version(), "apps/v1");
        assert!(apps.is("apps", "Deployment"));
        assert!(!apps.is("", "Deployment"));
        let gvr = GroupVersionResource::new("apps", "v1", "deployments");
        assert_eq!(gvr.to_string(), "apps/v1, Resource=deployments");
        assert_eq!(gvr.clone().into_owned(), gvr);
    }
}
