//! Snapshots: the record of one backup, pointing at a root tree.
//!
//! Stored as `snapshots/<id>` (sealed JSON, id = BLAKE3 of the stored bytes),
//! written last, after the packs and the index that hold everything it
//! references. `meta` is free-form per source kind (server version, table
//! row counts for PostgreSQL, ...), typed by the engine per [`SnapshotKind`]. A reader checks `version` and `kind`
//! before using a snapshot ([`decode_snapshot`]); listings read
//! [`SnapshotInfo`], which skips `meta`, so listing many snapshots does not
//! hold every snapshot's meta.

use crate::error::{Error, Result};
use crate::id::Id;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Figures of one backup run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SnapshotStats {
    /// Files stored (or streams).
    pub files: u64,
    /// Directories stored.
    pub dirs: u64,
    /// Logical bytes of content.
    pub bytes: u64,
    /// Blobs referenced (data + tree).
    pub blobs: u64,
    /// Blobs that were new to the repository.
    pub new_blobs: u64,
    /// Plaintext bytes of the new blobs.
    pub new_bytes: u64,
    /// Bytes the new blobs take in packs (compressed + sealed).
    pub stored_bytes: u64,
    /// Wall time of the backup, milliseconds.
    pub duration_ms: u64,
}

/// One backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Snapshot format version.
    pub version: u32,
    /// When the backup was taken (or `--time`), RFC 3339 UTC.
    pub time: String,
    /// Host that took it.
    pub host: String,
    /// User that took it.
    #[serde(default)]
    pub user: String,
    /// Source name (from the config, or `files` for ad-hoc paths).
    pub source: String,
    /// Source kind and backup kind, e.g. `files`, `postgres-logical`.
    pub kind: SnapshotKind,
    /// Paths backed up (files sources).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: Id,
    /// Previous snapshot of the same source, if any.
    #[serde(default)]
    pub parent: Option<Id>,
    /// Figures.
    pub stats: SnapshotStats,
    /// Source-specific metadata.
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// What a snapshot holds: the source kind and backup kind. Stored as its
/// name (`files`, `postgres-logical`); a name this build does not know is
/// refused by [`decode_snapshot`] as unsupported, never read as damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// A files source: a tree of paths (`meta`: files meta).
    #[serde(rename = "files")]
    Files,
    /// A PostgreSQL logical backup: a `pg_dump` archive (`meta`: logical meta).
    #[serde(rename = "postgres-logical")]
    PostgresLogical,
    /// A command source: a program's output stored as one file (`meta`:
    /// command meta); restored as files.
    #[serde(rename = "command")]
    Command,
    /// A PostgreSQL physical base backup: the data directory's tree, with
    /// the WAL from start to stop (`meta`: physical meta).
    #[serde(rename = "postgres-physical")]
    PostgresPhysical,
    /// A ClickHouse backup: schema in `meta`, data per table and partition
    /// as `FORMAT Native` files in the tree (`meta`: clickhouse meta).
    #[serde(rename = "clickhouse")]
    Clickhouse,
}

impl SnapshotKind {
    /// Every kind this build reads.
    pub const ALL: [SnapshotKind; 5] = [
        SnapshotKind::Files,
        SnapshotKind::PostgresLogical,
        SnapshotKind::Command,
        SnapshotKind::PostgresPhysical,
        SnapshotKind::Clickhouse,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Files => "files",
            SnapshotKind::PostgresLogical => "postgres-logical",
            SnapshotKind::Command => "command",
            SnapshotKind::PostgresPhysical => "postgres-physical",
            SnapshotKind::Clickhouse => "clickhouse",
        }
    }

    /// The kind stored as `name`, if this build knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Snapshot kinds this build reads, by name.
pub const KNOWN_KINDS: &[&str] = &[
    "files",
    "postgres-logical",
    "command",
    "postgres-physical",
    "clickhouse",
];

/// The fields read before a snapshot is used.
#[derive(Deserialize)]
struct Header {
    version: Option<u64>,
    kind: Option<String>,
}

/// Parse a snapshot's plaintext, refusing a version or kind this build does
/// not know ([`Error::Unsupported`], never "damaged") before the rest.
/// `T` is [`Snapshot`], or [`SnapshotInfo`] for listings.
pub fn decode_snapshot<T: DeserializeOwned>(plain: &[u8], what: &str) -> Result<T> {
    let header: Header =
        serde_json::from_slice(plain).map_err(|e| Error::Corrupt(format!("{what}: {e}")))?;
    let version = header.version.unwrap_or(0);
    if version != u64::from(SNAPSHOT_VERSION) {
        return Err(Error::Unsupported(format!(
            "{what}: snapshot version {version} is not known to this lifeboat (it reads version {SNAPSHOT_VERSION})"
        )));
    }
    let kind = header.kind.unwrap_or_default();
    if SnapshotKind::from_name(&kind).is_none() {
        return Err(Error::Unsupported(format!(
            "{what}: snapshot kind {kind:?} is not known to this lifeboat (it reads {})",
            KNOWN_KINDS.join(", ")
        )));
    }
    serde_json::from_slice(plain).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// A snapshot without its `meta`, as listings read it: the same JSON object,
/// with `meta` skipped while parsing (never held in memory).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotInfo {
    /// Snapshot format version.
    pub version: u32,
    /// When the backup was taken, RFC 3339 UTC.
    pub time: String,
    /// Host that took it.
    pub host: String,
    /// User that took it.
    #[serde(default)]
    pub user: String,
    /// Source name.
    pub source: String,
    /// Source kind and backup kind.
    pub kind: SnapshotKind,
    /// Paths backed up (files sources).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: Id,
    /// Previous snapshot of the same source, if any.
    #[serde(default)]
    pub parent: Option<Id>,
    /// Figures.
    pub stats: SnapshotStats,
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn kinds_serialise_as_their_stored_names() {
        for k in SnapshotKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(SnapshotKind::from_name(k.as_str()), Some(k));
            assert!(KNOWN_KINDS.contains(&k.as_str()));
        }
        assert_eq!(KNOWN_KINDS.len(), SnapshotKind::ALL.len());
        assert_eq!(SnapshotKind::from_name("clickhouse-parts"), None);
    }

    #[test]
    fn an_unknown_kind_is_unsupported_not_damaged() {
        let plain = br#"{"version":1,"kind":"clickhouse-parts","time":"t","host":"h","source":"s","tree":"00","stats":{}}"#;
        let err = decode_snapshot::<SnapshotInfo>(plain, "snapshots/x").unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("clickhouse-parts"), "{err}");
    }
}
