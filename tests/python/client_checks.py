"""API behaviour checks from an independent client: the official Kubernetes Python client.

Run by tests/python_client.rs against a fresh `bulwark server`; KUBECONFIG points at its
admin kubeconfig. Each check raises on failure; the script prints one line per check.
"""

import datetime
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NS = "py-checks"


def expect_status(fn, code, reason=None):
    try:
        fn()
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        if reason:
            assert f'"reason":"{reason}"' in e.body.replace(" ", ""), e.body
        return e
    raise AssertionError(f"expected HTTP {code}, call succeeded")


def check(name):
    def wrap(fn):
        CHECKS.append((name, fn))
        return fn
    return wrap


CHECKS = []


@check("namespace and configmap CRUD")
def crud(core, apps):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    cm = core.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg", labels={"app": "demo"}), data={"k": "v"}))
    assert cm.metadata.uid and cm.metadata.resource_version and cm.metadata.creation_timestamp
    got = core.read_namespaced_config_map("cfg", NS)
    assert got.data == {"k": "v"}
    got.data["k"] = "v2"
    updated = core.replace_namespaced_config_map("cfg", NS, got)
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    patched = core.patch_namespaced_config_map("cfg", NS, {"data": {"extra": "1"}})
    assert patched.data == {"k": "v2", "extra": "1"}
    core.delete_namespaced_config_map("cfg", NS)
    expect_status(lambda: core.read_namespaced_config_map("cfg", NS), 404, "NotFound")


@check("optimistic concurrency: stale update is 409, create twice is 409")
def conflicts(core, apps):
    cm = core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1"), data={"a": "1"}))
    core.patch_namespaced_config_map("c1", NS, {"data": {"a": "2"}})
    cm.data["a"] = "stale"
    expect_status(lambda: core.replace_namespaced_config_map("c1", NS, cm), 409, "Conflict")
    expect_status(lambda: core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1"))), 409, "AlreadyExists")
    core.delete_namespaced_config_map("c1", NS)


@check("label and field selectors")
def selectors(core, apps):
    for i in range(6):
        core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(
            name=f"sel-{i}", labels={"tier": "web" if i % 2 else "db", "idx": str(i)})))
    names = lambda items: sorted(i.metadata.name for i in items)
    assert names(core.list_namespaced_config_map(NS, label_selector="tier=web").items) == ["sel-1", "sel-3", "sel-5"]
    assert names(core.list_namespaced_config_map(NS, label_selector="tier!=web,idx in (0,2)").items) == ["sel-0", "sel-2"]
    assert names(core.list_namespaced_config_map(NS, label_selector="!tier").items) == []
    assert names(core.list_namespaced_config_map(NS, field_selector="metadata.name=sel-4").items) == ["sel-4"]
    assert names(core.list_namespaced_config_map(NS, field_selector="metadata.name!=sel-4", label_selector="tier=db").items) == ["sel-0", "sel-2"]
    expect_status(lambda: core.list_namespaced_config_map(NS, label_selector="tier in web"), 400, "BadRequest")
    expect_status(lambda: core.list_namespaced_config_map(NS, field_selector="spec.bogus=x"), 400, "BadRequest")
    core.delete_collection_namespaced_config_map(NS, label_selector="tier")
    assert core.list_namespaced_config_map(NS).items == []


