//! The kinds the admission crate's own tests model: a fixed list of upstream types (the API
//! server models its whole registry; its tests check the checked-in schema against it).

use std::sync::{Arc, OnceLock};

use bulwark_api::k8s_openapi::api::{apps, batch, core};

use crate::engine::AdmissionModel;
use crate::object_model::{KindSource, ObjectModel, schema_of};

const KINDS: &[KindSource] = &[
    KindSource {
        group: "",
        kind: "Namespace",
        register: schema_of::<core::v1::Namespace>,
        pod_template: None,
    },
    KindSource {
        group: "",
        kind: "ConfigMap",
        register: schema_of::<core::v1::ConfigMap>,
        pod_template: None,
    },
    KindSource {
        group: "",
        kind: "Secret",
        register: schema_of::<core::v1::Secret>,
        pod_template: None,
    },
    KindSource {
        group: "",
        kind: "Pod",
        register: schema_of::<core::v1::Pod>,
        pod_template: Some(""),
    },
    KindSource {
        group: "apps",
        kind: "Deployment",
        register: schema_of::<apps::v1::Deployment>,
        pod_template: Some("/spec/template"),
    },
    KindSource {
        group: "batch",
        kind: "CronJob",
        register: schema_of::<batch::v1::CronJob>,
        pod_template: Some("/spec/jobTemplate/spec/template"),
    },
    KindSource {
        group: "policy.bulwark.dev",
        kind: "CedarPolicy",
        register: schema_of::<bulwark_api::cedar_policy::CedarPolicy>,
        pod_template: None,
    },
];

static MODEL: OnceLock<Arc<AdmissionModel>> = OnceLock::new();

fn built() -> &'static Arc<AdmissionModel> {
    MODEL.get_or_init(|| match AdmissionModel::build(&KINDS) {
        Ok(model) => model,
        Err(e) => panic!("{e}"),
    })
}

/// The test model, built once.
pub(crate) fn model() -> Arc<AdmissionModel> {
    Arc::clone(built())
}

/// The test model's objects.
pub(crate) fn objects() -> &'static ObjectModel {
    built().objects()
}
