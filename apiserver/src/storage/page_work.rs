//! Work on one page of stored objects spread over the cores. A list of 10,000 objects spent
//! most of its time on one thread decoding or splicing each item in turn while the other
//! core idled; items are independent, so a large page is cut into runs that the rayon pool
//! works on at once, and the results come back in key order.

use bulwark_api::LabelSelector;
use bulwark_store::KeyValue;
use bytes::Bytes;
use rayon::prelude::*;

use crate::http::error::ApiError;

/// Below this many stored bytes a page is worked on by the calling thread alone: handing
/// work to the pool and waiting for it costs more than it saves.
const RUN_MIN_BYTES: usize = 128 * 1024;

/// Runs per pool thread, so that a run that lands behind other work does not hold up the
/// rest.
const RUNS_PER_THREAD: usize = 2;

/// `work` applied to consecutive runs of `kvs`, in order: one run (on the calling thread) for
/// a small page, several (on the rayon pool, the caller waiting) for a large one.
pub fn in_runs<R: Send>(
    kvs: &[KeyValue],
    work: impl Fn(&[KeyValue]) -> Result<R, ApiError> + Sync,
) -> Result<Vec<R>, ApiError> {
    let bytes: usize = kvs.iter().map(|kv| kv.value.len()).sum();
    let runs = (bytes / RUN_MIN_BYTES)
        .min(rayon::current_num_threads().saturating_mul(RUNS_PER_THREAD))
        .min(kvs.len());
    if runs <= 1 {
        return Ok(vec![work(kvs)?]);
    }
    let run_len = kvs.len().div_ceil(runs);
    kvs.par_chunks(run_len).map(&work).collect()
}

/// Items of a JSON list encoded from their stored bytes, in key order.
#[derive(Default)]
pub struct EncodedItems {
    /// Non-empty runs of comma-separated items; the list puts a comma between runs.
    pub runs: Vec<Bytes>,
    /// How many items the runs hold.
    pub kept: usize,
}

/// Encodes the objects of one store page as a JSON list's items, `resourceVersion` set
/// ([`super::append_raw`]), keeping those that `labels` selects (labels are parsed only when
/// it is not empty).
pub fn encode_items(kvs: &[KeyValue], labels: &LabelSelector) -> Result<EncodedItems, ApiError> {
    let want_labels = !labels.is_empty();
    let runs = in_runs(kvs, |run| {
        let stored: usize = run.iter().map(|kv| kv.value.len()).sum();
        // Room for the run as stored, and for each object's resourceVersion.
        let mut out = Vec::with_capacity(stored.saturating_add(stored / 8));
        let mut kept = 0usize;
        for kv in run {
            let mark = out.len();
            if mark > 0 {
                out.push(b',');
            }
            let found = super::append_raw(kv, &mut out, want_labels)?;
            if labels.matches(found.as_ref()) {
                kept += 1;
            } else {
                out.truncate(mark);
            }
        }
        Ok((Bytes::from(out), kept))
    })?;
    let mut items = EncodedItems::default();
    for (run, kept) in runs {
        items.kept += kept;
        if !run.is_empty() {
            items.runs.push(run);
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use bulwark_store::Revision;
    use serde_json::Value;

    fn selector(text: &str) -> LabelSelector {
        LabelSelector::parse(text).unwrap()
    }

    fn page(n: usize, size: usize) -> Vec<KeyValue> {
        (0..n)
            .map(|i| {
                let pad = "x".repeat(size);
                let value = format!(
                    r#"{{"kind":"ConfigMap","metadata":{{"name":"cm-{i}","labels":{{"odd":"{}"}}}},"data":{{"p":"{pad}"}}}}"#,
                    i % 2
                );
                KeyValue {
                    key: format!("/registry/core/configmaps/d/cm-{i}"),
                    value: value.into_bytes().into(),
                    create_revision: Revision(i as u64 + 1),
                    mod_revision: Revision(i as u64 + 1),
                    version: 1,
                }
            })
            .collect()
    }

    fn names(items: &EncodedItems) -> Vec<String> {
        let joined: Vec<u8> = items.runs.join(&b","[..]);
        let list: Vec<Value> = serde_json::from_slice(&[b"[", &joined[..], b"]"].concat()).unwrap();
        list.iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A page large enough for several runs encodes to what one run on one thread gives, in
    /// key order, with the label filter applied in every run.
    #[test]
    fn a_large_page_encodes_in_runs_and_in_order() {
        let kvs = page(3_000, 1_024);
        let all = encode_items(&kvs, &selector("")).unwrap();
        assert!(all.runs.len() > 1, "{} runs", all.runs.len());
        assert_eq!(all.kept, 3_000);
        let expected: Vec<String> = (0..3_000).map(|i| format!("cm-{i}")).collect();
        assert_eq!(names(&all), expected);
        let odd = encode_items(&kvs, &selector("odd=1")).unwrap();
        assert_eq!(odd.kept, 1_500);
        let expected: Vec<String> = (0..3_000)
            .filter(|i| i % 2 == 1)
            .map(|i| format!("cm-{i}"))
            .collect();
        assert_eq!(names(&odd), expected);
        let none = encode_items(&kvs, &selector("odd=2")).unwrap();
        assert_eq!((none.kept, none.runs.len()), (0, 0));
    }

    #[test]
    fn a_small_page_is_one_run() {
        let kvs = page(10, 100);
        let items = encode_items(&kvs, &selector("")).unwrap();
        assert_eq!((items.kept, items.runs.len()), (10, 1));
    }

    /// An object that cannot be decoded fails the whole page, whichever run it is in.
    #[test]
    fn a_bad_object_in_any_run_fails_the_page() {
        let mut kvs = page(3_000, 1_024);
        kvs[2_999].value = Bytes::from_static(b"not json");
        assert!(encode_items(&kvs, &selector("")).is_err());
    }
}
