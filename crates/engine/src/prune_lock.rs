//! The prune lock (docs/FORMAT.md §18, `kind: prune`): at most one prune
//! deletes at a time, so one prune never deletes the tombstone of another
//! that is still waiting for backups.
//!
//! A prune creates `locks/<random id>` with `kind: prune` by
//! `put_if_absent`, then lists the locks: when another live prune lock is
//! listed it backs off (deletes its own). Two prunes starting together may
//! both back off, never both proceed: the later of two creations is listed
//! by the other's listing (read-after-write listing is all this needs). The
//! lock is heartbeated like a backup's and judged stale the same way, by
//! the storage's clock; a prune lock left on this host by a process that no
//! longer exists counts as gone at once (kill -9 of a prune never blocks
//! the next one, and never needs `unlock`).

use crate::error::{EngineError, Result};
use lifeboat_repo::lock::{self, BackupLock, LockEntry, KIND_PRUNE};
use lifeboat_repo::{Error as RepoError, Repository};
use lifeboat_storage::{Storage, StorageError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often a waiting prune looks at the other prune's lock again.
const POLL: Duration = Duration::from_secs(5);

/// What to do when another prune holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfBusy {
    /// Fail with [`EngineError::Busy`] (exit 21).
    #[default]
    Fail,
    /// Wait until it ends (or its lock goes stale), then take the lock.
    Wait,
}

/// Take the prune lock of `repo`.
pub async fn acquire(repo: &Arc<Repository>, if_busy: IfBusy) -> Result<BackupLock> {
    let host = crate::open::hostname();
    loop {
        let mine = BackupLock::acquire_kind(repo, &host, KIND_PRUNE).await?;
        let now = storage_now(repo.storage().as_ref(), mine.key()).await?;
        let locks = lock::list_locks(repo.storage().as_ref()).await?;
        let (live, dead): (Vec<&LockEntry>, Vec<&LockEntry>) = locks
            .iter()
            .filter(|l| l.kind() == Some(KIND_PRUNE) && l.meta.key != mine.key())
            .partition(|l| !gone(l, now, &host));
        let Some(other) = live.first() else {
            for l in dead {
                remove(repo.storage().as_ref(), &l.meta.key).await?;
            }
            return Ok(mine);
        };
        let held_by = describe(other);
        mine.release().await?;
        if if_busy == IfBusy::Fail {
            return Err(EngineError::Busy(format!(
                "another prune is running ({held_by}); only one prune runs at a time: wait for it to finish and run prune again (a prune killed on another host stops counting 15 minutes after its last heartbeat; nothing to unlock by hand)"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a prune lock's holder is gone: stale by the storage's clock, or
/// written on this host by a process that no longer exists.
fn gone(l: &LockEntry, now: SystemTime, host: &str) -> bool {
    if l.is_stale(now) {
        return true;
    }
    l.info
        .as_ref()
        .is_some_and(|i| i.host == host && !process_exists(i.pid))
}

/// Whether process `pid` exists on this host (by `/proc`; where there is
/// no `/proc` every process counts as existing, so only staleness applies).
fn process_exists(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn describe(l: &LockEntry) -> String {
    match &l.info {
        Some(i) => format!(
            "{}: host {}, pid {}, started {}, last heartbeat {}",
            l.meta.key, i.host, i.pid, i.started, i.heartbeat
        ),
        None => format!("{} (unreadable)", l.meta.key),
    }
}

async fn remove(storage: &dyn Storage, key: &str) -> Result<()> {
    match storage.delete(key).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
        Err(e) => Err(RepoError::from(e).into()),
    }
}

/// The storage's "now": the `last_modified` of `key`, rewritten with its own
/// bytes first. An object that vanished meanwhile is an error (never the
/// local clock, which may be far from the storage's).
pub(crate) async fn storage_now(storage: &dyn Storage, key: &str) -> Result<SystemTime> {
    let bytes = storage.get(key).await.map_err(RepoError::from)?;
    storage.put(key, bytes).await.map_err(RepoError::from)?;
    match storage.stat(key).await.map_err(RepoError::from)? {
        Some(meta) => Ok(meta.last_modified),
        None => Err(EngineError::Other(format!(
            "prune: {key} vanished right after it was rewritten (something else deletes prune's objects: another prune by an older lifeboat, or a manual cleanup), so the storage's time is unknown and nothing more is deleted; run prune again once it is alone"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_storage::local::LocalStorage;
    use lifeboat_storage::{ListPage, ObjectMeta};

    /// A real local directory where another process deletes every object
    /// right after it is written (what a second, lock-unaware prune does to
    /// the first one's tombstone).
    #[derive(Debug)]
    struct DeletedBehindItsBack(LocalStorage);

    #[async_trait::async_trait]
    impl Storage for DeletedBehindItsBack {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn put(&self, key: &str, data: Vec<u8>) -> lifeboat_storage::Result<()> {
            self.0.put(key, data).await?;
            self.0.delete(key).await
        }
        async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> lifeboat_storage::Result<()> {
            self.0.put_if_absent(key, data).await
        }
        async fn get(&self, key: &str) -> lifeboat_storage::Result<Vec<u8>> {
            self.0.get(key).await
        }
        async fn get_range(
            &self,
            key: &str,
            offset: u64,
            len: u64,
        ) -> lifeboat_storage::Result<Vec<u8>> {
            self.0.get_range(key, offset, len).await
        }
        async fn stat(&self, key: &str) -> lifeboat_storage::Result<Option<ObjectMeta>> {
            self.0.stat(key).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> lifeboat_storage::Result<ListPage> {
            self.0.list_page(prefix, start_after, limit).await
        }
        async fn delete(&self, key: &str) -> lifeboat_storage::Result<()> {
            self.0.delete(key).await
        }
    }

    #[tokio::test]
    async fn the_storage_clock_of_a_vanished_object_is_an_error_not_the_local_clock() {
        let dir = tempfile::tempdir().unwrap();
        let s = DeletedBehindItsBack(LocalStorage::new(dir.path().join("repo")));
        s.put_if_absent("tombstones/x", b"stone".to_vec())
            .await
            .unwrap();
        let err = storage_now(&s, "tombstones/x")
            .await
            .expect_err("a vanished object has no storage time");
        assert!(err.to_string().contains("vanished"), "{err}");
    }
}
