//! Heap use of the read paths against the repository's size (docs/FORMAT.md,
//! "Memory"), measured with a counting global allocator on a real local
//! repository: loading the index, `check`, and listing snapshots.
//!
//! The tests share the allocator's counters, so they run one at a time
//! (a lock) and measure the peak above the heap in use when they start.
//! The allocator forwards to the system allocator; counting needs the one
//! `unsafe impl GlobalAlloc` below (no crate keeps a resettable peak).
#![allow(unsafe_code)]

use lifeboat_repo::index::Index;
use lifeboat_repo::pack::BlobKind;
use lifeboat_repo::{
    check, BlobWriter, CheckOptions, Credentials, Id, KdfParams, KeyMeta, Node, NodeKind,
    Repository, Snapshot, SnapshotStats, Tree,
};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::Storage;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // The net change (large blocks are remapped, not copied).
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `f` and return its result and the peak heap above the start.
async fn peak_of<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

const FILES_PER_DIR: usize = 1000;

fn fast_kdf() -> KdfParams {
    KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    }
}

fn snapshot(tree: Id, meta: serde_json::Value) -> Snapshot {
    Snapshot {
        version: lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        time: "2026-01-01T00:00:00Z".into(),
        host: "h".into(),
        user: "u".into(),
        source: "files".into(),
        kind: lifeboat_repo::SnapshotKind::Files,
        paths: vec!["/data".into()],
        tags: vec![],
        tree,
        parent: None,
        stats: SnapshotStats::default(),
        meta,
    }
}

/// A repository holding `files` one-blob files, `FILES_PER_DIR` per
/// directory, in one snapshot; returns its root tree.
async fn build(storage: Arc<dyn Storage>, files: usize) -> Id {
    let repo = Repository::init(storage, b"pw", fast_kdf(), KeyMeta::default())
        .await
        .unwrap();
    let writer_repo = repo.clone();
    let root = tokio::task::spawn_blocking(move || {
        let w = BlobWriter::with_workers(writer_repo, 2);
        let mut root = Tree::default();
        for d in 0..files.div_ceil(FILES_PER_DIR) {
            let mut dir = Tree::default();
            for i in d * FILES_PER_DIR..((d + 1) * FILES_PER_DIR).min(files) {
                let mut node = Node::new(format!("f{i:07}").as_bytes(), NodeKind::File);
                let data = format!("memory test file {i}\n").into_bytes();
                node.size = data.len() as u64;
                node.content = vec![w.add(BlobKind::Data, data).unwrap()];
                dir.nodes.push(node);
            }
            let mut node = Node::new(format!("d{d:04}").as_bytes(), NodeKind::Dir);
            node.subtree = Some(
                w.add(BlobKind::Tree, serde_json::to_vec(&dir).unwrap())
                    .unwrap(),
            );
            root.nodes.push(node);
        }
        let root = w
            .add(BlobKind::Tree, serde_json::to_vec(&root).unwrap())
            .unwrap();
        w.finish().unwrap();
        root
    })
    .await
    .unwrap();
    repo.save_snapshot(&snapshot(root, serde_json::Value::Null))
        .await
        .unwrap();
    root
}

async fn open(storage: Arc<dyn Storage>) -> Arc<Repository> {
    Repository::open(storage, Credentials::Password(b"pw".to_vec().into()))
        .await
        .unwrap()
}

/// Bytes of the largest index file: loading holds one file twice (sealed and opened).
async fn largest_index_file(storage: &dyn Storage) -> usize {
    let files = storage.list("index/").await.unwrap();
    files.iter().map(|m| m.size as usize).max().unwrap_or(0)
}

const BLOBS: usize = 150_000;

