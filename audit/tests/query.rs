//! Auditors' queries: every filter, pages that together return each match exactly once, the
//! live reader seeing records as soon as they are fsynced, across rotation and retention, and
//! an offline copy without index files answering the same.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;
use std::time::Duration;

use bulwark_audit::chain::SigningKey;
use bulwark_audit::event::{Event, Level, ObjectRef, ResponseStatus, Stage, UserInfo};
use bulwark_audit::index::{Decision, SegmentIndex, index_path, parse_time};
use bulwark_audit::query::{AuditReader, Page, Query};
use bulwark_audit::writer::segments;
use bulwark_audit::{AuditLog, AuditOptions, AuditSink};

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const VERBS: [&str; 4] = ["get", "list", "create", "delete"];

/// Event `i`: user, verb, namespace and decision cycle with different periods; every 7th
/// is impersonating `dave`; every 5th addresses `pods/exec`; times are one second apart.
fn event(i: usize) -> Event {
    let mut e = Event::new(
        format!("id-{i}"),
        Stage::ResponseComplete,
        Level::Metadata,
        VERBS[i % 4],
        "/api/v1/…",
        UserInfo {
            username: USERS[i % 3].into(),
            groups: vec![],
        },
    );
    if i.is_multiple_of(7) {
        e.impersonated_user = Some(UserInfo {
            username: "dave".into(),
            groups: vec![],
        });
    }
    e.object_ref = Some(ObjectRef {
        resource: "pods".into(),
        namespace: Some(format!("ns{}", i % 2)),
        subresource: i.is_multiple_of(5).then(|| "exec".into()),
        ..ObjectRef::default()
    });
    let allowed = !i.is_multiple_of(6);
    e.response_status = Some(ResponseStatus {
        code: if allowed { 200 } else { 403 },
        ..ResponseStatus::default()
    });
    e.annotations.insert(
        "authorization.k8s.io/decision".into(),
        if allowed { "allow" } else { "forbid" }.into(),
    );
    e.stage_timestamp = time_of(i);
    e
}

fn time_of(i: usize) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + i as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn options(dir: &Path) -> AuditOptions {
    let mut o = AuditOptions::new(dir.to_owned());
    o.checkpoint_every = 50;
    o.checkpoint_interval = Duration::from_secs(3600);
    o.max_segment_bytes = 64 * 1024; // a few hundred events per segment
    o
}

fn query() -> Query {
    Query {
        limit: 10_000,
        ..Query::default()
    }
}

fn ids(page: &Page) -> Vec<usize> {
    page.events
        .iter()
        .map(|raw| {
            let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            v["auditID"].as_str().unwrap()[3..].parse().unwrap()
        })
        .collect()
}

/// What a query must return, computed from the events themselves.
fn expected(n: usize, keep: impl Fn(usize, &Event) -> bool) -> Vec<usize> {
    (0..n).filter(|i| keep(*i, &event(*i))).collect()
}

fn check_filters(reader: &AuditReader, n: usize) {
    let all = reader.query(&query()).unwrap();
    assert_eq!(ids(&all), (0..n).collect::<Vec<_>>());
    assert_eq!((all.remaining, all.next.is_none()), (0, true));

    let by_user = reader
        .query(&Query {
            user: Some("dave".into()),
            ..query()
        })
        .unwrap();
    assert_eq!(ids(&by_user), expected(n, |i, _| i % 7 == 0));

    let q = Query {
        user: Some("alice".into()),
        verb: Some("delete".into()),
        namespace: Some("ns1".into()),
        ..query()
    };
    assert_eq!(
        ids(&reader.query(&q).unwrap()),
        expected(n, |i, _| i % 3 == 0 && i % 4 == 3 && i % 2 == 1)
    );

    let exec = Query {
        resource: Some("pods/exec".into()),
        ..query()
    };
    assert_eq!(
        ids(&reader.query(&exec).unwrap()),
        expected(n, |i, _| i % 5 == 0)
    );
    let pods = Query {
        resource: Some("pods".into()),
        ..query()
    };
    assert_eq!(reader.query(&pods).unwrap().events.len(), n);
    let nothing = Query {
        resource: Some("secrets".into()),
        ..query()
    };
    assert!(reader.query(&nothing).unwrap().events.is_empty());

    let denied = Query {
        decision: Some(Decision::Deny),
        ..query()
    };
    assert_eq!(
        ids(&reader.query(&denied).unwrap()),
        expected(n, |i, _| i % 6 == 0)
    );

    let window = Query {
        since: parse_time(&time_of(100)),
        until: parse_time(&time_of(250)),
        ..query()
    };
    assert_eq!(
        ids(&reader.query(&window).unwrap()),
        (100..250).collect::<Vec<_>>()
    );
}