@check("pagination with limit and continue")
def pagination(core, apps):
    for i in range(11):
        core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"page-{i:02}")))
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(NS, limit=4, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3 and seen == [f"page-{i:02}" for i in range(11)], (pages, seen)
    core.delete_collection_namespaced_config_map(NS)


@check("watch: events in order, from a resourceVersion, with bookmarks allowed")
def watching(core, apps):
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    events = []

    def consume():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=start,
                           allow_watch_bookmarks=True, timeout_seconds=20):
            events.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched")))
    core.patch_namespaced_config_map("watched", NS, {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_config_map("watched", NS)
    t.join(25)
    assert events == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")], events


def restricted_pod_spec(name, image):
    """One container that meets the restricted Pod Security profile, enforced by default."""
    return client.V1PodSpec(
        security_context=client.V1PodSecurityContext(
            run_as_non_root=True,
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")),
        containers=[client.V1Container(
            name=name, image=image,
            security_context=client.V1SecurityContext(
                allow_privilege_escalation=False,
                capabilities=client.V1Capabilities(drop=["ALL"])))])


@check("deployment status and scale subresources")
def subresources(core, apps):
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=restricted_pod_spec("app", "registry.local/web:1"))))
    created = apps.create_namespaced_deployment(NS, dep)
    assert created.metadata.generation == 1
    # Status writes go through /status only; main-resource writes ignore status.
    created.status = client.V1DeploymentStatus(replicas=2, ready_replicas=1)
    after_main = apps.replace_namespaced_deployment("web", NS, created)
    assert not after_main.status.ready_replicas
    st = apps.patch_namespaced_deployment_status("web", NS, {"status": {"replicas": 2, "readyReplicas": 1}})
    assert st.status.ready_replicas == 1 and st.metadata.generation == 1
    # Scale changes spec.replicas and bumps generation; status writes do not.
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    d = apps.read_namespaced_deployment("web", NS)
    assert d.spec.replicas == 4 and d.metadata.generation == 2 and d.status.ready_replicas == 1
    # Label-only change: no generation bump.
    d = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"l": "1"}}})
    assert d.metadata.generation == 2
    apps.delete_namespaced_deployment("web", NS)


@check("pod binding and field selectors on spec.nodeName / status.phase")
def binding(core, apps):
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="p1"),
                       spec=restricted_pod_spec("c", "registry.local/x:1"))
    created = core.create_namespaced_pod(NS, pod)
    assert created.status.phase == "Pending"
    assert [p.metadata.name for p in core.list_namespaced_pod(NS, field_selector="status.phase=Pending").items] == ["p1"]
    core.create_namespaced_pod_binding("p1", NS, client.V1Binding(
        metadata=client.V1ObjectMeta(name="p1"), target=client.V1ObjectReference(kind="Node", name="node-a")),
        _preload_content=False)
    assert core.read_namespaced_pod("p1", NS).spec.node_name == "node-a"
    assert [p.metadata.name for p in core.list_namespaced_pod(NS, field_selector="spec.nodeName=node-a").items] == ["p1"]
    e = expect_status(lambda: core.create_namespaced_pod_binding("p1", NS, client.V1Binding(
        metadata=client.V1ObjectMeta(name="p1"), target=client.V1ObjectReference(kind="Node", name="node-b")),
        _preload_content=False), 409, "Conflict")
    # A bound pod's deletion is graceful: it gets a deletionTimestamp and stays for its node.
    core.delete_namespaced_pod("p1", NS)
    assert core.read_namespaced_pod("p1", NS).metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("p1", NS, grace_period_seconds=0)


@check("finalizers hold deletion until removed; preconditions")
def finalizers(core, apps):
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fin", finalizers=["example.com/hold"])))
    core.delete_namespaced_config_map("fin", NS)
    held = core.read_namespaced_config_map("fin", NS)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", NS, [{"op": "remove", "path": "/metadata/finalizers"}])
    expect_status(lambda: core.read_namespaced_config_map("fin", NS), 404)
    cm = core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="pre")))
    expect_status(lambda: core.delete_namespaced_config_map("pre", NS, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000"))), 409, "Conflict")
    core.delete_namespaced_config_map("pre", NS, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=cm.metadata.uid, resource_version=cm.metadata.resource_version)))


@check("service-account tokens: TokenRequest, bearer authentication, revocation by deletion")
def tokens(core, apps):
    sa = core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot")))
    tr = core.create_namespaced_service_account_token("robot", NS, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)))
    token = tr.status.token
    assert token.count(".") == 2 and tr.status.expiration_timestamp is not None

    def as_bearer(value):
        base = client.Configuration.get_default_copy()
        cfg = client.Configuration(host=base.host)
        cfg.ssl_ca_cert = base.ssl_ca_cert
        cfg.api_key = {"authorization": value}
        return client.CoreV1Api(client.ApiClient(cfg))

    # Authenticated as the service account, then denied by default (no policy grants it).
    e = expect_status(lambda: as_bearer("Bearer " + token).list_namespaced_config_map(NS), 403, "Forbidden")
    assert f"system:serviceaccount:{NS}:robot" in e.body, e.body
    expect_status(lambda: as_bearer("Bearer " + token[:-4] + "AAAA").list_namespaced_config_map(NS), 401, "Unauthorized")
    expect_status(lambda: as_bearer("Bearer not-a-token").list_namespaced_config_map(NS), 401, "Unauthorized")
    expect_status(lambda: core.create_namespaced_service_account_token("robot", NS, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=60))), 422, "Invalid")
    expect_status(lambda: core.create_namespaced_service_account_token("ghost", NS, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[]))), 404, "NotFound")
    # Deleting the account revokes its tokens, even if one with the same name comes back.
    core.delete_namespaced_service_account("robot", NS)
    core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot")))
    expect_status(lambda: as_bearer("Bearer " + token).list_namespaced_config_map(NS), 401, "Unauthorized")


