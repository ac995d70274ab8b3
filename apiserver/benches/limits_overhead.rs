//! What the server's limits cost a normal request, check by check, in process: the request
//! head check, the connection's accounting (admission into the connection table, a request in
//! flight with its body wrapper), a watch slot, the patch budget on a 1 KiB ConfigMap merge
//! patch (against the same patch without a budget), and the container count of a Deployment.
//! Each is timed over many iterations and printed in nanoseconds, next to the server CPU time
//! of a whole request that `cargo bench --bench apiserver_load` measures (~80 µs per get,
//! ~300 µs per create or patch on these machines), so the share is plain. The end-to-end
//! comparison of a server with and without limits is in `apiserver_load`; on a shared 2-core
//! machine its rounds vary by more than these checks cost, which is why they are also timed
//! here.
//!
//! Run: `cargo bench -p bulwark-apiserver --bench limits_overhead`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::time::Instant;

use bulwark_apiserver::http::connections::{
    Activity, ConnectionTable, StreamDeadline, TrackedBody,
};
use bulwark_apiserver::http::limits::{Limits, RequestLimits, check_head};
use bulwark_apiserver::rest::patch::{PatchBudget, PatchType, apply};
use bulwark_apiserver::rest::watch_slots::WatchSlots;
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Median nanoseconds per call of `f` over 7 runs of `n` calls.
fn time(n: u32, mut f: impl FnMut()) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        runs.push(start.elapsed().as_nanos() as f64 / f64::from(n));
    }
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() {
    let limits = Limits::default();
    // The head of a typical kubectl GET.
    let (parts, ()) = http::Request::builder()
        .uri("https://127.0.0.1:6443/api/v1/namespaces/default/configmaps/app-config?timeout=32s")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
        .header("user-agent", "kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd")
        .header("kubectl-command", "kubectl get")
        .header("kubectl-session", "0d6b29b5-4b5b-4d0a-8f0e-2d8c0b3f6a11")
        .header("accept-encoding", "gzip")
        .body(())
        .unwrap()
        .into_parts();
    let head = time(1_000_000, || {
        black_box(check_head(black_box(&limits.request), black_box(&parts))).unwrap();
    });

    let table = ConnectionTable::new(&limits.connections, Default::default());
    let peer: std::net::IpAddr = "10.1.2.3".parse().unwrap();
    let connection = time(1_000_000, || {
        black_box(table.admit(black_box(peer)).unwrap());
    });

    let activity = Activity::new();
    let in_flight = time(1_000_000, || {
        let request = activity.begin();
        let body = TrackedBody::new(axum::body::Body::empty(), request);
        black_box(&body);
        drop(body);
        black_box(activity.expired(
            limits.connections.first_request_timeout,
            limits.connections.idle_timeout,
        ));
    });
    let watch_deadline = time(1_000_000, || {
        let request = activity.begin();
        request.set_deadline(StreamDeadline(Instant::now()));
        drop(request);
    });

    let slots = WatchSlots::new(&limits.watches, Default::default());
    let watch = time(1_000_000, || {
        black_box(slots.acquire(black_box("system:admin")).unwrap());
    });

    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "uid": "7f4d6a2e-1c1b-4e63-9a0f-7d0c3c1f2b9e",
                     "resourceVersion": "1234", "creationTimestamp": "2026-12-01T00:00:00Z", "labels": {"app": "web"}},
        "data": {"k": "v".repeat(1024)}});
    let patch = br#"{"metadata":{"annotations":{"bench/n":"42"}}}"#;
    let unlimited = PatchBudget::from_limits(&Limits::dangerous_unlimited().request);
    let budgeted = PatchBudget::from_limits(&limits.request);
    let patch_free = time(200_000, || {
        black_box(apply(PatchType::Merge, black_box(&object), patch, &unlimited).unwrap());
    });
    let patch_checked = time(200_000, || {
        black_box(apply(PatchType::Merge, black_box(&object), patch, &budgeted).unwrap());
    });
    // The size check alone: what the budget adds to every patch.
    let size_check = time(200_000, || {
        black_box(bulwark_apiserver::http::limits::json_size_within(
            black_box(&object),
            limits.request.max_object_bytes,
        ));
    });

    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "i"}, {"name": "side", "image": "s"}],
                                       "initContainers": [{"name": "init", "image": "i"}]}}}});
    let containers = time(1_000_000, || {
        let view = bulwark_admission::workload::pod_view("/spec/template", black_box(&deployment))
            .unwrap();
        black_box(bulwark_admission::workload::container_count(view.spec));
    });
    let _ = RequestLimits::default();

    println!("limits overhead per request, in process (median of 7 runs)");
    println!("  request head check (kubectl GET, 6 headers)   {head:>8.0} ns");
    println!(
        "  connection table admit + release              {connection:>8.0} ns (once per connection)"
    );
    println!("  request in flight + tracked body + expiry     {in_flight:>8.0} ns");
    println!("  watch stream deadline recorded + cleared      {watch_deadline:>8.0} ns (watches)");
    println!("  watch slot acquire + release                  {watch:>8.0} ns (watches)");
    println!(
        "  container count of a Deployment               {containers:>8.0} ns (workload writes)"
    );
    println!(
        "  merge patch of a 1 KiB ConfigMap              {patch_checked:>8.0} ns with the budget, {patch_free:.0} ns without ({:+.0} ns; the result size check alone {size_check:.0} ns)",
        patch_checked - patch_free
    );
    let per_get = head + in_flight;
    let per_patch = head + in_flight + (patch_checked - patch_free).max(size_check);
    println!(
        "  total on a get: {per_get:.0} ns = {:.2}% of ~80 µs; on a patch: {per_patch:.0} ns = {:.2}% of ~300 µs",
        per_get / 80_000.0 * 100.0,
        per_patch / 300_000.0 * 100.0
    );
}