/// Loading the index costs its entries plus one index file (sealed and
/// opened) at a time: no intermediate records, no doubling of the vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_the_index_costs_its_entries_plus_one_file() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    build(storage.clone(), BLOBS).await;
    let repo = open(storage.clone()).await;
    let file = largest_index_file(&*storage).await;
    let ((), peak) = peak_of(async { repo.load_index().await.unwrap() }).await;
    let index: Arc<Index> = repo.index();
    assert!(index.len() > BLOBS);
    let bound = index.heap_bytes() + 2 * file + (1 << 20);
    eprintln!(
        "load_index: {} blobs, peak heap {peak} bytes ({:.1} per blob)",
        index.len(),
        peak as f64 / index.len() as f64
    );
    assert!(
        peak <= bound,
        "loading {} blobs peaked at {peak} bytes of heap ({:.0} per blob), over {bound} \
         (entries {} + twice the largest index file {file} + 1 MiB)",
        index.len(),
        peak as f64 / index.len() as f64,
        index.heap_bytes()
    );
    // Index files stay bounded whatever the repository's size.
    let per_file = file / 42;
    assert!(
        per_file <= 2 * (1 << 16),
        "an index file of {per_file} blobs"
    );
}

/// `check` (verify) costs the index plus a few bytes per blob: no copy of
/// the index grouped by pack, no cache of every tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_costs_the_index_plus_a_few_bytes_per_blob() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    build(storage.clone(), BLOBS).await;
    let file = largest_index_file(&*storage).await;
    for read_data in [None, Some(100.0)] {
        let repo = open(storage.clone()).await;
        let opts = CheckOptions {
            read_data_percent: read_data,
            read_data_rotation: None,
        };
        let (report, peak) = peak_of(check(&repo, opts)).await;
        let report = report.unwrap();
        assert!(report.is_ok(), "{report:?}");
        let index = repo.index();
        // The index, one index file while loading, 8 bytes per blob for the
        // grouping by pack, with --read-data one pack per verifier (one per
        // core) plus the one being fetched, and 2 MiB for the rest (one
        // directory's tree, the storage listing).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pack = if read_data.is_some() {
            (cores + 1) * (17 << 20)
        } else {
            0
        };
        let bound = index.heap_bytes() + 2 * file + 8 * index.len() + pack + (2 << 20);
        eprintln!(
            "check (read_data {read_data:?}): {} blobs, peak heap {peak} bytes ({:.1} per blob)",
            index.len(),
            peak as f64 / index.len() as f64
        );
        assert!(
            peak <= bound,
            "check (read_data {read_data:?}) of {} blobs peaked at {peak} bytes of heap \
             ({:.0} per blob), over {bound}",
            index.len(),
            peak as f64 / index.len() as f64
        );
    }
}

/// Listing snapshots does not hold every snapshot's `meta`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_snapshots_does_not_hold_their_meta() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let root = build(storage.clone(), 10).await;
    let repo = open(storage.clone()).await;
    let tables: Vec<_> = (0..3000)
        .map(|i| serde_json::json!({"schema": "public", "name": format!("table_{i}"), "rows": i}))
        .collect();
    let meta = serde_json::json!({ "tables": tables });
    for _ in 0..40 {
        repo.save_snapshot(&snapshot(root, meta.clone()))
            .await
            .unwrap();
    }
    let largest = storage
        .list("snapshots/")
        .await
        .unwrap()
        .iter()
        .map(|m| m.size as usize)
        .max()
        .unwrap();
    let (list, peak) = peak_of(repo.snapshots()).await;
    assert_eq!(list.unwrap().len(), 41);
    // One snapshot file sealed and opened at a time, plus the short listing;
    // headroom for what other threads of the test process allocate meanwhile,
    // yet well under the 41 x `largest` a listing holding every meta needs.
    let bound = 8 * largest + (1 << 20);
    eprintln!("snapshots(): 41 snapshots of {largest} bytes, peak heap {peak} bytes");
    assert!(
        peak <= bound,
        "listing 41 snapshots peaked at {peak} bytes of heap, over {bound} \
         (each snapshot file is up to {largest} bytes)"
    );
    let (_, full) = repo.find_snapshot("latest", None).await.unwrap();
    assert_eq!(full.meta, meta, "the whole snapshot still has its meta");
}
