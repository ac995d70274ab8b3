//! The official Kubernetes Python client (PyPI `kubernetes`) against the real server: CRUD,
//! watch, pagination, selectors, conflicts, subresources and error codes
//! (`tests/python/client_checks.py`).

use std::process::Command;

#[test]
fn official_python_client_checks() {
    let s = crate::server::TestServer::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_checks.py");
    let out = Command::new("python3")
        .arg(script)
        .env("KUBECONFIG", &s.kubeconfig)
        .env("HOME", s.dir.path())
        .output()
        .expect("python3 (scripts/deps installs the kubernetes package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client checks failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
}
