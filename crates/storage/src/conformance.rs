//! The conformance suite every [`Storage`] backend must pass.
//!
//! Call [`run_all`] from a backend's tests with a fresh, empty storage.

use crate::{Storage, StorageError};

/// Run every conformance check against an empty storage; panics on failure.
pub async fn run_all(s: &dyn Storage) {
    put_get_roundtrip(s).await;
    put_replaces_atomically(s).await;
    missing_is_not_found(s).await;
    ranges_and_short_reads(s).await;
    list_is_recursive_and_prefixed(s).await;
    delete_is_idempotent(s).await;
    invalid_keys_are_refused(s).await;
}

async fn put_get_roundtrip(s: &dyn Storage) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    s.put("conf/a/one", data.clone()).await.unwrap();
    assert_eq!(s.get("conf/a/one").await.unwrap(), data);
    assert_eq!(s.stat("conf/a/one").await.unwrap(), Some(data.len() as u64));
    s.put("conf/empty", Vec::new()).await.unwrap();
    assert_eq!(s.get("conf/empty").await.unwrap(), Vec::<u8>::new());
}

async fn put_replaces_atomically(s: &dyn Storage) {
    s.put("conf/replace", b"old".to_vec()).await.unwrap();
    s.put("conf/replace", b"newer".to_vec()).await.unwrap();
    assert_eq!(s.get("conf/replace").await.unwrap(), b"newer");
}

async fn missing_is_not_found(s: &dyn Storage) {
    assert!(matches!(
        s.get("conf/missing").await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.get_range("conf/missing", 0, 1).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(s.stat("conf/missing").await.unwrap(), None);
}

async fn ranges_and_short_reads(s: &dyn Storage) {
    s.put("conf/range", b"0123456789".to_vec()).await.unwrap();
    assert_eq!(s.get_range("conf/range", 3, 4).await.unwrap(), b"3456");
    assert_eq!(s.get_range("conf/range", 10, 0).await.unwrap(), b"");
    assert!(matches!(
        s.get_range("conf/range", 8, 5).await,
        Err(StorageError::ShortRead { size: 10, .. })
    ));
}

async fn list_is_recursive_and_prefixed(s: &dyn Storage) {
    s.put("list/x/1", b"a".to_vec()).await.unwrap();
    s.put("list/x/y/2", b"bb".to_vec()).await.unwrap();
    s.put("listother/3", b"c".to_vec()).await.unwrap();
    let keys: Vec<(String, u64)> = s
        .list("list/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.key, m.size))
        .collect();
    assert_eq!(keys, vec![("list/x/1".into(), 1), ("list/x/y/2".into(), 2)]);
    assert!(s.list("nothing-here/").await.unwrap().is_empty());
}

async fn delete_is_idempotent(s: &dyn Storage) {
    s.put("conf/del", b"x".to_vec()).await.unwrap();
    s.delete("conf/del").await.unwrap();
    assert_eq!(s.stat("conf/del").await.unwrap(), None);
    s.delete("conf/del").await.unwrap();
}

async fn invalid_keys_are_refused(s: &dyn Storage) {
    assert!(matches!(
        s.put("../escape", vec![]).await,
        Err(StorageError::InvalidKey(_))
    ));
    assert!(matches!(
        s.get("/etc/passwd").await,
        Err(StorageError::InvalidKey(_))
    ));
}
