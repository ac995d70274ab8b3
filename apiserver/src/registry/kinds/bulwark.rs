//! Bulwark's own kinds: `policy.bulwark.dev/v1` CedarPolicies, the `audit.bulwark.dev/v1`
//! events read from the audit log, and the `encryption.bulwark.dev/v1` objects.

use serde_json::{Value, json};

use crate::codec::table::{age, len, or_none, text};
use crate::registry::strategy::{Column, KindStrategy, typed};

/// CedarPolicies: the columns show what the servers made of each policy set.
#[derive(Debug)]
pub(crate) struct CedarPolicies;

impl KindStrategy for CedarPolicies {
    typed!(bulwark_api::cedar_policy::CedarPolicy);

    fn columns(&self) -> &'static [Column] {
        &[
            ("Kind", "string", 0),
            ("Mode", "string", 0),
            ("Namespace", "string", 0),
            ("Policies", "integer", 0),
            ("Loaded", "string", 0),
            ("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        // The `Loaded` condition: True, False, or Unknown before any server looked at it.
        let loaded = o
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Loaded"))
            })
            .and_then(|c| c.get("status").and_then(Value::as_str))
            .unwrap_or("Unknown");
        vec![
            json!(text(o, "/spec/kind")),
            json!(or_none(text(o, "/spec/mode"))),
            json!(or_none(text(o, "/spec/namespace"))),
            json!(len(o, "/status/policyIds")),
            json!(loaded),
            age(o),
        ]
    }
}

/// PostureExceptions: validated (controls that exist, selectors that parse, an owner, a
/// justification, an expiry in the future within a year and a day); the columns say what is
/// accepted, by whom, until when.
#[derive(Debug)]
pub(crate) struct PostureExceptions;

impl KindStrategy for PostureExceptions {
    typed!(bulwark_api::posture::PostureExceptionObject);

    fn validate(&self, obj: &Value, v: &mut crate::registry::validation::Causes) {
        let exception = match bulwark_api::posture::PostureException::from_object(obj) {
            Ok(e) => e,
            Err(e) => {
                v.invalid("spec", "", &e.to_string());
                return;
            }
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Err(e) = exception.check_lifetime(now) {
            v.invalid("spec.expires", &exception.spec.expires, &e.to_string());
        }
        // Parsed once, not on every write.
        static CATALOGUE: std::sync::OnceLock<Option<bulwark_posture::Catalogue>> =
            std::sync::OnceLock::new();
        if let Some(catalogue) =
            CATALOGUE.get_or_init(|| bulwark_posture::Catalogue::builtin().ok())
        {
            for (i, control) in exception.spec.controls.iter().enumerate() {
                if catalogue.control(control).is_none() {
                    v.invalid(
                        &format!("spec.controls[{i}]"),
                        control,
                        "no such control in the posture catalogue",
                    );
                }
            }
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Controls", "string", 0),
            ("Owner", "string", 0),
            ("Expires", "string", 0),
            ("Age", "string", 0),
            ("Justification", "string", 1),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let controls: Vec<&str> = o
            .pointer("/spec/controls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        vec![
            json!(controls.join(",")),
            json!(text(o, "/spec/owner")),
            json!(text(o, "/spec/expires")),
            age(o),
            json!(text(o, "/spec/justification")),
        ]
    }
}

/// `wgpolicyk8s.io/v1alpha2` PolicyReports and ClusterPolicyReports: stored as given (any
/// engine may publish its results), with the WG's columns. The `bulwark-posture` reports (by
/// name or by their `managed-by` label) are the posture scanner's, written by the server
/// itself: no request may create or change one, so what Policy Reporter shows is what the
/// scanner found.
macro_rules! policy_report_kind {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl KindStrategy for $name {
            typed!($ty);

            fn validate(&self, obj: &Value, v: &mut crate::registry::validation::Causes) {
                reserve_posture_reports(obj, v);
            }

            fn columns(&self) -> &'static [Column] {
                POLICY_REPORT_COLUMNS
            }

            fn cells(&self, o: &Value) -> Vec<Value> {
                policy_report_cells(o)
            }
        }
    };
}

policy_report_kind!(
    /// `PolicyReport`: one namespace's results.
    PolicyReports,
    bulwark_api::policy_report::PolicyReport
);
policy_report_kind!(
    /// `ClusterPolicyReport`: the cluster's and cluster-scoped resources' results.
    ClusterPolicyReports,
    bulwark_api::policy_report::ClusterPolicyReport
);

/// The columns the WG's CRD prints.
const POLICY_REPORT_COLUMNS: &[Column] = &[
    ("Kind", "string", 1),
    ("Name", "string", 1),
    ("Pass", "integer", 0),
    ("Fail", "integer", 0),
    ("Warn", "integer", 0),
    ("Error", "integer", 0),
    ("Skip", "integer", 0),
    ("Age", "string", 0),
];

fn policy_report_cells(o: &Value) -> Vec<Value> {
    let count = |field: &str| json!(crate::codec::table::int(o, &format!("/summary/{field}")));
    vec![
        json!(text(o, "/scope/kind")),
        json!(text(o, "/scope/name")),
        count("pass"),
        count("fail"),
        count("warn"),
        count("error"),
        count("skip"),
        age(o),
    ]
}

