//! Bad input against the real server: every case gets a clear `metav1.Status` with the
//! upstream code and reason, and the server keeps serving.

use crate::server::TestServer;
use bulwark_apiserver::codec::protobuf;
use bulwark_client::{ApiClient, ClientResponse, Credentials};
use http::Method;
use serde_json::json;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn admin(s: &TestServer) -> ApiClient {
    match ApiClient::builder(&s.credentials()).connect().await {
        Ok(c) => c,
        Err(e) => {
            std::thread::sleep(std::time::Duration::from_millis(300));
            panic!("{e}: {}", s.log())
        }
    }
}

fn assert_status(r: &ClientResponse, code: u16, reason: &str) {
    let body = r.json();
    assert_eq!(r.status.as_u16(), code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

async fn post_raw(c: &ApiClient, path: &str, content_type: &str, body: Vec<u8>) -> ClientResponse {
    c.send(Method::POST, path, &[("content-type", content_type)], body)
        .await
        .unwrap()
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The `Status` of a protobuf error response.
fn protobuf_status(r: &ClientResponse) -> serde_json::Value {
    assert_eq!(r.headers["content-type"], PROTOBUF, "{:?}", r.body);
    protobuf::decode(&r.body).unwrap()
}

/// Truncated, garbage and mismatched protobuf bodies get a 400 `Status`; errors to a client
/// that asked for protobuf come as protobuf.
async fn protobuf_bodies(c: &ApiClient) {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb"},
        "data": {"k": "v"}});
    let valid = protobuf::encode(&cm).unwrap();
    let post = |body: Vec<u8>| async move {
        c.send(
            Method::POST,
            CMS,
            &[("content-type", PROTOBUF), ("accept", PROTOBUF)],
            body,
        )
        .await
        .unwrap()
    };
    for (body, says) in [
        (valid[..valid.len() - 3].to_vec(), "truncated"),
        (b"k8s\0\xff\xff\xff".to_vec(), "not valid protobuf"),
        (b"{\"kind\": \"ConfigMap\"}".to_vec(), "magic"),
        (Vec::new(), "empty"),
    ] {
        let r = post(body).await;
        assert_eq!(r.status.as_u16(), 400);
        let status = protobuf_status(&r);
        assert_eq!(status["reason"], "BadRequest");
        assert!(
            status["message"].as_str().unwrap().contains(says),
            "{status}"
        );
    }
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pb"}});
    let r = post(protobuf::encode(&secret).unwrap()).await;
    assert_eq!(r.status.as_u16(), 400, "{:?}", r.body);
    assert!(
        protobuf_status(&r)["message"]
            .as_str()
            .unwrap()
            .contains("Secret"),
    );
    let r = post(valid).await;
    assert_eq!(r.status.as_u16(), 201);
    assert_eq!(protobuf::decode(&r.body).unwrap()["data"]["k"], "v");
    let r = c
        .send(
            Method::DELETE,
            &format!("{CMS}/pb"),
            &[("accept", PROTOBUF)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(protobuf_status(&r)["status"], "Success");
    let r = c
        .send(
            Method::GET,
            &format!("{CMS}/nope"),
            &[("accept", PROTOBUF)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 404);
    assert_eq!(protobuf_status(&r)["reason"], "NotFound");
}

/// Server-side apply and managedFields that are wrong get a 4xx `Status`.
async fn apply_bodies(c: &ApiClient) {
    let path = format!("{CMS}/applied");
    let apply = |query: &'static str, body: &'static [u8]| {
        let path = format!("{path}{query}");
        async move {
            c.send(
                Method::PATCH,
                &path,
                &[("content-type", "application/apply-patch+yaml")],
                body.to_vec(),
            )
            .await
            .unwrap()
        }
    };
    let good: &[u8] = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied}\ndata: {k: v}\n";
    let r = apply("", good).await;
    assert_status(&r, 422, "Invalid");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager"),
        "{}",
        r.json()
    );
    assert_status(
        &apply("?fieldManager=t", b"{not: [yaml").await,
        400,
        "BadRequest",
    );
    assert_status(
        &apply("?fieldManager=t", b"- a\n- list\n").await,
        400,
        "BadRequest",
    );
    assert_status(
        &apply(
            "?fieldManager=t",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
        )
        .await,
        400,
        "BadRequest",
    );
    assert_status(
        &apply(
            "?fieldManager=t",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: applied}\n",
        )
        .await,
        400,
        "BadRequest",
    );
    assert_status(
        &apply("?fieldManager=t&force=maybe", good).await,
        400,
        "BadRequest",
    );
    let created = apply("?fieldManager=t", good).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.json());
    assert_eq!(
        created.json()["metadata"]["managedFields"][0]["manager"],
        "t"
    );
    // force is for apply only.
    let r = c
        .send(
            Method::PATCH,
            &format!("{path}?force=true"),
            &[("content-type", "application/merge-patch+json")],
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    assert_status(&r, 400, "BadRequest");
    // managedFields a client writes are checked: a malformed entry is a 400 naming it.
    for bad in [
        json!([{"manager": "x", "operation": "Take", "fieldsType": "FieldsV1", "fieldsV1": {}}]),
        json!([{"manager": "x", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"nope": {}}}]),
    ] {
        let patch = json!({"metadata": {"managedFields": bad}});
        let r = c
            .send(
                Method::PATCH,
                &path,
                &[("content-type", "application/merge-patch+json")],
                patch.to_string().into_bytes(),
            )
            .await
            .unwrap();
        assert_status(&r, 400, "BadRequest");
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("managedFields"),
            "{}",
            r.json()
        );
    }
    let r = c
        .send(Method::DELETE, &path, &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 200);
}

