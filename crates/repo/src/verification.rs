//! Verification records (`verifications/<id>`, docs/FORMAT.md §11): the
//! result of a check that ran against a snapshot, stored sealed in the
//! repository so listings can show when a snapshot was last proven good.
//!
//! Today the one kind is a restore test ([`VerificationKind::RestoreTest`]).
//! A record is read like a snapshot: `version` and `kind` first, a newer
//! version or an unknown kind is [`Error::Unsupported`], never damage.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::layout;
use crate::repository::Repository;
use serde::{Deserialize, Serialize};

/// Verification record format version.
pub const VERIFICATION_VERSION: u32 = 1;

/// What was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerificationKind {
    /// A snapshot restored into a scratch server and checked.
    #[serde(rename = "restore-test")]
    RestoreTest,
}

/// One check of a restore test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Details (expected vs found).
    pub detail: String,
}

/// The outcome of a restore test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestoreTestReport {
    /// Snapshot tested.
    pub snapshot: Id,
    /// All checks passed.
    pub ok: bool,
    /// Measured restore time, milliseconds (the RTO of this snapshot).
    pub restore_ms: u64,
    /// Tables checked.
    pub tables_checked: usize,
    /// Individual checks (failures first).
    pub checks: Vec<Check>,
    /// The role the archive was restored as (empty in records written before
    /// lifeboat recorded it).
    #[serde(default)]
    pub restored_as: String,
    /// Why the archive had to be restored as the superuser; `None` when it
    /// was restored by an unprivileged role.
    #[serde(default)]
    pub superuser_reason: Option<String>,
}

/// What is stored under `verifications/`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerificationRecord {
    /// Record format version (records written before it existed are version 1).
    #[serde(default = "first_version")]
    pub version: u32,
    /// What was verified.
    pub kind: VerificationKind,
    /// When it ran, RFC 3339 UTC.
    pub time: String,
    /// Host that ran it.
    pub host: String,
    /// Source of the snapshot.
    pub source: String,
    /// The report.
    pub report: RestoreTestReport,
}

fn first_version() -> u32 {
    1
}

/// The fields read before a record is used.
#[derive(Deserialize)]
struct Header {
    version: Option<u64>,
    kind: Option<String>,
}

/// Parse a record's plaintext, refusing a version or kind this build does not know.
pub fn decode_verification(plain: &[u8], what: &str) -> Result<VerificationRecord> {
    let header: Header =
        serde_json::from_slice(plain).map_err(|e| Error::Corrupt(format!("{what}: {e}")))?;
    let version = header.version.unwrap_or(1);
    if version != u64::from(VERIFICATION_VERSION) {
        return Err(Error::Unsupported(format!(
            "{what}: verification record version {version} is not known to this lifeboat (it reads version {VERIFICATION_VERSION})"
        )));
    }
    let kind = header.kind.unwrap_or_default();
    if serde_json::from_value::<VerificationKind>(serde_json::Value::String(kind.clone())).is_err()
    {
        return Err(Error::Unsupported(format!(
            "{what}: verification kind {kind:?} is not known to this lifeboat (it reads \"restore-test\")"
        )));
    }
    serde_json::from_slice(plain).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// Every verification record, oldest first, and separately the ids of the
/// records that cannot be read (a damaged or unsupported record is reported
/// and does not hide the others).
pub async fn verifications_checked(
    repo: &Repository,
) -> Result<(Vec<VerificationRecord>, Vec<(Id, Error)>)> {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for id in repo.list_ids(layout::VERIFICATIONS).await? {
        let what = layout::object_key(layout::VERIFICATIONS, &id);
        let decoded = match repo.get_sealed_plain(layout::VERIFICATIONS, &id).await {
            Ok(plain) => decode_verification(&plain, &what),
            Err(e) => Err(e),
        };
        match decoded {
            Ok(v) => out.push(v),
            Err(e @ (Error::Corrupt(_) | Error::Storage(_) | Error::Unsupported(_))) => {
                unreadable.push((id, e))
            }
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.time.cmp(&b.time));
    Ok((out, unreadable))
}

/// Store a record (sealed); returns its id.
pub async fn put_verification(repo: &Repository, record: &VerificationRecord) -> Result<Id> {
    repo.put_sealed_json(layout::VERIFICATIONS, record).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> serde_json::Value {
        serde_json::json!({"kind": "restore-test", "time": "t", "host": "h", "source": "s",
            "report": {"snapshot": Id([1; 32]), "ok": true, "restore_ms": 5, "tables_checked": 1, "checks": []}})
    }

    #[test]
    fn a_record_without_version_is_version_1() {
        let plain = serde_json::to_vec(&record()).unwrap();
        let v = decode_verification(&plain, "verifications/x").unwrap();
        assert_eq!(v.version, 1);
        assert_eq!(v.kind, VerificationKind::RestoreTest);
        assert_eq!(
            serde_json::to_value(&v).unwrap()["kind"],
            "restore-test",
            "stored as before"
        );
    }

    #[test]
    fn a_newer_version_or_unknown_kind_is_unsupported() {
        let mut r = record();
        r["version"] = 2.into();
        let err = decode_verification(&serde_json::to_vec(&r).unwrap(), "v").unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        let mut r = record();
        r["kind"] = "chaos-test".into();
        let err = decode_verification(&serde_json::to_vec(&r).unwrap(), "v").unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("chaos-test"), "{err}");
    }
}