@check("events: one storage, served as core/v1 and events.k8s.io/v1")
def events(core, apps):
    ev1 = client.EventsV1Api()
    ev1.create_namespaced_event(NS, client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="pulled.1"), event_time=datetime.datetime.now(datetime.timezone.utc),
        reporting_controller="bulwark.dev/test", reporting_instance="test-1", action="Pull",
        reason="Pulled", note="image pulled", type="Normal",
        regarding=client.V1ObjectReference(kind="Pod", name="web-0", namespace=NS)))
    core_view = core.read_namespaced_event("pulled.1", NS)
    assert core_view.message == "image pulled" and core_view.involved_object.name == "web-0", core_view
    assert core_view.reporting_component == "bulwark.dev/test"
    assert [e.metadata.name for e in core.list_namespaced_event(NS, field_selector="involvedObject.name=web-0").items] == ["pulled.1"]
    core.create_namespaced_event(NS, client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="legacy.1"), reason="Started", message="started container",
        event_time=datetime.datetime.now(datetime.timezone.utc), reporting_component="kubelet", reporting_instance="node-a",
        type="Normal", involved_object=client.V1ObjectReference(kind="Pod", name="web-1", namespace=NS)))
    v1_view = ev1.read_namespaced_event("legacy.1", NS)
    assert v1_view.note == "started container" and v1_view.regarding.name == "web-1", v1_view
    names = [e.metadata.name for e in ev1.list_namespaced_event(NS, field_selector="regarding.name=web-1").items]
    assert names == ["legacy.1"], names
    ev1.delete_namespaced_event("pulled.1", NS)
    expect_status(lambda: core.read_namespaced_event("pulled.1", NS), 404, "NotFound")


@check("typed models: new workloads carry their required status fields")
def workload_status(core, apps):
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": "w"}),
        spec=restricted_pod_spec("app", "registry.local/w:1"))
    selector = client.V1LabelSelector(match_labels={"app": "w"})
    # The client's models reject a status without its required fields on create.
    ds = apps.create_namespaced_daemon_set(NS, client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="ds"),
        spec=client.V1DaemonSetSpec(selector=selector, template=template)))
    assert ds.status.number_ready == 0 and ds.status.desired_number_scheduled == 0
    rs = apps.create_namespaced_replica_set(NS, client.V1ReplicaSet(
        metadata=client.V1ObjectMeta(name="rs"),
        spec=client.V1ReplicaSetSpec(selector=selector, template=template)))
    assert rs.status.replicas == 0
    sts = apps.create_namespaced_stateful_set(NS, client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="sts"),
        spec=client.V1StatefulSetSpec(selector=selector, template=template, service_name="sts")))
    assert sts.status.replicas == 0 and sts.status.available_replicas == 0


@check("secrets: stringData is merged into data and never returned")
def secret_string_data(core, apps):
    created = core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="sd"), data={"a": "b2xk"},
        string_data={"a": "new", "b": "hunter2"}))
    assert created.string_data is None
    assert created.data == {"a": "bmV3", "b": "aHVudGVyMg=="}, created.data
    patched = core.patch_namespaced_secret("sd", NS, {"stringData": {"c": "x"}})
    assert patched.string_data is None and patched.data["c"] == "eA=="


@check("deleting a service or service account answers with the deleted object")
def delete_returns_object(core, apps):
    core.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name="svc"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
    deleted = core.delete_namespaced_service("svc", NS)
    assert deleted.kind == "Service" and deleted.metadata.name == "svc", deleted
    core.create_namespaced_service_account(NS, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="sa-gone")))
    deleted = core.delete_namespaced_service_account("sa-gone", NS)
    assert deleted.kind == "ServiceAccount", deleted
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="gone")))
    status = core.delete_namespaced_config_map("gone", NS)
    if not isinstance(status, dict):
        status = status.to_dict()
    assert status["kind"] == "Status" and status["status"] == "Success", status
    assert status.get("code") is None, status


