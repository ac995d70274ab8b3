//! The offline verifier (`bulwark audit verify DIR`): recomputes the chain over every segment,
//! checks every checkpoint signature, and reports the first place where a record was changed,
//! removed, inserted, reordered or cut off, by file and line.

use std::path::{Path, PathBuf};

use crate::AuditError;
use crate::chain::{GENESIS, Record, VerifyingKey, line_hash};
use crate::writer::{checkpoint_path, segments};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The segment file.
    pub file: PathBuf,
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Segments read.
    pub segments: usize,
    /// Records checked (events, checkpoints, recovery notes).
    pub records: u64,
    /// Valid checkpoints.
    pub checkpoints: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The first and last sequence numbers seen.
    pub first_seq: Option<u64>,
    /// The last.
    pub last_seq: Option<u64>,
    /// Records after the last valid checkpoint (protected by the chain only).
    pub unsigned_tail: u64,
    /// Failures: any makes verification fail.
    pub problems: Vec<Problem>,
    /// Notes that do not fail verification (a torn last line after a crash, retention).
    pub warnings: Vec<String>,
}

impl Report {
    /// Whether the log verified.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the log in `dir` against `key` (None: the key exported next to the log's signing
/// key is not available here, so signatures are not checked and a problem says so) and, if
/// given, an exported checkpoint line the log must contain.
pub fn verify(
    dir: &Path,
    key: Option<&VerifyingKey>,
    checkpoint: Option<&str>,
) -> Result<Report, AuditError> {
    let mut report = Report::default();
    let files = segments(dir)?;
    if files.is_empty() {
        report.problems.push(Problem {
            file: dir.to_owned(),
            line: 0,
            message: "no audit segments".into(),
        });
        return Ok(report);
    }
    if key.is_none() {
        report.problems.push(Problem {
            file: dir.to_owned(),
            line: 0,
            message: "no public key given (--pubkey): checkpoint signatures cannot be checked"
                .into(),
        });
    }
    let mut expected_seq: Option<u64> = None;
    let mut prev_hash: Option<String> = None;
    let mut pending_torn: Option<(String, u64)> = None;
    // The exported checkpoint as (seq, line hash), looked for while the chain is walked (None
    // inside: it is not a checkpoint record).
    let exported: Option<Option<(u64, String)>> = checkpoint.map(|text| {
        let text = text.trim();
        serde_json::from_str::<Record>(text)
            .ok()
            .filter(|r| r.checkpoint.is_some())
            .map(|r| (r.seq, line_hash(text.as_bytes())))
    });
    let mut exported_found = false;
    let count = files.len();
    for (index, file) in files.iter().enumerate() {
        let is_last = index + 1 == count;
        let bytes = std::fs::read(file).map_err(crate::io(file))?;
        report.segments += 1;
        report.bytes += bytes.len() as u64;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut first_in_file = true;
        for (i, line) in bytes
            .get(..complete)
            .unwrap_or_default()
            .split(|b| *b == b'\n')
            .enumerate()
        {
            if line.is_empty() {
                // The piece after the final newline (a removed line's content is caught by the
                // chain check on the next record).
                continue;
            }
            let problem = |message: String| Problem {
                file: file.clone(),
                line: i + 1,
                message,
            };
            let record: Record = match serde_json::from_slice(line) {
                Ok(r) => r,
                Err(e) => {
                    report.problems.push(problem(format!(
                        "not a valid record (changed or damaged): {e}"
                    )));
                    return Ok(report);
                }
            };
            report.records += 1;
            report.first_seq.get_or_insert(record.seq);
            report.last_seq = Some(record.seq);
            if first_in_file {
                first_in_file = false;
                if name != crate::writer::segment_name(record.seq) {
                    report.problems.push(problem(format!(
                        "segment {name} does not start at its own sequence number {}",
                        record.seq
                    )));
                    return Ok(report);
                }
            }
            if let Some(recovery) = &record.recovery {
                match pending_torn.take() {
                    Some((torn_file, offset))
                        if torn_file == recovery.file && offset == recovery.offset =>
                    {
                        report.warnings.push(format!(
                            "{}: a torn record ({} bytes at offset {}) from a crash, acknowledged at {name}:{}",
                            recovery.file,
                            recovery.bytes,
                            recovery.offset,
                            i + 1
                        ));
                    }
                    _ => {
                        report.problems.push(problem(format!(
                            "a recovery record names a torn line in {} that is not there",
                            recovery.file
                        )));
                        return Ok(report);
                    }
                }
            } else if let Some((torn_file, _)) = pending_torn.take() {
                report.problems.push(Problem {
                    file: dir.join(&torn_file),
                    line: 0,
                    message: "the segment ends in a partial line (truncated or damaged)".into(),
                });
                return Ok(report);
            }
            match (expected_seq, &prev_hash) {
                (None, _) => {
                    if record.seq == 1 {
                        if record.prev != GENESIS {
                            report
                                .problems
                                .push(problem("the first record does not start the chain".into()));
                            return Ok(report);
                        }
                    } else {
                        report.warnings.push(format!(
                            "the log starts at record {} (earlier segments were removed by retention); the chain is verified from there",
                            record.seq
                        ));
                    }
                }
                (Some(seq), Some(prev)) => {
                    if record.seq != seq {
                        report.problems.push(problem(if record.seq > seq {
                            format!("record {seq} is missing here (found {}): records were removed or reordered", record.seq)
                        } else {
                            format!("record {} appears where {seq} belongs: records were reordered or duplicated", record.seq)
                        }));
                        return Ok(report);
                    }
                    if &record.prev != prev {
                        report.problems.push(problem(format!(
                            "the previous record (seq {}) was changed: its hash does not match this record's prev",
                            seq.saturating_sub(1)
                        )));
                        return Ok(report);
                    }
                }
                (Some(_), None) => {}
            }
            if let Some(checkpoint) = &record.checkpoint {
                if let Some(key) = key
                    && (checkpoint.key != key.id()
                        || !key.verifies(record.seq, &record.prev, checkpoint))
                {
                    report.problems.push(problem(
                        "the checkpoint signature does not verify with the given key".into(),
                    ));
                    return Ok(report);
                }
                report.checkpoints += 1;
                report.unsigned_tail = 0;
            } else {
                report.unsigned_tail += 1;
            }
            let hash = line_hash(line);
            if let Some(Some((seq, wanted))) = &exported
                && *seq == record.seq
                && *wanted == hash
            {
                exported_found = true;
            }
            expected_seq = Some(record.seq + 1);
            prev_hash = Some(hash);
        }
        if complete < bytes.len() {
            if is_last {
                report.warnings.push(format!(
                    "{name}: the last line is partial ({} bytes): a write was cut off (crash); every complete record before it verifies",
                    bytes.len() - complete
                ));
            } else {
                pending_torn = Some((name.clone(), complete as u64));
            }
        }
    }
    if let Some((torn_file, _)) = pending_torn {
        report.problems.push(Problem {
            file: dir.join(torn_file),
            line: 0,
            message: "the segment ends in a partial line (truncated or damaged)".into(),
        });
    }
    match exported {
        Some(Some((seq, _))) if !exported_found => report.problems.push(Problem {
            file: dir.to_owned(),
            line: 0,
            message: format!(
                "the exported checkpoint (record {seq}) is not in the log: records were cut off the end (the log ends at {})",
                report.last_seq.unwrap_or(0)
            ),
        }),
        Some(None) => report.problems.push(Problem {
            file: dir.to_owned(),
            line: 0,
            message: "the exported checkpoint is not a checkpoint record".into(),
        }),
        _ => {}
    }
    Ok(report)
}

/// The exported checkpoint in `dir`, if any (what `--checkpoint` defaults to).
pub fn exported_checkpoint(dir: &Path) -> Option<String> {
    std::fs::read_to_string(checkpoint_path(dir)).ok()
}
