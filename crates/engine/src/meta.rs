//! The `meta` of each snapshot kind, as a type (docs/FORMAT.md §"Snapshot meta").
//!
//! A snapshot's `meta` is JSON in the repository; [`SnapshotMeta::of`] reads
//! it as the type of the snapshot's [`SnapshotKind`], so the format of each
//! kind is defined here and nowhere else.

use crate::error::{EngineError, Result};
use crate::postgres::LogicalMeta;
use lifeboat_repo::{Snapshot, SnapshotKind};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// `meta` of a `files` snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilesMeta {
    /// Paths of `.env` files stored with their secrets redacted.
    #[serde(default)]
    pub redacted_files: Vec<String>,
    /// Whether the root tree holds `environment.env`, the redacted process environment.
    #[serde(default)]
    pub environment_captured: bool,
    /// How many warnings the backup gave (skipped or changed entries).
    #[serde(default)]
    pub warnings: usize,
    /// Files that changed while they were read (stored as read).
    #[serde(default)]
    pub changed_files: Vec<String>,
}

/// The typed `meta` of a snapshot, by kind.
#[derive(Debug, Clone)]
pub enum SnapshotMeta {
    /// A files snapshot.
    Files(FilesMeta),
    /// A PostgreSQL logical snapshot.
    PostgresLogical(Box<LogicalMeta>),
}

impl SnapshotMeta {
    /// Read the `meta` of `snap` as the type of its kind.
    pub fn of(snap: &Snapshot) -> Result<Self> {
        Ok(match snap.kind {
            SnapshotKind::Files => SnapshotMeta::Files(parse(snap)?),
            SnapshotKind::PostgresLogical => SnapshotMeta::PostgresLogical(Box::new(parse(snap)?)),
        })
    }
}

/// `meta` of `snap` as `T`; a shape that does not fit is damage.
pub(crate) fn parse<T: DeserializeOwned>(snap: &Snapshot) -> Result<T> {
    T::deserialize(&snap.meta).map_err(|e| {
        EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "metadata of the {} snapshot of {:?}: {e}",
            snap.kind, snap.source
        )))
    })
}

/// `meta` as stored: a typed meta as JSON.
pub(crate) fn to_value<T: Serialize>(meta: &T) -> serde_json::Value {
    serde_json::to_value(meta).expect("meta serialises")
}