/// Refuses a request that would create or change one of the posture scanner's reports.
fn reserve_posture_reports(obj: &Value, v: &mut crate::registry::validation::Causes) {
    use bulwark_posture::policy_report::{MANAGED_BY_LABEL, REPORT_NAME, SOURCE};
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let reserved_name = name == REPORT_NAME
        || name
            .strip_prefix(REPORT_NAME)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if reserved_name {
        v.invalid(
            "metadata.name",
            name,
            "this name is reserved for the posture scanner's report, which only the server writes",
        );
    }
    if bulwark_posture::policy_report::is_managed(obj) {
        v.invalid(
            &format!("metadata.labels[{MANAGED_BY_LABEL}]"),
            SOURCE,
            "reports managed by the posture scanner are written only by the server",
        );
    }
}

/// Objects a handler answers with and never stores (audit events, listed from the log, whose
/// Table `audit::query` builds; the encryption API's): no schema, no conversion.
#[derive(Debug)]
pub(crate) struct HandlerServed;

impl KindStrategy for HandlerServed {
    fn roundtrip(&self, value: &Value) -> Result<Value, String> {
        Ok(value.clone())
    }

    fn schema(&self, _: &mut k8s_openapi::schemars::SchemaGenerator) -> Option<String> {
        None
    }
}

/// Served like [`HandlerServed`], with Table columns: `columns` after NAME, `cells` from the
/// object.
macro_rules! served_with_columns {
    ($(#[$doc:meta])* $name:ident, [$($column:expr),* $(,)?], |$o:ident| $cells:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl KindStrategy for $name {
            fn roundtrip(&self, value: &Value) -> Result<Value, String> {
                Ok(value.clone())
            }

            fn schema(&self, _: &mut k8s_openapi::schemars::SchemaGenerator) -> Option<String> {
                None
            }

            fn columns(&self) -> &'static [Column] {
                &[$($column),*]
            }

            fn cells(&self, $o: &Value) -> Vec<Value> {
                $cells
            }
        }
    };
}

served_with_columns!(
    /// `EncryptionStatus`: what is encrypted and what is not.
    EncryptionStatuses,
    [("Encrypted", "integer", 0), ("Plaintext", "integer", 0), ("Configuration", "string", 0)],
    |o| vec![
        json!(o.pointer("/status/encrypted").and_then(Value::as_u64).unwrap_or(0)),
        json!(o.pointer("/status/plaintext").and_then(Value::as_u64).unwrap_or(0)),
        json!(text(o, "/status/configuration")),
    ]
);

served_with_columns!(
    /// `EncryptionKey`: a key, whether it is primary, and what uses it.
    EncryptionKeys,
    [
        ("Provider", "string", 0),
        ("Primary", "boolean", 0),
        ("Objects", "integer", 0),
        ("State", "string", 0),
        ("Age", "string", 0),
    ],
    |o| vec![
        json!(text(o, "/status/provider")),
        json!(o.pointer("/status/primary") == Some(&Value::Bool(true))),
        json!(o.pointer("/status/objects").and_then(Value::as_u64).unwrap_or(0)),
        json!(if o.pointer("/status/retired").is_some_and(Value::is_string) { "Retired" } else { "Live" }),
        age(o),
    ]
);

served_with_columns!(
    /// `KeyRotation`: a rotation's progress.
    KeyRotations,
    [
        ("Phase", "string", 0),
        ("Rewritten", "integer", 0),
        ("Total", "integer", 0),
        ("Key", "string", 0),
        ("Age", "string", 0),
        ("Message", "string", 1),
    ],
    |o| vec![
        json!(text(o, "/status/phase")),
        json!(o.pointer("/status/rewritten").and_then(Value::as_u64).unwrap_or(0)),
        json!(o.pointer("/status/total").and_then(Value::as_u64).unwrap_or(0)),
        json!(text(o, "/status/targetKeyId")),
        age(o),
        json!(text(o, "/status/message")),
    ]
);

served_with_columns!(
    /// `PostureReport`: the score and coverage over every control.
    PostureReports,
    [
        ("Score", "string", 0),
        ("Coverage", "string", 0),
        ("Pass", "integer", 0),
        ("Fail", "integer", 0),
        ("Generated", "string", 0),
        ("Catalogue", "string", 1),
    ],
    |o| {
        let all = o.pointer("/summaries/0");
        let field = |p: &str| all.and_then(|a| a.pointer(p)).cloned().unwrap_or(Value::Null);
        vec![
            json!(field("/score").as_f64().map_or_else(|| "none".to_owned(), |s| format!("{s:.1}%"))),
            json!(field("/coverage").as_f64().map_or_else(String::new, |s| format!("{s:.1}%"))),
            json!(field("/counts/pass").as_u64().unwrap_or(0)),
            json!(field("/counts/fail").as_u64().unwrap_or(0)),
            json!(text(o, "/generated")),
            json!(text(o, "/catalogueVersion")),
        ]
    }
);

served_with_columns!(
    /// `PostureFinding`: one control's verdict on one subject.
    PostureFindings,
    [
        ("Control", "string", 0),
        ("Severity", "string", 0),
        ("State", "string", 0),
        ("Subject", "string", 0),
        ("Message", "string", 0),
    ],
    |o| {
        let subject = match o.pointer("/source/type").and_then(Value::as_str) {
            Some("object") => format!(
                "{}/{}",
                text(o, "/source/object/kind"),
                text(o, "/source/object/name")
            ),
            Some("config") => text(o, "/source/key"),
            Some("file") => text(o, "/source/path"),
            Some("probe") => text(o, "/source/request"),
            Some("policy") => text(o, "/source/id"),
            Some("node") => text(o, "/source/node"),
            _ => String::new(),
        };
        vec![
            json!(text(o, "/control")),
            json!(text(o, "/severity")),
            json!(text(o, "/state")),
            json!(subject),
            json!(text(o, "/message")),
        ]
    }
);
