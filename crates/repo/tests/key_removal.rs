//! `Repository::remove_key` against a concurrent `key remove`: two sessions,
//! each opened with a different key, each removing the other's key. The
//! interleaving is made deterministic by a storage that, at the first
//! delete of a key file, first carries out the other session's delete
//! (which had passed its own check at the same time).

use async_trait::async_trait;
use lifeboat_repo::{Credentials, Error, KdfParams, KeyMeta, Repository};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::{ListPage, ObjectMeta, Storage, StorageError};
use std::sync::{Arc, Mutex};

const FAST: KdfParams = KdfParams {
    m_cost: 64,
    t_cost: 1,
    p_cost: 1,
};

/// Local storage whose first `delete` of a key file is preceded by the
/// delete of `also` (the other session's removal landing in between).
#[derive(Debug)]
struct RacingDeletes {
    inner: LocalStorage,
    also: Mutex<Option<String>>,
}

#[async_trait]
impl Storage for RacingDeletes {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StorageError> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        self.inner.get_range(key, offset, len).await
    }
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<(), StorageError> {
        self.inner.put_if_absent(key, data).await
    }
    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        self.inner.stat(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StorageError> {
        self.inner.list_page(prefix, start_after, limit).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let other = self.also.lock().unwrap().take();
        if let Some(other) = other {
            self.inner.delete(&other).await?;
        }
        self.inner.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_key_removals_never_leave_zero_keys() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let first = Repository::init(local.clone(), b"one", FAST, KeyMeta::default())
        .await
        .unwrap();
    let k1 = first.key_in_use().unwrap();
    let k2 = first
        .add_key(b"two", FAST, KeyMeta::default())
        .await
        .unwrap();

    // Session A (opened with "one") removes k2 while session B (opened
    // with "two") removes k1: both checks saw two usable keys.
    let racing = Arc::new(RacingDeletes {
        inner: LocalStorage::new(dir.path()),
        also: Mutex::new(Some(format!("keys/{k1}"))),
    });
    let a = Repository::open(
        racing,
        Credentials::Password(zeroize::Zeroizing::new(b"one".to_vec())),
    )
    .await
    .unwrap();
    assert_eq!(a.key_in_use(), Some(k1));
    let err = a.remove_key(&k2).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("removed at the same time") && msg.contains("put back"),
        "{msg}"
    );

    // k2 is back and still opens the repository; k1 is gone (B's removal won).
    let left: Vec<_> = first.list_keys().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].id, k2);
    assert!(left[0].usable());
    let reopened = Repository::open(
        local.clone(),
        Credentials::Password(zeroize::Zeroizing::new(b"two".to_vec())),
    )
    .await
    .unwrap();
    assert_eq!(reopened.key_in_use(), Some(k2));
    assert!(matches!(
        Repository::open(
            local,
            Credentials::Password(zeroize::Zeroizing::new(b"one".to_vec()))
        )
        .await,
        Err(Error::WrongPassword(_))
    ));
}
