//! Lock objects (`locks/<id>`): how a backup tells a future `prune` that it
//! is running and may deduplicate against existing blobs.
//!
//! docs/FORMAT.md ("Locks and prune protocol") is the spec. A lock is a
//! plain JSON object ([`LockInfo`]) at `locks/<64 random hex>`, created with
//! `put_if_absent` before the backup loads the index, rewritten every
//! [`LOCK_HEARTBEAT`] by a background task and deleted when the backup ends
//! (also on error). A lock whose heartbeat is older than [`LOCK_STALE_AFTER`]
//! (by the time in it and by the storage's `last_modified`) is stale: its
//! holder died. A holder that could not refresh its lock for half that time
//! treats it as lost and refuses to write its snapshot ([`Error::LockLost`]).

use crate::error::{Error, Result};
use crate::repository::Repository;
use lifeboat_storage::{ObjectMeta, Storage, StorageError};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How often a holder rewrites its lock.
pub const LOCK_HEARTBEAT: Duration = Duration::from_secs(60);

/// A lock not refreshed for this long is stale (15 missed heartbeats).
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// How long [`BackupLock::release`] waits for a refresh in flight.
pub const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// Version of the lock object layout.
pub const LOCK_VERSION: u32 = 1;

/// `kind` of a backup's lock (also `copy`, which writes like a backup).
pub const KIND_BACKUP: &str = "backup";

/// `kind` of a prune's lock: at most one live prune at a time (FORMAT.md §18).
pub const KIND_PRUNE: &str = "prune";

/// What a lock object holds (plain JSON: no secrets, readable without the key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    /// [`LOCK_VERSION`].
    pub version: u32,
    /// What holds it: [`KIND_BACKUP`] or [`KIND_PRUNE`].
    pub kind: String,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder (in its own PID namespace).
    pub pid: u32,
    /// When the holder started, RFC 3339 UTC.
    pub started: String,
    /// The holder's last refresh, RFC 3339 UTC.
    pub heartbeat: String,
}

/// A lock found in the repository.
#[derive(Debug, Clone)]
pub struct LockEntry {
    /// Storage metadata (key, `last_modified` by the storage's clock).
    pub meta: ObjectMeta,
    /// The parsed object; `None` when it does not parse (judged by `last_modified` alone).
    pub info: Option<LockInfo>,
}

impl LockEntry {
    /// Time of the latest sign of life: the later of the heartbeat in the
    /// object and the object's `last_modified`. The heartbeat is the
    /// holder's clock, so it counts at most [`LOCK_STALE_AFTER`] past
    /// `last_modified`: a holder whose clock runs years ahead cannot make
    /// its lock (left by kill -9) block prune forever.
    pub fn last_alive(&self) -> SystemTime {
        let modified = self.meta.last_modified;
        let beat = self
            .info
            .as_ref()
            .and_then(|i| i.heartbeat.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from)
            .map(|b| b.min(modified + LOCK_STALE_AFTER));
        beat.map_or(modified, |b| b.max(modified))
    }

    /// The lock's `kind`, when it parses.
    pub fn kind(&self) -> Option<&str> {
        self.info.as_ref().map(|i| i.kind.as_str())
    }

    /// Whether the holder is gone: no sign of life for [`LOCK_STALE_AFTER`] before `now`.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        now.duration_since(self.last_alive())
            .is_ok_and(|age| age > LOCK_STALE_AFTER)
    }
}

