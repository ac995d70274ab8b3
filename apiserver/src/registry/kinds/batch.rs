//! The `batch/v1` kinds: Jobs and CronJobs.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::codec::table::{age, human_duration, int, len, text};
use crate::registry::defaults::{default, map, pod_template};
use crate::registry::strategy::{Column, KindStrategy, typed};
use crate::registry::validation::Causes;
use crate::rest::object::parse_time;

/// A Job spec's defaults (also a CronJob's job template).
fn job_defaults(spec: &mut Map<String, Value>) {
    if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    pod_template(spec);
}

/// A Job spec's rules: counts not negative, a pod template that restarts OnFailure or Never.
fn job_spec(v: &mut Causes, spec: &Value, path: &str) {
    for field in ["parallelism", "completions", "backoffLimit"] {
        if let Some(n) = spec.get(field)
            && n.as_i64().is_none_or(|n| n < 0)
        {
            v.invalid(
                &format!("{path}.{field}"),
                n,
                "must be greater than or equal to 0",
            );
        }
    }
    match spec.pointer("/template/spec") {
        Some(pod) => {
            let pod_path = format!("{path}.template.spec");
            if pod.get("restartPolicy").is_none() {
                v.required(&format!("{pod_path}.restartPolicy"));
            }
            v.pod_spec(pod, &pod_path, &["OnFailure", "Never"]);
        }
        None => v.required(&format!("{path}.template.spec")),
    }
}

/// Jobs.
#[derive(Debug)]
pub(crate) struct Jobs;

impl KindStrategy for Jobs {
    typed!(k8s_openapi::api::batch::v1::Job);

    fn pod_template(&self) -> Option<&'static str> {
        Some("/spec/template")
    }

    fn default(&self, root: &mut Map<String, Value>) {
        if let Some(spec) = map(root, "spec") {
            job_defaults(spec);
        }
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        if let Some(spec) = obj.get("spec") {
            job_spec(v, spec, "spec");
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[("Completions", "string", 0), ("Age", "string", 0)]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(format!(
                "{}/{}",
                int(o, "/status/succeeded"),
                o.pointer("/spec/completions")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            age(o),
        ]
    }
}

/// CronJobs.
#[derive(Debug)]
pub(crate) struct CronJobs;

impl KindStrategy for CronJobs {
    typed!(k8s_openapi::api::batch::v1::CronJob);

    fn pod_template(&self) -> Option<&'static str> {
        Some("/spec/jobTemplate/spec/template")
    }

    fn default(&self, root: &mut Map<String, Value>) {
        let Some(spec) = map(root, "spec") else {
            return;
        };
        default(spec, "concurrencyPolicy", json!("Allow"));
        default(spec, "suspend", json!(false));
        default(spec, "successfulJobsHistoryLimit", json!(3));
        default(spec, "failedJobsHistoryLimit", json!(1));
        if let Some(job) = map(spec, "jobTemplate").and_then(|t| map(t, "spec")) {
            job_defaults(job);
        }
    }

    fn validate(&self, obj: &Value, v: &mut Causes) {
        let schedule = obj
            .pointer("/spec/schedule")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if schedule.trim().is_empty() {
            v.required("spec.schedule");
        } else if !schedule.starts_with('@') && schedule.split_whitespace().count() != 5 {
            v.invalid(
                "spec.schedule",
                schedule,
                "must be a standard cron expression with 5 fields or a @descriptor",
            );
        }
        match obj.pointer("/spec/jobTemplate/spec") {
            Some(job) => job_spec(v, job, "spec.jobTemplate.spec"),
            None => v.required("spec.jobTemplate.spec"),
        }
    }

    fn columns(&self) -> &'static [Column] {
        &[
            ("Schedule", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            ("Age", "string", 0),
        ]
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            json!(text(o, "/spec/schedule")),
            json!(
                o.pointer("/spec/suspend")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(len(o, "/status/active")),
            json!(
                o.pointer("/status/lastScheduleTime")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .map_or("<none>".into(), |t| human_duration(
                        (OffsetDateTime::now_utc() - t).whole_seconds()
                    ))
            ),
            age(o),
        ]
    }
}
