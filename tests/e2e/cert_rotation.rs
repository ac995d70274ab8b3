//! The serving certificate is swapped in a running server: after new files and a SIGHUP, new
//! connections get the new certificate while an open connection keeps working.

use std::time::{Duration, Instant};

use bulwark_client::ApiClient;

#[tokio::test]
async fn serving_certificate_rotates_without_restart() {
    let s = crate::server::TestServer::start();
    let creds = s.credentials();
    let before = ApiClient::builder(&creds).connect().await.unwrap();
    let old_leaf = before.server_certificate().unwrap().to_vec();

    // An operator replaces the serving pair (issued by the same cluster CA) and sends SIGHUP.
    let pki = s.data_dir().join("pki");
    let ca = bulwark_pki::bootstrap::load_ca(&s.data_dir()).unwrap();
    let issued = ca
        .issue(&bulwark_pki::LeafSpec {
            common_name: "bulwark-apiserver".into(),
            organizations: vec![],
            sans: vec!["127.0.0.1".into(), "localhost".into()],
            usage: bulwark_pki::Usage::Server,
            validity: Duration::from_secs(3600),
        })
        .unwrap();
    bulwark_pki::files::write_private(
        &pki.join("apiserver.key"),
        issued.key_pem.expose().as_bytes(),
    )
    .unwrap();
    bulwark_pki::files::write_public(&pki.join("apiserver.crt"), issued.cert_pem.as_bytes())
        .unwrap();
    let new_leaf = bulwark_pki::identity::first_cert_der(&issued.cert_pem).unwrap();
    assert_ne!(old_leaf, new_leaf);
    s.signal("HUP");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = ApiClient::builder(&creds).connect().await.unwrap();
        if after.server_certificate() == Some(new_leaf.as_slice()) {
            assert_eq!(
                after
                    .get("/api/v1/namespaces")
                    .await
                    .unwrap()
                    .status
                    .as_u16(),
                200
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the swap still works.
    assert_eq!(
        before
            .get("/api/v1/namespaces")
            .await
            .unwrap()
            .status
            .as_u16(),
        200
    );

    // A broken pair on disk is refused; the server keeps serving the last good one.
    std::fs::write(pki.join("apiserver.crt"), "not a certificate").unwrap();
    s.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = ApiClient::builder(&creds).connect().await.unwrap();
    assert_eq!(still.server_certificate(), Some(new_leaf.as_slice()));

    // Both reloads are on the audit record, the refused one with why; and so is the start,
    // with the audit policy in force.
    let dir = s.data_dir().join("audit");
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "audit",
                "query",
                "-o",
                "json",
                "--user",
                "system:bulwark:pki",
                "--dir",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let events = list["items"].as_array().unwrap().clone();
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let outcomes: Vec<(&str, i64)> = events
        .iter()
        .map(|e| {
            (
                e["verb"].as_str().unwrap(),
                e["responseStatus"]["code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, [("reload", 200), ("reload", 500)], "{events:?}");
    assert_eq!(events[0]["objectRef"]["name"], "apiserver-serving");
    assert!(
        events[1]["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .len()
            > 5
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["audit", "query", "-o", "json", "--verb", "start", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let start = &list["items"][0];
    assert_eq!(start["user"]["username"], "system:bulwark:apiserver");
    assert_eq!(
        start["annotations"]["audit.bulwark.dev/policy"],
        "built-in default"
    );
    assert_eq!(
        start["annotations"]["audit.bulwark.dev/policy-sha256"],
        bulwark_audit::chain::line_hash(bulwark_audit::policy::DEFAULT_POLICY.as_bytes())
    );
}
