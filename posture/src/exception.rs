//! Applying `PostureException`s to findings: a failing finding in a live exception's scope
//! becomes `excepted` (naming the exception); one whose exception has expired stays `fail`
//! and says so, so an auditor sees the lapse.

use std::collections::BTreeMap;

use bulwark_api::posture::PostureException;
use serde_json::{Map, Value};

use crate::outcome::{ExceptionNote, Finding, ObjectRef, Source, State};

/// An object's labels.
type Labels<'a> = Option<&'a Map<String, Value>>;
/// (kind, namespace, name).
type ObjectKey<'a> = (&'a str, &'a str, &'a str);

/// What exception matching needs to know about the cluster: namespace labels and each
/// object's labels.
pub struct ScopeIndex<'a> {
    /// Labels of each namespace.
    pub namespace_labels: BTreeMap<&'a str, Labels<'a>>,
    /// Labels of each object, by (kind, namespace, name).
    pub object_labels: BTreeMap<ObjectKey<'a>, Labels<'a>>,
}

impl<'a> ScopeIndex<'a> {
    /// Indexes `objects`.
    pub fn new(objects: &'a [std::sync::Arc<Value>]) -> Self {
        let mut namespace_labels = BTreeMap::new();
        let mut object_labels = BTreeMap::new();
        for o in objects {
            let text = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default();
            let labels = o.pointer("/metadata/labels").and_then(Value::as_object);
            if text("/kind") == "Namespace" {
                namespace_labels.insert(text("/metadata/name"), labels);
            }
            object_labels.insert(
                (
                    text("/kind"),
                    text("/metadata/namespace"),
                    text("/metadata/name"),
                ),
                labels,
            );
        }
        Self {
            namespace_labels,
            object_labels,
        }
    }
}

fn covers(e: &PostureException, object: Option<&ObjectRef>, index: &ScopeIndex<'_>) -> bool {
    let Some(object) = object else {
        // Cluster-level findings: only an exception that names no object scope.
        return e.cluster_level();
    };
    if e.cluster_level() {
        return false;
    }
    let scope = &e.spec.scope;
    // A Namespace object is in the scope of its own name.
    let namespace = if object.kind == "Namespace" {
        &object.name
    } else {
        &object.namespace
    };
    if !scope.namespaces.is_empty() && !scope.namespaces.contains(namespace) {
        return false;
    }
    if let Some(selector) = &e.namespace_selector {
        let labels = index
            .namespace_labels
            .get(namespace.as_str())
            .copied()
            .flatten();
        if namespace.is_empty() || !selector.matches(labels) {
            return false;
        }
    }
    if let Some(selector) = &e.object_selector {
        let labels = index
            .object_labels
            .get(&(
                object.kind.as_str(),
                object.namespace.as_str(),
                object.name.as_str(),
            ))
            .copied()
            .flatten();
        if !selector.matches(labels) {
            return false;
        }
    }
    if !scope.resources.is_empty()
        && !scope.resources.iter().any(|r| {
            r.kind == object.kind
                && r.name == object.name
                && (r.namespace.is_empty() || r.namespace == object.namespace)
        })
    {
        return false;
    }
    true
}

/// Applies `exceptions` to `finding` at `now`.
pub fn apply(
    finding: &mut Finding,
    exceptions: &[PostureException],
    index: &ScopeIndex<'_>,
    now: i64,
) {
    if finding.outcome.state != State::Fail {
        return;
    }
    let object = match &finding.outcome.source {
        Source::Object { object, .. } => Some(object),
        _ => None,
    };
    let matching = exceptions
        .iter()
        .filter(|e| e.spec.controls.contains(&finding.control))
        .filter(|e| covers(e, object, index));
    // A live exception wins over an expired one.
    let mut lapsed = None;
    for e in matching {
        if e.expired(now) {
            lapsed.get_or_insert(e);
            continue;
        }
        finding.outcome.state = State::Excepted;
        finding.exception = Some(note(e, false));
        return;
    }
    if let Some(e) = lapsed {
        finding.exception = Some(note(e, true));
        finding.outcome.message = format!(
            "{} (exception {} expired {})",
            finding.outcome.message, e.name, e.spec.expires
        );
    }
}

fn note(e: &PostureException, expired: bool) -> ExceptionNote {
    ExceptionNote {
        name: e.name.clone(),
        owner: e.spec.owner.clone(),
        expires: e.spec.expires.clone(),
        expired,
    }
}
