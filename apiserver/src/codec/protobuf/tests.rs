use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

/// Upstream's round-trip fixtures: `$BULWARK_K8S_TESTDATA`, else `../shared/k8s-api-testdata`
/// beside the project.
fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("BULWARK_K8S_TESTDATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/k8s-api-testdata"),
        PathBuf::from,
    );
    dir.is_dir().then_some(dir)
}

/// Every `.pb` fixture decodes to its `.json` object, and that object encodes back to the
/// same bytes (or, where JSON cannot say which bytes, to a body that decodes the same).
#[test]
fn upstream_fixtures_round_trip() {
    let Some(dir) = fixtures() else {
        eprintln!("SKIPPED: ../shared/k8s-api-testdata is absent; set BULWARK_K8S_TESTDATA");
        return;
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".pb").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() > 150, "only {} fixtures", names.len());
    let (mut identical, mut equivalent, mut failures) = (0, 0, Vec::new());
    for name in &names {
        let pb = std::fs::read(dir.join(format!("{name}.pb"))).unwrap();
        let expected: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap())
                .unwrap();
        // Upstream writes WatchEvent without a type in its envelope (it is never sent on
        // its own): decode and encode it as what it is.
        let watch_event = name.ends_with(".WatchEvent");
        let decode = |bytes: &[u8]| {
            if watch_event {
                decode_watch_event_envelope(bytes)
            } else {
                decode(bytes)
            }
        };
        let encode = |value: &Value| {
            if watch_event {
                encode_watch_event_envelope(value)
            } else {
                encode(value)
            }
        };
        let decoded = match decode(&pb) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: decode: {e}"));
                continue;
            }
        };
        if decoded != expected {
            failures.push(format!(
                "{name}: decoded differs:\n{}",
                diff(&decoded, &expected)
            ));
            continue;
        }
        match encode(&expected) {
            Ok(bytes) if bytes == pb => identical += 1,
            Ok(bytes) => match decode(&bytes) {
                Ok(again) if again == expected => equivalent += 1,
                Ok(again) => failures.push(format!(
                    "{name}: re-encoded differs:\n{}",
                    diff(&again, &expected)
                )),
                Err(e) => failures.push(format!("{name}: re-decode: {e}")),
            },
            Err(e) => failures.push(format!("{name}: encode: {e}")),
        }
    }
    eprintln!(
        "{} fixtures: {identical} byte-identical, {equivalent} equivalent, {} failed",
        names.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn watch_event_index() -> usize {
    schema()
        .unwrap()
        .by_name("k8s.io.apimachinery.pkg.apis.meta.v1.WatchEvent")
        .unwrap()
}

fn decode_watch_event_envelope(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut reader = Reader::new(bytes.strip_prefix(MAGIC).ok_or(CodecError::NoMagic)?);
    while let Some((number, value)) = reader.next_field()? {
        if let (2, wire::Value::Bytes(raw)) = (number, value) {
            return decode::message(schema()?, watch_event_index(), raw, 0);
        }
    }
    Err(CodecError::Truncated)
}

fn encode_watch_event_envelope(value: &Value) -> Result<Vec<u8>, CodecError> {
    let mut raw = Vec::new();
    encode::message(schema()?, watch_event_index(), value, &mut raw, 0)?;
    let mut type_meta = Vec::new();
    wire::put_bytes(&mut type_meta, 1, b"");
    wire::put_bytes(&mut type_meta, 2, b"");
    let mut out = MAGIC.to_vec();
    wire::put_bytes(&mut out, 1, &type_meta);
    wire::put_bytes(&mut out, 2, &raw);
    wire::put_bytes(&mut out, 3, b"");
    wire::put_bytes(&mut out, 4, b"");
    Ok(out)
}

/// The paths where two JSON values differ.
fn diff(got: &Value, want: &Value) -> String {
    let mut out = Vec::new();
    walk("", got, want, &mut out);
    out.truncate(10);
    out.join("\n")
}

fn walk(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let p = format!("{path}/{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    (x, y) => out.push(format!("  {p}: got {x:?}, want {y:?}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}/{i}"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("  {path}: got {a}, want {b}")),
        _ => {}
    }
}

