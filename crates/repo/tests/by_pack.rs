//! `by_pack::read_by_pack` (what restore uses): every blob asked for comes
//! back once and checked, and each pack is read with one request however
//! many of its blobs are needed; the tree cache serves tree blobs from disk.
//! The storage is a real local directory; a wrapper only counts requests.

use async_trait::async_trait;
use lifeboat_repo::cache::{Cache, DEFAULT_MAX_BYTES};
use lifeboat_repo::{BlobKind, BlobWriter, Credentials, Id, KdfParams, KeyMeta, Repository};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::{ListPage, ObjectMeta, Storage, StorageError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const FAST: KdfParams = KdfParams {
    m_cost: 64,
    t_cost: 1,
    p_cost: 1,
};

/// Local storage that counts reads of packs (`data/...`).
#[derive(Debug)]
struct Counting {
    inner: LocalStorage,
    pack_reads: AtomicUsize,
}

#[async_trait]
impl Storage for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), StorageError> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        if key.starts_with("data/") {
            self.pack_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        if key.starts_with("data/") {
            self.pack_reads.fetch_add(1, Ordering::SeqCst);
        }
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
        self.inner.delete(key).await
    }
}

fn blob(i: u32) -> Vec<u8> {
    // Distinct, incompressible-ish 48 KiB blobs.
    let mut out = Vec::with_capacity(48 << 10);
    let mut x = u64::from(i) * 0x9e37_79b9_7f4a_7c15 + 1;
    while out.len() < 48 << 10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pack_is_read_once_and_every_blob_comes_back_checked() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let repo = Repository::init(local, b"pw", FAST, KeyMeta::default())
        .await
        .unwrap();
    let writer_repo = repo.clone();
    // 500 x 48 KiB: about 24 MiB, two packs of 16 MiB at most.
    let ids: Vec<(Id, Vec<u8>)> = tokio::task::spawn_blocking(move || {
        let w = BlobWriter::with_workers(writer_repo, 2);
        let ids = (0..500)
            .map(|i| (w.add(BlobKind::Data, blob(i)).unwrap(), blob(i)))
            .collect();
        w.finish().unwrap();
        ids
    })
    .await
    .unwrap();
    let counting = Arc::new(Counting {
        inner: LocalStorage::new(dir.path()),
        pack_reads: AtomicUsize::new(0),
    });
    let storage: Arc<dyn Storage> = counting.clone();
    let reader = Repository::open(storage, Credentials::Password(b"pw".to_vec().into()))
        .await
        .unwrap();
    reader.load_index().await.unwrap();
    let packs = reader.index().packs().len();
    assert!(packs >= 2, "{packs} packs");
    let want: HashMap<Id, Vec<u8>> = ids.into_iter().collect();
    // Every other blob, and one asked for twice.
    let mut ask: Vec<Id> = want.keys().copied().step_by(2).collect();
    ask.push(ask[0]);
    let got = Mutex::new(HashMap::new());
    let r = reader.clone();
    let asked = ask.clone();
    tokio::task::spawn_blocking(move || {
        lifeboat_repo::by_pack::read_by_pack(&r, asked, 3, |id, data| {
            assert!(
                got.lock().unwrap().insert(*id, data).is_none(),
                "{id} twice"
            );
            Ok(())
        })
        .unwrap();
        let got = got.into_inner().unwrap();
        assert_eq!(got.len(), ask.len() - 1);
        for (id, data) in &got {
            assert_eq!(&want[id], data, "blob {id}");
        }
    })
    .await
    .unwrap();
    assert_eq!(
        counting.pack_reads.load(Ordering::SeqCst),
        packs,
        "one read per pack"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_blobs_come_from_the_cache_once_it_holds_their_pack() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let repo = Repository::init(local, b"pw", FAST, KeyMeta::default())
        .await
        .unwrap();
    let writer_repo = repo.clone();
    let trees: Vec<Id> = tokio::task::spawn_blocking(move || {
        let w = BlobWriter::with_workers(writer_repo, 1);
        let ids = (0..20)
            .map(|i| {
                let t = format!("{{\"nodes\": [], \"n\": {i}}}");
                w.add(BlobKind::Tree, t.into_bytes()).unwrap()
            })
            .collect();
        w.finish().unwrap();
        ids
    })
    .await
    .unwrap();
    let counting = Arc::new(Counting {
        inner: LocalStorage::new(dir.path()),
        pack_reads: AtomicUsize::new(0),
    });
    let storage: Arc<dyn Storage> = counting.clone();
    let reader = Repository::open(storage, Credentials::Password(b"pw".to_vec().into()))
        .await
        .unwrap();
    let id = reader.config().id.clone();
    reader.use_cache(Cache::open(cache_dir.path(), &id, DEFAULT_MAX_BYTES).unwrap());
    reader.load_index().await.unwrap();
    for t in &trees {
        reader.load_tree(t).await.unwrap();
    }
    assert_eq!(
        counting.pack_reads.load(Ordering::SeqCst),
        1,
        "the tree pack, once"
    );
    for t in &trees {
        reader.load_tree(t).await.unwrap();
    }
    assert_eq!(
        counting.pack_reads.load(Ordering::SeqCst),
        1,
        "then only the cache"
    );
}
