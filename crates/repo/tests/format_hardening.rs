//! Attacks and accidents against the format's guarantees, at the library
//! level: a read-only-compatible repository is never written, whoever calls
//! the writer, and a key file of another repository that opens with the same
//! passphrase does not lock the repository's own keys out.

use lifeboat_repo::config::encode_payload;
use lifeboat_repo::keys::{KdfParams, KeyMeta};
use lifeboat_repo::pack::BlobKind;
use lifeboat_repo::repository::{Credentials, Repository};
use lifeboat_repo::writer::BlobWriter;
use lifeboat_repo::Error;
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::Storage;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

const FAST: KdfParams = KdfParams {
    m_cost: 64,
    t_cost: 1,
    p_cost: 1,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn init(dir: &Path, pw: &[u8]) -> Arc<Repository> {
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir));
    Repository::init(storage, pw, FAST, KeyMeta::default())
        .await
        .unwrap()
}

async fn open(dir: &Path, pw: &[u8]) -> lifeboat_repo::Result<Arc<Repository>> {
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir));
    Repository::open(storage, Credentials::Password(Zeroizing::new(pw.to_vec()))).await
}

fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn blob_writer_refuses_a_read_only_compatible_repository_and_writes_nothing() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let repo = init(dir.path(), b"pw").await;
        // What a newer lifeboat writes: an ro-compatible feature, re-MAC'd.
        let cfg = dir.path().join("config");
        let env: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        let mut payload: serde_json::Value =
            serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
        payload["features"]["ro_compatible"] = serde_json::json!(["future-thing"]);
        let bytes = encode_payload(serde_json::to_string(&payload).unwrap(), repo.keys());
        std::fs::write(&cfg, bytes).unwrap();
        drop(repo);

        let repo = open(dir.path(), b"pw").await.unwrap();
        let before = files_below(dir.path());
        let r = repo.clone();
        let (added, finished) = tokio::task::spawn_blocking(move || {
            // The writer is used without calling ensure_writable first, as a
            // new write path might.
            let w = BlobWriter::with_workers(r, 1);
            let added = w.add(BlobKind::Data, b"some new data".to_vec());
            (added, w.finish())
        })
        .await
        .unwrap();
        match added {
            Err(Error::Unsupported(m)) => {
                assert!(m.contains("future-thing") && m.contains("not write"), "{m}")
            }
            other => panic!("writer accepted a blob for a read-only repository: {other:?}"),
        }
        let _ = finished;
        assert_eq!(files_below(dir.path()), before, "nothing was written");
    });
}

#[test]
fn another_repositorys_key_with_the_same_passphrase_does_not_lock_out() {
    let rt = rt();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let repo_a = init(a.path(), b"shared passphrase").await;
        let a_id = repo_a.config().id.clone();
        drop(repo_a);
        init(b.path(), b"shared passphrase").await;
        // B's key file planted in A under a name listed before A's own key.
        let b_key = std::fs::read_dir(b.path().join("keys"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::copy(&b_key, a.path().join("keys").join("0".repeat(64))).unwrap();

        let repo = open(a.path(), b"shared passphrase")
            .await
            .expect("A's own key still opens A");
        assert_eq!(repo.config().id, a_id);
        drop(repo);

        // With only the foreign key left, the error says the config and
        // the key do not match (not a wrong password).
        for e in std::fs::read_dir(a.path().join("keys")).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_str().unwrap() != "0".repeat(64) {
                std::fs::remove_file(p).unwrap();
            }
        }
        match open(a.path(), b"shared passphrase").await {
            Err(Error::Corrupt(m)) => {
                assert!(
                    m.contains("MAC mismatch") && m.contains("another repository"),
                    "{m}"
                )
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened A with B's master key"),
        }
    });
}