#[tokio::test]
async fn bad_requests_get_status_errors() {
    let s = TestServer::start();
    let c = admin(&s).await;

    assert_status(
        &post_raw(&c, CMS, "application/json", b"{\"metadata\": ".to_vec()).await,
        400,
        "BadRequest",
    );
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert_status(
        &post_raw(&c, CMS, "application/json", deep.into_bytes()).await,
        400,
        "BadRequest",
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    assert_status(&c.post_json(CMS, &pod).await.unwrap(), 400, "BadRequest");
    let wrong_type = json!({"metadata": {"name": "x"}, "data": {"a": 5}});
    assert_status(
        &c.post_json(CMS, &wrong_type).await.unwrap(),
        400,
        "BadRequest",
    );

    let huge = json!({"metadata": {"name": "big"}, "data": {"a": "x".repeat(4 * 1024 * 1024)}});
    assert_status(
        &c.post_json(CMS, &huge).await.unwrap(),
        413,
        "RequestEntityTooLarge",
    );

    let invalid = c
        .post_json(
            CMS,
            &json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "-bad-"}}}),
        )
        .await
        .unwrap();
    assert_status(&invalid, 422, "Invalid");
    let causes = invalid.json()["details"]["causes"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        causes.iter().any(|c| c["field"] == "metadata.name"),
        "{causes:?}"
    );
    assert!(
        causes.iter().any(|c| c["field"] == "metadata.labels.ok"),
        "{causes:?}"
    );
    let mismatched = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "api"}},
        "spec": {"containers": [{"name": "app", "image": ""}]}}}});
    let spec_invalid = c
        .post_json("/apis/apps/v1/namespaces/default/deployments", &mismatched)
        .await
        .unwrap();
    assert_status(&spec_invalid, 422, "Invalid");
    let fields: Vec<String> = spec_invalid.json()["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.template.metadata.labels",
            "spec.template.spec.containers[0].image"
        ]
    );
    assert_status(
        &c.post_json(CMS, &json!({"metadata": {}})).await.unwrap(),
        422,
        "Invalid",
    );

    let unknown = json!({"metadata": {"name": "strict"}, "data": {}, "dta": {"a": "b"}});
    let strict = c
        .post_json(&format!("{CMS}?fieldValidation=Strict"), &unknown)
        .await
        .unwrap();
    assert_status(&strict, 400, "BadRequest");
    assert!(
        strict.json()["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"dta\"")
    );
    let warn = c
        .post_json(&format!("{CMS}?fieldValidation=Warn"), &unknown)
        .await
        .unwrap();
    assert_eq!(warn.status.as_u16(), 201);
    let warning = warn.headers.get("warning").unwrap().to_str().unwrap();
    assert!(
        warning.starts_with("299 - ") && warning.contains("unknown field"),
        "{warning}"
    );
    assert!(
        warn.json().get("dta").is_none(),
        "unknown fields are pruned"
    );
    assert_status(
        &c.post_json(&format!("{CMS}?fieldValidation=Loose"), &unknown)
            .await
            .unwrap(),
        400,
        "BadRequest",
    );

    for selector in [
        "labelSelector=a%20in%20b",
        "labelSelector=%3D%3D",
        "fieldSelector=spec.nodeName%3Dx",
        "fieldSelector=nonsense",
    ] {
        assert_status(
            &c.get(&format!("{CMS}?{selector}")).await.unwrap(),
            400,
            "BadRequest",
        );
    }
    assert_status(
        &c.get(&format!("{CMS}?limit=1&continue=garbage"))
            .await
            .unwrap(),
        400,
        "BadRequest",
    );
    assert_status(
        &c.get(&format!("{CMS}?limit=-3")).await.unwrap(),
        400,
        "BadRequest",
    );

    assert_status(
        &post_raw(&c, CMS, "application/xml", b"<x/>".to_vec()).await,
        415,
        "UnsupportedMediaType",
    );
    let patch = c
        .send(
            Method::PATCH,
            &format!("{CMS}/strict"),
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    assert_status(&patch, 415, "UnsupportedMediaType");
    // Bulwark's own kinds have no protobuf form (as custom resources upstream).
    let proto_only = c
        .send(
            Method::GET,
            "/apis/policy.bulwark.dev/v1/cedarpolicies",
            &[("accept", PROTOBUF)],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_status(&proto_only, 406, "NotAcceptable");
    protobuf_bodies(&c).await;
    apply_bodies(&c).await;

    assert_status(
        &c.get("/api/v1/namespaces/default/widgets").await.unwrap(),
        404,
        "NotFound",
    );
    assert_status(
        &c.get(&format!("{CMS}/nope")).await.unwrap(),
        404,
        "NotFound",
    );
    assert_status(
        &c.send(Method::POST, &format!("{CMS}/x"), &[], Vec::new())
            .await
            .unwrap(),
        405,
        "MethodNotAllowed",
    );
    let nowhere = c
        .post_json(
            "/api/v1/namespaces/missing/configmaps",
            &json!({"metadata": {"name": "x"}}),
        )
        .await
        .unwrap();
    assert_status(&nowhere, 404, "NotFound");

    // Still serving, and the rejected objects left nothing behind.
    let list = c.get(CMS).await.unwrap().json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["strict"]);
}

