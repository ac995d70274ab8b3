use serde_json::{Value, json};

use super::*;
use crate::registry::lookup;

fn deployments() -> FieldManager {
    FieldManager::new(
        &lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap(),
        None,
    )
    .unwrap()
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"replicas": 0}})
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_owned(),
                        e["operation"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of(obj: &Value, manager: &str) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn creates_and_updates_move_ownership() {
    let fm = deployments();
    let mut created = deployment(1, "i:1");
    fm.update(None, &mut created, "kubectl-create", None)
        .unwrap();
    assert_eq!(
        managers(&created),
        [("kubectl-create".into(), "Update".into())]
    );
    let owned = fields_of(&created, "kubectl-create");
    assert!(owned["f:spec"]["f:replicas"].is_object(), "{owned}");
    assert!(
        owned["f:metadata"]["f:labels"]["f:app"].is_object(),
        "{owned}"
    );
    // Server-owned metadata, apiVersion/kind and status (a subresource) are nobody's.
    assert!(owned["f:metadata"].get("f:uid").is_none() && owned.get("f:status").is_none());
    assert!(owned.get("f:kind").is_none());
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(entry["apiVersion"], "apps/v1");

    let mut scaled = deployment(3, "i:1");
    scaled["metadata"]["managedFields"] = created["metadata"]["managedFields"].clone();
    fm.update(Some(&created), &mut scaled, "kubectl-scale", None)
        .unwrap();
    assert!(fields_of(&scaled, "kubectl-scale")["f:spec"]["f:replicas"].is_object());
    assert!(
        fields_of(&scaled, "kubectl-create")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
}

#[test]
fn apply_conflicts_force_and_removal() {
    let fm = deployments();
    let mut live = deployment(1, "i:1");
    fm.update(None, &mut live, "kubectl-client-side-apply", None)
        .unwrap();

    // Applying the same values is no conflict: the fields become shared.
    let applied = fm
        .apply(Some(&live), &deployment(1, "i:1"), "kubectl", false)
        .unwrap();
    assert_eq!(applied["spec"]["replicas"], 1);
    assert_eq!(
        managers(&applied),
        [
            ("kubectl-client-side-apply".into(), "Update".into()),
            ("kubectl".into(), "Apply".into())
        ]
    );

    // A different value of a field another manager owns is a conflict naming both.
    let err = fm
        .apply(Some(&applied), &deployment(5, "i:2"), "kubectl", false)
        .unwrap_err();
    assert_eq!(err.code(), 409);
    assert!(
        err.0.message.starts_with("Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:"),
        "{}",
        err.0.message
    );
    assert!(
        err.0.message.contains("\n- .spec.replicas"),
        "{}",
        err.0.message
    );
    assert!(
        err.0
            .message
            .contains("\n- .spec.template.spec.containers[name=\"app\"].image"),
        "{}",
        err.0.message
    );
    let causes = &err.0.details.as_ref().unwrap().causes;
    assert_eq!(causes.len(), 2);
    assert_eq!(causes[0].kind, "FieldManagerConflict");

    // Forced: the applier takes the fields.
    let forced = fm
        .apply(Some(&applied), &deployment(5, "i:2"), "kubectl", true)
        .unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    assert!(
        fields_of(&forced, "kubectl-client-side-apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert!(fields_of(&forced, "kubectl")["f:spec"]["f:replicas"].is_object());

    // A field the applier stops applying goes, unless someone else owns it.
    let mut without_replicas = deployment(5, "i:2");
    without_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    without_replicas["metadata"]["labels"]["extra"] = json!("x");
    let next = fm
        .apply(Some(&forced), &without_replicas, "kubectl", false)
        .unwrap();
    assert!(next["spec"].get("replicas").is_none(), "{}", next["spec"]);
    let mut without_extra = without_replicas.clone();
    without_extra["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("extra");
    let after = fm
        .apply(Some(&next), &without_extra, "kubectl", false)
        .unwrap();
    assert!(after["metadata"]["labels"].get("extra").is_none());
    // `app` is also the client-side manager's: kept while it owns it.
    let mut no_labels = without_extra.clone();
    no_labels["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    let kept = fm
        .apply(Some(&after), &no_labels, "kubectl", false)
        .unwrap();
    assert_eq!(kept["metadata"]["labels"]["app"], "web");
}

#[test]
fn apply_creates_and_ignores_status_on_the_main_resource() {
    let fm = deployments();
    let mut config = deployment(2, "i:1");
    config["status"] = json!({"replicas": 99});
    let created = fm.apply(None, &config, "gitops", false).unwrap();
    assert!(created.get("status").is_none());
    assert_eq!(managers(&created), [("gitops".into(), "Apply".into())]);
    let status = FieldManager::new(
        &lookup(&bulwark_api::GroupVersionResource::new(
            "apps",
            "v1",
            "deployments",
        ))
        .unwrap(),
        Some(Subresource::Status),
    )
    .unwrap();
    let mut with_status = created.clone();
    with_status["status"] = json!({"replicas": 2});
    status
        .update(Some(&created), &mut with_status, "controller", None)
        .unwrap();
    let entry = with_status["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "controller")
        .unwrap();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn client_sent_managed_fields_replace_or_fail() {
    let fm = deployments();
    let mut live = deployment(1, "i:1");
    fm.update(None, &mut live, "a", None).unwrap();
    let mut cleared = deployment(1, "i:1");
    fm.update(Some(&live), &mut cleared, "b", Some(&json!([])))
        .unwrap();
    assert!(cleared["metadata"].get("managedFields").is_none());
    for bad in [
        json!("x"),
        json!([{"manager": "m", "operation": "Steal", "fieldsType": "FieldsV1", "fieldsV1": {}}]),
        json!([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV2", "fieldsV1": {}}]),
        json!([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"bogus": {}}}]),
        json!([{"manager": "m".repeat(200), "operation": "Update", "fieldsType": "FieldsV1"}]),
    ] {
        let mut new = deployment(2, "i:1");
        let err = fm
            .update(Some(&live), &mut new, "b", Some(&bad))
            .unwrap_err();
        assert_eq!(err.code(), 400, "{bad}");
        assert!(err.0.message.contains("managedFields"), "{}", err.0.message);
    }
}

#[test]
fn kinds_without_a_schema_are_deduced() {
    let fm = FieldManager::new(
        &lookup(&bulwark_api::GroupVersionResource::new(
            "policy.bulwark.dev",
            "v1",
            "cedarpolicies",
        ))
        .unwrap(),
        None,
    )
    .unwrap();
    let config = json!({"apiVersion": "policy.bulwark.dev/v1", "kind": "CedarPolicy",
        "metadata": {"name": "p"}, "spec": {"kind": "Authorization", "policies": "permit(principal, action, resource);"}});
    let created = fm.apply(None, &config, "security-team", false).unwrap();
    assert_eq!(
        fields_of(&created, "security-team"),
        json!({"f:spec": {"f:kind": {}, "f:policies": {}}})
    );
}

#[test]
fn user_agent_names_the_manager() {
    let mut headers = http::HeaderMap::new();
    assert_eq!(manager_from_user_agent(&headers), "unknown");
    headers.insert(
        http::header::USER_AGENT,
        "kubectl/v1.32.0 (linux/amd64) kubernetes/abc"
            .parse()
            .unwrap(),
    );
    assert_eq!(manager_from_user_agent(&headers), "kubectl");
    assert!(check_manager(&"x".repeat(129)).is_err());
    assert!(check_manager("kubectl").is_ok());
}
