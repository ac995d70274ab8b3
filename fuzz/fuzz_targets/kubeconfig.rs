//! Kubeconfig files (the audit webhook's endpoint and credentials, upstream's format).
#![no_main]
use bulwark_audit::webhook::WebhookEndpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // File references resolve under a directory that does not exist.
    let _ = WebhookEndpoint::parse_kubeconfig(text, std::path::Path::new("/nonexistent-fuzz-base"));
});