@check("server-side apply through the dynamic client: create, co-own, conflict, force")
def server_side_apply(core, apps):
    from kubernetes import dynamic
    dyn = dynamic.DynamicClient(client.ApiClient())
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa", "namespace": NS}, "data": {"a": "1"}}
    created = cms.server_side_apply(body=body, name="ssa", namespace=NS, field_manager="py-a")
    assert created.data.a == "1"
    managers = [(m.manager, m.operation) for m in created.metadata.managedFields]
    assert managers == [("py-a", "Apply")], managers
    # A second manager applying another value conflicts, then forces.
    other = dict(body, data={"a": "2"})
    try:
        cms.server_side_apply(body=other, name="ssa", namespace=NS, field_manager="py-b")
        raise AssertionError("expected a conflict")
    except ApiException as e:
        assert e.status == 409, e.body
        assert 'conflict with \\"py-a\\"' in e.body or 'conflict with "py-a"' in e.body, e.body
    forced = cms.server_side_apply(body=other, name="ssa", namespace=NS,
                                   field_manager="py-b", force_conflicts=True)
    assert forced.data.a == "2"
    # py-a no longer owns anything and is gone from managedFields.
    assert [m.manager for m in forced.metadata.managedFields] == ["py-b"], forced.metadata.managedFields


@check("error codes for invalid objects and unknown resources")
def errors(core, apps):
    e = expect_status(lambda: core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="UPPER"))), 422, "Invalid")
    assert "metadata.name" in e.body
    expect_status(lambda: core.read_namespaced_secret("absent", NS), 404, "NotFound")
    expect_status(lambda: core.create_namespaced_config_map("no-such-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))), 404, "NotFound")
    expect_status(lambda: core.delete_namespace("default"), 403, "Forbidden")
    # Upstream's JSON bodies end with a newline; clients compare them byte for byte.
    assert e.body.endswith("\n"), repr(e.body)


@check("policy reports: listed and watched as Policy Reporter does (wgpolicyk8s.io/v1alpha2)")
def policy_reports(core, apps):
    custom = client.CustomObjectsApi()
    group, version = "wgpolicyk8s.io", "v1alpha2"
    deadline = time.time() + 10
    while True:
        reports = custom.list_cluster_custom_object(group, version, "clusterpolicyreports")
        names = [r["metadata"]["name"] for r in reports["items"]]
        if "bulwark-posture" in names or time.time() > deadline:
            break
        time.sleep(0.2)
    assert "bulwark-posture" in names, names
    cluster = next(r for r in reports["items"] if r["metadata"]["name"] == "bulwark-posture")
    assert cluster["summary"]["pass"] > 0 and cluster["results"], cluster["summary"]
    start = custom.list_cluster_custom_object(group, version, "policyreports")["metadata"]["resourceVersion"]
    seen, found = [], []

    def consume():
        w = watch.Watch()
        for ev in w.stream(custom.list_cluster_custom_object, group, version, "policyreports",
                           resource_version=start, timeout_seconds=20):
            obj = ev["object"]
            meta = obj["metadata"]
            subjects = {o["name"] for r in obj.get("results", []) for o in r.get("resources", [])}
            seen.append((ev["type"], meta["namespace"], meta["name"]))
            if meta["namespace"] == NS and "reported" in subjects:
                found.append(ev["type"])
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    core.create_namespaced_pod(NS, client.V1Pod(metadata=client.V1ObjectMeta(name="reported"),
                                                spec=restricted_pod_spec("reported", "busybox")))
    t.join(25)
    assert found and seen[-1][1:] == (NS, "bulwark-posture"), seen
    report = custom.get_namespaced_custom_object(group, version, NS, "policyreports", "bulwark-posture")
    mine = [r for r in report["results"] if any(o["name"] == "reported" for o in r.get("resources", []))]
    assert mine and all(r["source"] == "bulwark-posture" for r in mine), report["results"][:3]
    core.delete_namespaced_pod("reported", NS)


def main():
    config.load_kube_config()
    core, apps = client.CoreV1Api(), client.AppsV1Api()
    for name, fn in CHECKS:
        fn(core, apps)
        print(f"ok - {name}", flush=True)
    print(f"{len(CHECKS)} checks passed")


if __name__ == "__main__":
    sys.exit(main())
