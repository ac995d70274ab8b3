//! What a control's evaluation says: a [`State`] and the [`Evidence`] behind it, for one
//! subject (the cluster's configuration, one object, one file, one node).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A result state. Only `Pass` counts towards a score; `NotEvaluated` and `Manual` count
/// against coverage and never as passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Checked and holds.
    Pass,
    /// Checked and does not hold.
    Fail,
    /// Needs a person's judgement (the evidence says what to look at).
    Manual,
    /// Cannot apply to this cluster by construction (the reason says why).
    NotApplicable,
    /// Could not be checked (the reason says why: e.g. no node has reported yet).
    NotEvaluated,
    /// Fails, but a live `PostureException` accepts it.
    Excepted,
}

impl State {
    /// Every state, in report order.
    pub const ALL: [State; 6] = [
        State::Pass,
        State::Fail,
        State::Manual,
        State::NotApplicable,
        State::NotEvaluated,
        State::Excepted,
    ];

    /// The kebab-case name (`not-evaluated`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pass => "pass",
            State::Fail => "fail",
            State::Manual => "manual",
            State::NotApplicable => "not-applicable",
            State::NotEvaluated => "not-evaluated",
            State::Excepted => "excepted",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// How a control's state is combined from its subjects': a failure outweighs an accepted
    /// failure, which outweighs a question, which outweighs a pass.
    fn weight(self) -> u8 {
        match self {
            State::Fail => 6,
            State::Excepted => 5,
            State::NotEvaluated => 4,
            State::Manual => 3,
            State::Pass => 2,
            State::NotApplicable => 1,
        }
    }

    /// The state of a control whose subjects have `states` (not-applicable when there are
    /// none).
    pub fn combine(states: impl IntoIterator<Item = State>) -> State {
        states
            .into_iter()
            .max_by_key(|s| s.weight())
            .unwrap_or(State::NotApplicable)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to a stored object, with the resourceVersion that was judged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The revision judged (empty for manifests).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// The object's uid (empty for manifests).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The manifest file it came from (offline scans).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
        }
    }
}

/// Where an observation came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Source {
    /// A key of the server's effective configuration (`authentication.anonymous`).
    Config {
        /// The key.
        key: String,
    },
    /// A stored object (or a manifest), at a JSON path of it.
    Object {
        /// The object.
        object: ObjectRef,
        /// Where in it (`spec.containers[0].securityContext.privileged`).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        path: String,
    },
    /// A file on the server's disk.
    File {
        /// Its path.
        path: String,
        /// Its mode, octal (`0600`).
        mode: String,
    },
    /// A question put to the running authorizer or admission chain, and its answer.
    Probe {
        /// What was asked (`may system:authenticated get secrets in default?`).
        request: String,
        /// The policies that decided, if any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        policies: Vec<String>,
    },
    /// A node agent's report.
    Node {
        /// The node.
        node: String,
    },
    /// A Cedar policy.
    Policy {
        /// The policy id.
        id: String,
        /// The CedarPolicy object holding it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        object: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Config { key } => write!(f, "config {key}"),
            Source::Object { object, path } if path.is_empty() => write!(f, "{object}"),
            Source::Object { object, path } => write!(f, "{object} {path}"),
            Source::File { path, mode } => write!(f, "file {path} ({mode})"),
            Source::Probe { request, .. } => write!(f, "probe: {request}"),
            Source::Node { node } => write!(f, "node {node}"),
            Source::Policy { id, .. } => write!(f, "policy {id}"),
        }
    }
}

/// One evaluated subject of a control: what was seen, what was expected, where, and why the
/// state is what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The subject's state.
    pub state: State,
    /// One sentence: what holds or does not, or why it was not evaluated.
    pub message: String,
    /// The value observed (`true`, `0644`, `identity`).
    pub observed: String,
    /// The value expected (`false`, `<= 0600`).
    pub expected: String,
    /// Where the observation came from.
    pub source: Source,
}

impl Outcome {
    /// A passing subject.
    pub fn pass(
        source: Source,
        observed: impl Into<String>,
        expected: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(State::Pass, source, observed, expected, message)
    }

    /// A failing subject.
    pub fn fail(
        source: Source,
        observed: impl Into<String>,
        expected: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(State::Fail, source, observed, expected, message)
    }

    /// A subject with `state`.
    pub fn new(
        state: State,
        source: Source,
        observed: impl Into<String>,
        expected: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            state,
            message: message.into(),
            observed: observed.into(),
            expected: expected.into(),
            source,
        }
    }

    /// Pass when `ok`, fail otherwise, with one message for each.
    pub fn check(
        ok: bool,
        source: Source,
        observed: impl Into<String>,
        expected: impl Into<String>,
        pass: impl Into<String>,
        fail: impl Into<String>,
    ) -> Self {
        if ok {
            Self::pass(source, observed, expected, pass)
        } else {
            Self::fail(source, observed, expected, fail)
        }
    }
}

/// A finding: one outcome of one control, as reports and the API list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The control (`KSPM-WL-01`).
    pub control: String,
    /// The control's severity.
    pub severity: crate::Severity,
    /// What was evaluated and how it came out.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The exception that accepts it (state `excepted`), or the one that expired (state
    /// `fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionNote>,
    /// When it was evaluated (RFC 3339).
    pub time: String,
    /// The catalogue version that judged it.
    pub catalogue_version: String,
}

impl Finding {
    /// The object this finding is about, if it is about one.
    pub fn object(&self) -> Option<&ObjectRef> {
        match &self.outcome.source {
            Source::Object { object, .. } => Some(object),
            _ => None,
        }
    }

    /// A key identifying the subject across scans (control + source), so that history can
    /// say when a finding opened and closed.
    pub fn key(&self) -> String {
        let subject = match &self.outcome.source {
            Source::Object { object, path } => format!(
                "{}/{}/{}/{}#{path}",
                object.api_version, object.kind, object.namespace, object.name
            ),
            other => other.to_string(),
        };
        format!("{}|{subject}", self.control)
    }
}

/// Which exception a finding met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionNote {
    /// The PostureException's name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// When it expires (or expired).
    pub expires: String,
    /// Whether it has expired (the finding is open again).
    pub expired: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_fails_if_any_subject_fails_and_is_not_applicable_without_subjects() {
        assert_eq!(
            State::combine([State::Pass, State::Fail, State::Excepted]),
            State::Fail
        );
        assert_eq!(
            State::combine([State::Pass, State::Excepted]),
            State::Excepted
        );
        assert_eq!(
            State::combine([State::Pass, State::NotEvaluated]),
            State::NotEvaluated
        );
        assert_eq!(
            State::combine([State::Pass, State::NotApplicable]),
            State::Pass
        );
        assert_eq!(State::combine([]), State::NotApplicable);
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
    }
}
