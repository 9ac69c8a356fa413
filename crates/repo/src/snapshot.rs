//! Snapshots: the record of one backup, pointing at a root tree.
//!
//! Stored as `snapshots/<id>` (sealed JSON, id = BLAKE3 of the stored bytes),
//! written last, after the packs and the index that hold everything it
//! references. `meta` is free-form per source kind (server version, table
//! row counts for PostgreSQL, ...).

use crate::id::Id;
use serde::{Deserialize, Serialize};

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
    pub kind: String,
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