/// Every lock in the repository, in key order.
pub async fn list_locks(storage: &dyn Storage) -> Result<Vec<LockEntry>> {
    let mut out = Vec::new();
    for meta in storage
        .list(&crate::layout::prefix(crate::layout::LOCKS))
        .await?
    {
        let info = match storage.get(&meta.key).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            // Released between list and get.
            Err(StorageError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(LockEntry { meta, info });
    }
    Ok(out)
}

/// Shared between the holder, its heartbeat task and the repository (which
/// checks it before writing a snapshot).
#[derive(Debug)]
pub struct LockHealth {
    key: String,
    state: Mutex<Health>,
}

#[derive(Debug)]
struct Health {
    /// Last successful write of the lock, by this process's clock.
    last_ok: SystemTime,
    /// The last refresh error, if the latest refresh failed.
    last_error: Option<String>,
    /// Set for good when a successful refresh came more than half the stale
    /// age after the previous one (the process was suspended, the storage
    /// hung, the runtime starved): meanwhile a prune may have judged the
    /// lock stale and deleted what this backup depends on, so a later
    /// successful refresh does not make the lock held again.
    gap: Option<Duration>,
}

impl LockHealth {
    /// Fail if the lock may have been taken for stale: not refreshed for
    /// half of [`LOCK_STALE_AFTER`].
    pub fn ensure_held(&self) -> Result<()> {
        let h = self.state.lock().expect("lock health");
        if let Some(gap) = h.gap {
            return Err(Error::LockLost(format!(
                "{}: went {}s without a refresh earlier in this backup; a prune may have treated it as dead meanwhile, so its snapshot is not written; run the backup again",
                self.key,
                gap.as_secs()
            )));
        }
        let since = SystemTime::now()
            .duration_since(h.last_ok)
            .unwrap_or_default();
        if since > LOCK_STALE_AFTER / 2 {
            return Err(Error::LockLost(format!(
                "{}: not refreshed for {}s ({}); a prune may treat this backup as dead, so its snapshot is not written; run the backup again",
                self.key,
                since.as_secs(),
                h.last_error.as_deref().unwrap_or("the heartbeat did not run")
            )));
        }
        Ok(())
    }
}

/// A lock held by this process; [`BackupLock::release`] deletes it.
/// Dropping it without release stops the heartbeat and leaves the object
/// to go stale.
pub struct BackupLock {
    storage: Arc<dyn Storage>,
    repo: Option<Arc<Repository>>,
    health: Arc<LockHealth>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Tells the heartbeat to stop between refreshes, never during one.
    stop: tokio::sync::watch::Sender<bool>,
}

impl BackupLock {
    /// Create a `backup` lock for `host`, start its heartbeat every
    /// [`LOCK_HEARTBEAT`], and make `repo` check it before writing a snapshot.
    pub async fn acquire(repo: &Arc<Repository>, host: &str) -> Result<BackupLock> {
        Self::acquire_kind(repo, host, KIND_BACKUP).await
    }

    /// [`BackupLock::acquire`] for a lock of another `kind` ([`KIND_PRUNE`]).
    pub async fn acquire_kind(
        repo: &Arc<Repository>,
        host: &str,
        kind: &str,
    ) -> Result<BackupLock> {
        let mut lock =
            Self::acquire_kind_with(repo.storage().clone(), host, kind, LOCK_HEARTBEAT).await?;
        repo.set_held_lock(Some(lock.health.clone()));
        lock.repo = Some(repo.clone());
        Ok(lock)
    }

    /// [`BackupLock::acquire`] with another heartbeat interval (tests).
    pub async fn acquire_with(
        storage: Arc<dyn Storage>,
        host: &str,
        every: Duration,
    ) -> Result<BackupLock> {
        Self::acquire_kind_with(storage, host, KIND_BACKUP, every).await
    }

    /// [`BackupLock::acquire_with`] for a lock of another `kind`.
    pub async fn acquire_kind_with(
        storage: Arc<dyn Storage>,
        host: &str,
        kind: &str,
        every: Duration,
    ) -> Result<BackupLock> {
        let now = now_rfc3339();
        let info = LockInfo {
            version: LOCK_VERSION,
            kind: kind.into(),
            host: host.into(),
            pid: std::process::id(),
            started: now.clone(),
            heartbeat: now,
        };
        let key = loop {
            let id: [u8; 32] = crate::crypto::random_array();
            let key = crate::layout::object_key(crate::layout::LOCKS, &crate::id::Id(id));
            match storage.put_if_absent(&key, to_json(&info)).await {
                Ok(()) => break key,
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let health = Arc::new(LockHealth {
            key,
            state: Mutex::new(Health {
                last_ok: SystemTime::now(),
                last_error: None,
                gap: None,
            }),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let heartbeat = tokio::spawn(beat(storage.clone(), info, health.clone(), every, stopped));
        Ok(BackupLock {
            storage,
            repo: None,
            health,
            heartbeat,
            stop,
        })
    }

    /// The lock's key (`locks/<id>`).
    pub fn key(&self) -> &str {
        &self.health.key
    }

    /// See [`LockHealth::ensure_held`].
    pub fn ensure_held(&self) -> Result<()> {
        self.health.ensure_held()
    }

    /// Stop the heartbeat and delete the lock. A refresh in flight is waited
    /// for (up to [`RELEASE_WAIT`]) rather than aborted: aborting only drops
    /// the future, the blocking write underneath still lands and would
    /// recreate the lock after the delete, leaving a lock nobody holds.
    pub async fn release(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        if tokio::time::timeout(RELEASE_WAIT, &mut self.heartbeat)
            .await
            .is_err()
        {
            self.heartbeat.abort();
        }
        if let Some(repo) = self.repo.take() {
            repo.set_held_lock(None);
        }
        self.storage.delete(&self.health.key).await?;
        Ok(())
    }
}

impl Drop for BackupLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// The heartbeat task: rewrite the lock with a new time every `every`.
async fn beat(
    storage: Arc<dyn Storage>,
    mut info: LockInfo,
    health: Arc<LockHealth>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        info.heartbeat = now_rfc3339();
        let result = storage.put(&health.key, to_json(&info)).await;
        let mut h = health.state.lock().expect("lock health");
        match result {
            Ok(()) => {
                let now = SystemTime::now();
                let since = now.duration_since(h.last_ok).unwrap_or_default();
                if since > LOCK_STALE_AFTER / 2 && h.gap.is_none() {
                    h.gap = Some(since);
                }
                h.last_ok = now;
                h.last_error = None;
            }
            Err(e) => h.last_error = Some(e.to_string()),
        }
    }
}

fn to_json(info: &LockInfo) -> Vec<u8> {
    serde_json::to_vec_pretty(info).expect("lock serializes")
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_storage::local::LocalStorage;

    fn storage(dir: &tempfile::TempDir) -> Arc<dyn Storage> {
        Arc::new(LocalStorage::new(dir.path().join("repo")))
    }

    #[tokio::test]
    async fn a_lock_is_listed_refreshed_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let lock = BackupLock::acquire_with(s.clone(), "host-a", Duration::from_millis(20))
            .await
            .unwrap();
        let locks = list_locks(&*s).await.unwrap();
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].meta.key, lock.key());
        let first = locks[0].info.clone().unwrap();
        assert_eq!(
            (first.kind.as_str(), first.host.as_str(), first.pid),
            ("backup", "host-a", std::process::id())
        );
        assert!(!locks[0].is_stale(SystemTime::now()));
        // The heartbeat rewrites the object with a newer time.
        loop {
            let now = list_locks(&*s).await.unwrap();
            let info = now[0].info.clone().unwrap();
            if info.heartbeat != first.heartbeat {
                assert_eq!(info.started, first.started);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lock.ensure_held().unwrap();
        lock.release().await.unwrap();
        assert!(list_locks(&*s).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_holder_that_could_not_refresh_for_half_the_stale_age_has_lost_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = BackupLock::acquire_with(storage(&dir), "h", LOCK_HEARTBEAT)
            .await
            .unwrap();
        lock.ensure_held().unwrap();
        {
            let mut h = lock.health.state.lock().unwrap();
            h.last_ok = SystemTime::now() - LOCK_STALE_AFTER / 2 - Duration::from_secs(5);
            h.last_error = Some("no space left".into());
        }
        match lock.ensure_held() {
            Err(Error::LockLost(msg)) => {
                assert!(
                    msg.contains(lock.key()) && msg.contains("no space left"),
                    "{msg}"
                )
            }
            other => panic!("{other:?}"),
        }
        lock.release().await.unwrap();
    }

    /// A backup whose lock was lost (suspended for longer than the stale
    /// age, say) must not write an index file either: a prune may have
    /// deleted its older packs as orphans meanwhile, and an index file
    /// naming them would make later backups deduplicate against blobs that
    /// no longer exist.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_that_lost_its_lock_writes_no_index_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let fast = crate::KdfParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        };
        let repo = Repository::init(s.clone(), b"pw", fast, crate::KeyMeta::default())
            .await
            .unwrap();
        let lock = BackupLock::acquire(&repo, "h").await.unwrap();
        let w = crate::BlobWriter::with_workers(repo.clone(), 1);
        let r = repo.clone();
        tokio::task::spawn_blocking(move || {
            w.add(
                crate::BlobKind::Data,
                b"written before the suspend".to_vec(),
            )
            .unwrap();
            {
                let mut h = lock.health.state.lock().unwrap();
                h.gap = Some(LOCK_STALE_AFTER * 4);
            }
            let err = w
                .finish()
                .expect_err("index written after the lock was lost");
            assert!(matches!(err, Error::LockLost(_)), "{err:?}");
            drop(lock);
            drop(r);
        })
        .await
        .unwrap();
        let index = s.list("index/").await.unwrap();
        assert!(index.is_empty(), "{index:?}");
    }

    #[tokio::test]
    async fn a_refresh_after_a_long_gap_does_not_make_the_lock_held_again() {
        // Suspended laptop / hung NFS / starved runtime: no refresh for longer
        // than half the stale age, then the heartbeat succeeds again. A prune
        // may have judged the lock stale during the gap, so it stays lost.
        let dir = tempfile::tempdir().unwrap();
        let lock = BackupLock::acquire_with(storage(&dir), "h", Duration::from_millis(20))
            .await
            .unwrap();
        lock.health.state.lock().unwrap().last_ok =
            SystemTime::now() - LOCK_STALE_AFTER / 2 - Duration::from_secs(5);
        // Wait for the next successful refresh.
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let h = lock.health.state.lock().unwrap();
            if SystemTime::now()
                .duration_since(h.last_ok)
                .unwrap_or_default()
                < Duration::from_secs(60)
            {
                break;
            }
        }
        match lock.ensure_held() {
            Err(Error::LockLost(msg)) => assert!(msg.contains("without a refresh"), "{msg}"),
            other => panic!("a refresh after a gap must not revive the lock: {other:?}"),
        }
        lock.release().await.unwrap();
    }

    /// A storage whose `put` is slow blocking work (like a write to a slow
    /// disk): dropping the future does not stop the write.
    #[derive(Debug)]
    struct SlowPut(LocalStorage);

    #[async_trait::async_trait]
    impl Storage for SlowPut {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn put(&self, key: &str, data: Vec<u8>) -> lifeboat_storage::Result<()> {
            let path = self.0.root().join(key);
            tokio::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(150));
                std::fs::write(path, data).unwrap();
            })
            .await
            .unwrap();
            Ok(())
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
        ) -> lifeboat_storage::Result<lifeboat_storage::ListPage> {
            self.0.list_page(prefix, start_after, limit).await
        }
        async fn delete(&self, key: &str) -> lifeboat_storage::Result<()> {
            self.0.delete(key).await
        }
    }

    #[tokio::test]
    async fn release_during_a_refresh_leaves_no_lock_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(SlowPut(LocalStorage::new(dir.path().join("repo"))));
        let lock = BackupLock::acquire_with(s.clone(), "h", Duration::from_millis(10))
            .await
            .unwrap();
        // The first refresh starts after 10 ms and takes 150 ms: release in it.
        tokio::time::sleep(Duration::from_millis(60)).await;
        lock.release().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let left = list_locks(&*s).await.unwrap();
        assert!(left.is_empty(), "a released lock came back: {left:?}");
    }

    #[tokio::test]
    async fn a_lock_without_heartbeat_goes_stale() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(&dir);
        let lock = BackupLock::acquire_with(s.clone(), "h", LOCK_HEARTBEAT)
            .await
            .unwrap();
        // What kill -9 leaves: the object stays, nobody refreshes it.
        drop(lock);
        let entry = &list_locks(&*s).await.unwrap()[0];
        let alive = entry.last_alive();
        assert!(!entry.is_stale(alive + LOCK_STALE_AFTER - Duration::from_secs(1)));
        assert!(entry.is_stale(alive + LOCK_STALE_AFTER + Duration::from_secs(1)));
        // An unreadable lock is judged by the storage's clock alone.
        let broken = LockEntry {
            meta: entry.meta.clone(),
            info: None,
        };
        assert_eq!(broken.last_alive(), entry.meta.last_modified);
    }

    #[test]
    fn a_holder_clock_far_ahead_cannot_keep_a_dead_lock_alive_forever() {
        let modified = SystemTime::now();
        let entry = LockEntry {
            meta: ObjectMeta {
                key: "locks/x".into(),
                size: 1,
                last_modified: modified,
            },
            info: Some(LockInfo {
                version: LOCK_VERSION,
                kind: "backup".into(),
                host: "h".into(),
                pid: 1,
                started: "2100-01-01T00:00:00Z".into(),
                heartbeat: "2100-01-01T00:00:00Z".into(),
            }),
        };
        assert_eq!(entry.last_alive(), modified + LOCK_STALE_AFTER);
        assert!(!entry.is_stale(modified + LOCK_STALE_AFTER));
        assert!(entry.is_stale(modified + 3 * LOCK_STALE_AFTER));
    }
}
