//! Job history (`jobs/<id>`, docs/FORMAT.md §19): what `run-due` and the
//! daemon ran, stored sealed in the repository so `status` on any host that
//! opens the repository sees it.
//!
//! A job writes two records with the same `job` id: [`JobEvent::Started`]
//! before it runs and [`JobEvent::Finished`] (with its [`JobResult`],
//! figures and error) after. A started record without a finished one is a
//! job that is running or was killed; whoever holds the source's job lock
//! next closes it with an `interrupted` finished record. Records are never
//! rewritten: each is a new object named by the BLAKE3 of its sealed bytes,
//! written with `put_if_absent`. Prune leaves `jobs/` alone.
//!
//! A record is read like a verification record: `version` first; a newer
//! version is [`Error::Unsupported`], never damage.

use crate::crypto::ad;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::layout;
use crate::repository::Repository;
use lifeboat_storage::StorageError;
use serde::{Deserialize, Serialize};

/// Job record format version.
pub const JOB_VERSION: u32 = 1;

/// Which of a job's two records this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobEvent {
    /// Written before the job runs.
    Started,
    /// Written when it ended (or, `interrupted`, by the next run after it died).
    Finished,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobResult {
    /// It did what it should.
    Ok,
    /// It failed (the error says why) or ran past its timeout.
    Failed,
    /// Its process died without recording the end (SIGKILL, power loss).
    Interrupted,
}

impl JobResult {
    /// As stored: `ok`, `failed`, `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Ok => "ok",
            JobResult::Failed => "failed",
            JobResult::Interrupted => "interrupted",
        }
    }
}

/// What a job measured; each figure is set by the jobs it applies to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFigures {
    /// Wall time of the job, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Bytes read (backup), or checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes added to the repository (backup, copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// Files stored (backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Snapshot written (backup) or tested (restore test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Id>,
    /// Snapshots removed (forget), copied (copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<u64>,
    /// Measured restore time of a restore test, milliseconds (its RTO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_ms: Option<u64>,
}

/// What is stored under `jobs/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Record format version.
    pub version: u32,
    /// `started` or `finished`.
    pub event: JobEvent,
    /// The job's id (32 hex digits), shared by its two records.
    pub job: String,
    /// The source it ran for.
    pub source: String,
    /// What it did (`logical`, `physical`, `backup`, `forget`, `prune`,
    /// `verify`, `restore_test`, `copy`).
    pub kind: String,
    /// The scheduled slot it ran for (RFC 3339 UTC).
    pub slot: String,
    /// Host and process that ran it.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When it started (RFC 3339 UTC).
    pub started: String,
    /// When it ended (finished records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// How it ended (finished records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// What it measured (finished records).
    #[serde(default)]
    pub figures: JobFigures,
    /// Why it failed: the error message, which never holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    version: Option<u64>,
}

/// Parse a record's plaintext, refusing a version this build does not know.
pub fn decode_job(plain: &[u8], what: &str) -> Result<JobRecord> {
    let header: Header =
        serde_json::from_slice(plain).map_err(|e| Error::Corrupt(format!("{what}: {e}")))?;
    let version = header.version.unwrap_or(0);
    if version != u64::from(JOB_VERSION) {
        return Err(Error::Unsupported(format!(
            "{what}: job record version {version} is not known to this lifeboat (it reads version {JOB_VERSION})"
        )));
    }
    serde_json::from_slice(plain).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// Store a record sealed under `jobs/<BLAKE3 of the sealed bytes>` with
/// `put_if_absent` (an existing object of that name holds these bytes).
pub async fn put_job(repo: &Repository, record: &JobRecord) -> Result<Id> {
    repo.ensure_writable()?;
    let plain = serde_json::to_vec(record).expect("serializable");
    let sealed = repo.keys().seal(&ad::object(layout::JOBS), &plain);
    let id = Id::of_file(&sealed);
    let key = layout::object_key(layout::JOBS, &id);
    match repo.storage().put_if_absent(&key, sealed).await {
        Ok(()) | Err(StorageError::AlreadyExists { .. }) => Ok(id),
        Err(e) => Err(e.into()),
    }
}

/// Every job record, ordered by start time then event (started first), and
/// separately the records that cannot be read (reported; they hide nothing
/// else). Two objects with the same `job` and `event` (a retried write) are
/// one record: the first listed is kept.
pub async fn jobs_checked(repo: &Repository) -> Result<(Vec<JobRecord>, Vec<(Id, Error)>)> {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for id in repo.list_ids(layout::JOBS).await? {
        let what = layout::object_key(layout::JOBS, &id);
        let decoded = match repo.get_sealed_plain(layout::JOBS, &id).await {
            Ok(plain) => decode_job(&plain, &what),
            Err(e) => Err(e),
        };
        match decoded {
            Ok(r) => out.push(r),
            // A record deleted between listing and reading is not damage.
            Err(Error::Storage(StorageError::NotFound { .. })) => {}
            Err(e @ (Error::Corrupt(_) | Error::Storage(_) | Error::Unsupported(_))) => {
                unreadable.push((id, e))
            }
            Err(e) => return Err(e),
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|r: &JobRecord| seen.insert((r.job.clone(), r.event == JobEvent::Finished)));
    out.sort_by(|a, b| {
        (&a.started, &a.job, a.event == JobEvent::Finished).cmp(&(
            &b.started,
            &b.job,
            b.event == JobEvent::Finished,
        ))
    });
    Ok((out, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> serde_json::Value {
        serde_json::json!({"version": 1, "event": "finished", "job": "ab", "source": "s",
            "kind": "logical", "slot": "2026-01-01T02:00:00Z", "host": "h", "pid": 1,
            "started": "2026-01-01T02:00:01Z", "finished": "2026-01-01T02:00:09Z",
            "result": "interrupted", "figures": {"bytes": 5}})
    }

    #[test]
    fn a_record_round_trips_as_documented() {
        let plain = serde_json::to_vec(&record()).unwrap();
        let r = decode_job(&plain, "jobs/x").unwrap();
        assert_eq!(r.result, Some(JobResult::Interrupted));
        assert_eq!(r.figures.bytes, Some(5));
        assert_eq!(serde_json::to_value(&r).unwrap(), record());
    }

    #[test]
    fn a_newer_version_is_unsupported_and_garbage_is_damage() {
        let mut r = record();
        r["version"] = 2.into();
        let err = decode_job(&serde_json::to_vec(&r).unwrap(), "j").unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        let err = decode_job(b"{", "j").unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
    }
}