fn check_pages(reader: &AuditReader, n: usize) {
    let filter = Query {
        verb: Some("get".into()),
        limit: 37,
        ..Query::default()
    };
    let want = expected(n, |i, _| i % 4 == 0);
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = reader
            .query(&Query {
                after: after.clone(),
                ..filter.clone()
            })
            .unwrap();
        got.extend(ids(&page));
        assert_eq!(page.remaining as usize, want.len() - got.len());
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(got, want);
}

#[tokio::test]
async fn queries_find_exactly_the_matching_events_live_and_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = SigningKey::load_or_create(&tmp.path().join("audit.key")).unwrap();
    let log = AuditLog::open(options(&dir), key).unwrap();
    let reader = log.reader();
    let n = 2_000;
    for i in 0..n {
        log.record(event(i)).await;
    }
    log.flush().await;
    assert!(segments(&dir).unwrap().len() > 3, "the test needs rotation");
    // What the writer indexed is exactly what rebuilding from the log gives.
    let all = segments(&dir).unwrap();
    for segment in &all[..all.len() - 1] {
        let saved = SegmentIndex::load(segment).expect("the writer saved the index");
        let rebuilt = SegmentIndex::build(segment).unwrap();
        assert_eq!(saved.rows, rebuilt.rows, "{}", segment.display());
        assert_eq!(saved.covered, rebuilt.covered);
        assert_eq!(saved.covered, std::fs::metadata(segment).unwrap().len());
    }

    // Live: closed segments from their saved indexes, the open one from the writer's.
    check_filters(&reader, n);
    check_pages(&reader, n);
    // Records are searchable as soon as they are durable.
    log.record(event(n)).await;
    log.flush().await;
    assert_eq!(reader.query(&query()).unwrap().events.len(), n + 1);
    let n = n + 1;

    // Offline, on a copy without any index file: everything is rebuilt from the log.
    drop(log);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for segment in segments(&dir).unwrap() {
        std::fs::copy(&segment, copy.join(segment.file_name().unwrap())).unwrap();
    }
    let offline = AuditReader::offline(copy.clone());
    check_filters(&offline, n);
    check_pages(&offline, n);
    // The rebuilt indexes of closed segments were saved; a stale one is rebuilt.
    let first = segments(&copy).unwrap()[0].clone();
    assert!(index_path(&first).exists());
    std::fs::write(index_path(&first), b"not an index").unwrap();
    check_filters(&AuditReader::offline(copy), n);
}

#[tokio::test]
async fn retention_removes_indexes_with_their_segments_and_bad_queries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = SigningKey::load_or_create(&tmp.path().join("audit.key")).unwrap();
    let mut opts = options(&dir);
    opts.max_segments = 3;
    let log = AuditLog::open(opts, key).unwrap();
    let reader = log.reader();
    for i in 0..500 {
        log.record(event(i)).await;
    }
    log.flush().await;
    let first_kept = ids(&reader.query(&query()).unwrap())[0];
    for i in 500..3_000 {
        log.record(event(i)).await;
    }
    log.flush().await;
    let kept = segments(&dir).unwrap();
    assert_eq!(kept.len(), 3);
    // Every index left belongs to a kept segment.
    let idx_files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    assert!(!idx_files.is_empty());
    for idx in &idx_files {
        assert!(
            kept.iter().any(|k| index_path(k) == *idx),
            "{} outlived its segment",
            idx.display()
        );
    }
    let page = reader.query(&query()).unwrap();
    let got = ids(&page);
    assert!(got[0] > first_kept);
    assert_eq!(*got.last().unwrap(), 2_999);
    assert_eq!(got, (got[0]..3_000).collect::<Vec<_>>());

    for bad in [
        Query {
            limit: 0,
            ..query()
        },
        Query {
            after: Some("nonsense".into()),
            ..query()
        },
    ] {
        let err = reader.query(&bad).unwrap_err();
        assert!(
            matches!(err, bulwark_audit::AuditError::BadQuery(_)),
            "{err}"
        );
    }
}
