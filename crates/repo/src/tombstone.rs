//! Tombstones (`tombstones/<id>`, sealed JSON): the packs a prune is about
//! to delete (docs/FORMAT.md §18). Backups list them after taking their
//! lock and never deduplicate against a tombstoned pack.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::layout;
use crate::repository::Repository;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The `ro_compatible` feature prune sets before its first tombstone:
/// builds that do not read tombstones must not write.
pub const FEATURE: &str = "tombstones";

/// Tombstone format version.
pub const TOMBSTONE_VERSION: u32 = 1;

/// What a tombstone holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tombstone {
    /// [`TOMBSTONE_VERSION`].
    pub version: u32,
    /// When the packs were marked, RFC 3339 UTC.
    pub time: String,
    /// Packs to delete.
    pub packs: Vec<Id>,
}

/// Every tombstone. One that cannot be read is an error: its packs are
/// unknown, so a backup cannot know what not to deduplicate against.
pub async fn list(repo: &Repository) -> Result<Vec<(Id, Tombstone)>> {
    let mut out = Vec::new();
    for id in repo.list_ids(layout::TOMBSTONES).await? {
        match repo
            .get_sealed_json::<Tombstone>(layout::TOMBSTONES, &id)
            .await
        {
            Ok(t) => out.push((id, t)),
            // Deleted by a prune finishing between list and get.
            Err(Error::Storage(lifeboat_storage::StorageError::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The packs named by any tombstone.
pub async fn tombstoned_packs(repo: &Repository) -> Result<HashSet<Id>> {
    Ok(list(repo)
        .await?
        .into_iter()
        .flat_map(|(_, t)| t.packs)
        .collect())
}