#[tokio::test]
async fn unauthenticated_and_foreign_certificates_are_rejected() {
    let s = TestServer::start();
    let creds = s.credentials();
    let anonymous = ApiClient::builder(&creds)
        .dangerous()
        .without_client_cert()
        .connect()
        .await
        .unwrap();
    assert_status(
        &anonymous.get("/api/v1/namespaces").await.unwrap(),
        401,
        "Unauthorized",
    );
    assert_status(
        &anonymous.get("/version").await.unwrap(),
        401,
        "Unauthorized",
    );

    // A certificate from another CA with the admin's name and group: the TLS layer refuses it.
    let other = tempfile::tempdir().unwrap();
    let options = bulwark_pki::BootstrapOptions {
        extra_sans: vec![],
        server_url: s.url.clone(),
    };
    bulwark_pki::ClusterPki::load_or_bootstrap(&other.path().join("data"), &options).unwrap();
    let foreign =
        Credentials::from_kubeconfig(&other.path().join("data/admin.kubeconfig")).unwrap();
    let forged = Credentials {
        server: creds.server.clone(),
        ca_pem: creds.ca_pem.clone(),
        cert_pem: foreign.cert_pem,
        key_pem: foreign.key_pem,
    };
    match ApiClient::builder(&forged).connect().await {
        Err(_) => {}
        Ok(client) => {
            let result = client.get("/api/v1/namespaces").await;
            assert!(
                result.is_err() || result.as_ref().unwrap().status.as_u16() == 401,
                "foreign certificate accepted: {result:?}"
            );
        }
    }
    // The real admin still gets in.
    let admin = ApiClient::builder(&creds).connect().await.unwrap();
    assert_eq!(
        admin
            .get("/api/v1/namespaces")
            .await
            .unwrap()
            .status
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn dry_run_generate_name_and_pagination() {
    let s = TestServer::start();
    let c = admin(&s).await;
    let dry = c
        .post_json(
            &format!("{CMS}?dryRun=All"),
            &json!({"metadata": {"name": "dry"}}),
        )
        .await
        .unwrap();
    assert_eq!(dry.status.as_u16(), 201);
    assert_eq!(
        c.get(&format!("{CMS}/dry")).await.unwrap().status.as_u16(),
        404
    );

    for i in 0..7 {
        let r = c.post_json(CMS, &json!({"metadata": {"generateName": "page-", "labels": {"i": i.to_string(), "even": (i % 2 == 0).to_string()}}})).await.unwrap();
        assert_eq!(r.status.as_u16(), 201, "{}", r.json());
        assert!(
            r.json()["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("page-")
        );
    }
    let mut seen = 0;
    let mut token = String::new();
    let mut revision = None;
    loop {
        let page = c
            .get(&format!(
                "{CMS}?limit=2&labelSelector=even%3Dtrue&continue={token}"
            ))
            .await
            .unwrap()
            .json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen += items.len();
        let rv = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            *revision.get_or_insert(rv.clone()),
            rv,
            "every page is read at one revision"
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
        // Writes between pages do not show up in this list.
        c.post_json(
            CMS,
            &json!({"metadata": {"generateName": "late-", "labels": {"even": "true"}}}),
        )
        .await
        .unwrap();
    }
    assert_eq!(seen, 4);
}

#[tokio::test]
async fn compacted_history_is_410_gone() {
    // Keep only a second of history so compaction happens during the test.
    let s = TestServer::start_with(&["--history", "1s"]);
    let c = admin(&s).await;
    for i in 0..5 {
        c.post_json(CMS, &json!({"metadata": {"name": format!("h{i}")}}))
            .await
            .unwrap();
    }
    let first = c.get(&format!("{CMS}?limit=2")).await.unwrap().json();
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    let old_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    // Keep writing until the compactor has passed the list's revision.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let expired = loop {
        c.post_json(CMS, &json!({"metadata": {"generateName": "tick-"}}))
            .await
            .unwrap();
        let r = c
            .get(&format!("{CMS}?limit=2&continue={token}"))
            .await
            .unwrap();
        if r.status.as_u16() == 410 {
            break r;
        }
        assert_eq!(r.status.as_u16(), 200, "{}", r.json());
        assert!(
            std::time::Instant::now() < deadline,
            "history was never compacted: {}",
            s.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_status(&expired, 410, "Expired");
    // A watch from the compacted revision gets an ERROR event carrying 410 Expired.
    let watch = c
        .get(&format!(
            "{CMS}?watch=1&resourceVersion={old_rv}&timeoutSeconds=5"
        ))
        .await
        .unwrap();
    assert_eq!(watch.status.as_u16(), 200);
    let event: serde_json::Value =
        serde_json::from_slice(watch.body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR", "{event}");
    assert_eq!(event["object"]["code"], 410, "{event}");
    assert_eq!(event["object"]["reason"], "Expired", "{event}");
}
