//! A reader that loaded the index before a backup in another session
//! finished must find that backup's snapshot and data (reloading the index
//! on a miss), never report it damaged. (`check` racing backups in other
//! processes is tested end to end in crates/cli/tests/cli_store.rs.)

use lifeboat_repo::{
    BlobKind, BlobWriter, Credentials, KdfParams, KeyMeta, Repository, Snapshot, Tree,
};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::Storage;
use std::sync::Arc;

/// Write one blob and a one-file tree as a new snapshot at `time`, like a backup.
async fn backup(
    repo: &Arc<Repository>,
    time: &str,
    content: &[u8],
) -> (lifeboat_repo::Id, Vec<u8>) {
    let (repo2, data) = (repo.clone(), content.to_vec());
    let tree = tokio::task::spawn_blocking(move || {
        let w = BlobWriter::with_workers(repo2, 1);
        let blob = w.add(BlobKind::Data, data.clone()).unwrap();
        let tree: Tree = serde_json::from_value(serde_json::json!({"nodes": [{
            "name": "f", "type": "file", "mode": 420, "mtime_ns": 0, "uid": 0, "gid": 0,
            "size": data.len(), "content": [blob.to_string()]
        }]}))
        .unwrap();
        let tree_id = w
            .add(BlobKind::Tree, serde_json::to_vec(&tree).unwrap())
            .unwrap();
        w.finish().unwrap();
        tree_id
    })
    .await
    .unwrap();
    let snap: Snapshot = serde_json::from_value(serde_json::json!({
        "version": lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        "time": time, "host": "h", "user": "u", "source": "s",
        "kind": "files", "paths": ["/f"], "tags": [], "tree": tree, "parent": null,
        "stats": lifeboat_repo::SnapshotStats::default(), "meta": {}
    }))
    .unwrap();
    (repo.save_snapshot(&snap).await.unwrap(), content.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_index_predates_a_backup_reads_it_after_reloading() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path().join("repo")));
    let fast = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let writer = Repository::init(storage.clone(), b"pw", fast, KeyMeta::default())
        .await
        .unwrap();
    backup(&writer, "2026-01-01T00:00:00Z", b"first backup").await;
    // The reader (restore latest / verify) loads the index now...
    let reader = Repository::open(
        storage.clone(),
        Credentials::Password(b"pw".to_vec().into()),
    )
    .await
    .unwrap();
    reader.load_index().await.unwrap();
    // ...and a backup in another session finishes before it lists snapshots.
    let (newest, content) = backup(
        &writer,
        "2026-01-02T00:00:00Z",
        b"second backup, finished meanwhile",
    )
    .await;
    let (id, snap) = reader.find_snapshot("latest", None).await.unwrap();
    assert_eq!(id, newest);
    let tree = reader.load_tree(&snap.tree).await.unwrap();
    let data = reader.read_blob(&tree.nodes[0].content[0]).await.unwrap();
    assert_eq!(data, content);
}

/// A reload that failed (an index file unreadable for a moment) must not
/// leave the reader believing it is up to date: once the file reads again,
/// the next miss reloads and finds the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_is_retried_on_the_next_miss() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path().join("repo")));
    let fast = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let writer = Repository::init(storage.clone(), b"pw", fast, KeyMeta::default())
        .await
        .unwrap();
    backup(&writer, "2026-01-01T00:00:00Z", b"first backup").await;
    let reader = Repository::open(
        storage.clone(),
        Credentials::Password(b"pw".to_vec().into()),
    )
    .await
    .unwrap();
    reader.load_index().await.unwrap();
    let before: Vec<String> = storage
        .list("index/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    let (_, content) = backup(&writer, "2026-01-02T00:00:00Z", b"second backup").await;
    let new_index = storage
        .list("index/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .find(|k| !before.contains(k))
        .expect("the second backup wrote an index file");
    let (_, snap) = writer.find_snapshot("latest", None).await.unwrap();
    let tree = writer.load_tree(&snap.tree).await.unwrap();
    let blob = tree.nodes[0].content[0];
    // The new index file is unreadable while the reader misses: the reload fails.
    let good = storage.get(&new_index).await.unwrap();
    storage.put(&new_index, b"garbage".to_vec()).await.unwrap();
    assert!(reader.read_blob(&blob).await.is_err());
    // It reads again: the next miss must reload, not trust the failed reload.
    storage.put(&new_index, good).await.unwrap();
    assert_eq!(reader.read_blob(&blob).await.unwrap(), content);
}