#[test]
fn kinds_without_protobuf_are_named() {
    let own = json!({"apiVersion": "policy.bulwark.dev/v1", "kind": "CedarPolicy"});
    assert!(matches!(encode(&own), Err(CodecError::UnknownKind { .. })));
    assert!(!supports("policy.bulwark.dev/v1", "CedarPolicy"));
    assert!(supports("v1", "ConfigMap"));
    assert!(supports("v1", "Status"));
}

#[test]
fn objects_round_trip_with_zeros_kept_where_go_keeps_them() {
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "c", "image": "busybox",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true},
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                    "livenessProbe": {"httpGet": {"port": "http", "path": "/"}}
                }],
                "volumes": [{"name": "scratch", "emptyDir": {}}]}
            },
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}
        }
    });
    let bytes = encode(&deploy).unwrap();
    assert!(bytes.starts_with(MAGIC));
    assert_eq!(decode(&bytes).unwrap(), deploy);
}

#[test]
fn omitempty_zero_values_from_a_go_client_are_left_out() {
    // A Go client writes every non-pointer field, zero or not: metadata.namespace "" and
    // generation 0 here must not reach the object.
    let mut meta = Vec::new();
    wire::put_bytes(&mut meta, 1, b"demo");
    wire::put_bytes(&mut meta, 3, b"");
    wire::put_varint_field(&mut meta, 7, 0);
    let mut ns = Vec::new();
    wire::put_bytes(&mut ns, 1, &meta);
    let mut type_meta = Vec::new();
    wire::put_bytes(&mut type_meta, 1, b"v1");
    wire::put_bytes(&mut type_meta, 2, b"Namespace");
    let mut body = MAGIC.to_vec();
    wire::put_bytes(&mut body, 1, &type_meta);
    wire::put_bytes(&mut body, 2, &ns);
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    );
}

#[test]
fn garbage_gets_an_error_never_a_panic() {
    let valid = encode(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a"}, "data": {"k": "v"}}))
    .unwrap();
    for cut in 0..valid.len() {
        let _ = decode(&valid[..cut]);
    }
    assert!(matches!(decode(b"{}"), Err(CodecError::NoMagic)));
    let mut unknown = MAGIC.to_vec();
    let mut type_meta = Vec::new();
    wire::put_bytes(&mut type_meta, 1, b"v1");
    wire::put_bytes(&mut type_meta, 2, b"Nope");
    wire::put_bytes(&mut unknown, 1, &type_meta);
    assert!(matches!(
        decode(&unknown),
        Err(CodecError::UnknownKind { .. })
    ));
    // A string field that is not UTF-8, named by its path but not echoed.
    let mut meta = Vec::new();
    wire::put_bytes(&mut meta, 1, &[0xff, 0xfe]);
    let mut cm = Vec::new();
    wire::put_bytes(&mut cm, 1, &meta);
    let mut body = MAGIC.to_vec();
    let mut type_meta = Vec::new();
    wire::put_bytes(&mut type_meta, 1, b"v1");
    wire::put_bytes(&mut type_meta, 2, b"ConfigMap");
    wire::put_bytes(&mut body, 1, &type_meta);
    wire::put_bytes(&mut body, 2, &cm);
    let err = decode(&body).unwrap_err().to_string();
    assert_eq!(err, "field metadata.name: a string is not valid UTF-8");
    // Nesting past the cap: RawExtension inside RawExtension … (an AdmissionReview's object).
    let mut nested = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    for _ in 0..70 {
        nested = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "x"},
                "resource": {"group": "", "version": "v1", "resource": "x"},
                "operation": "CREATE", "userInfo": {}, "object": nested}});
    }
    assert!(
        encode(&nested).is_ok(),
        "JSON inside RawExtension is opaque to the encoder"
    );
    // Wrong JSON shapes are errors naming the field.
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}});
    assert_eq!(
        encode(&bad).unwrap_err().to_string(),
        "field metadata.name: expected a string"
    );
}

#[test]
fn watch_frames_round_trip() {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
    let frame = encode_watch_event("ADDED", &obj).unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    assert_eq!(
        decode_watch_event(&frame[4..]).unwrap(),
        ("ADDED".to_owned(), obj)
    );
}
