//! The S3 backend against a real local S3 server (moto_server): the
//! conformance suite, conditional creates raced by several processes, and
//! listings past 1,000 keys.

use lifeboat_storage::conformance::{check_race, race_put_if_absent, run_all};
use lifeboat_storage::moto::{MotoServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use lifeboat_storage::s3::{S3Options, S3Storage};
use lifeboat_storage::{Storage, StorageError};
use std::process::{Command, Stdio};

fn storage(endpoint: &str, url: &str) -> S3Storage {
    let mut o = S3Options::from_url(url).unwrap();
    o.endpoint = Some(endpoint.to_string());
    o.path_style = true;
    o.region = Some("us-east-1".into());
    o.access_key_id = Some(ACCESS_KEY_ID.into());
    o.secret_access_key = Some(SECRET_ACCESS_KEY.into());
    S3Storage::new(o).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_s3_with_and_without_a_prefix() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("conf");
    run_all(&storage(&moto.endpoint(), "s3://conf/some/prefix")).await;
    // Objects outside the prefix are invisible to a prefixed storage...
    let other = storage(&moto.endpoint(), "s3://conf/some/prefix2");
    assert!(other.list("").await.unwrap().is_empty());
    // ... and a storage at the bucket's root sees them under the prefix.
    moto.create_bucket("root");
    run_all(&storage(&moto.endpoint(), "s3://root")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_objects_round_trip_and_listings_page_past_1000_keys() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("big");
    let s = storage(&moto.endpoint(), "s3://big/r");
    let len = lifeboat_storage::s3::MULTIPART_THRESHOLD + 3 * 1024 * 1024 + 7;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    s.put("data/large", data.clone()).await.unwrap();
    assert!(s.get("data/large").await.unwrap() == data);
    assert_eq!(
        s.stat("data/large").await.unwrap().unwrap().size,
        len as u64
    );
    drop(data);

    let n = 2_345usize;
    let keys: Vec<String> = (0..n)
        .map(|i| format!("many/{:02x}/k{i:05}", i % 7))
        .collect();
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for chunk in keys.chunks(n.div_ceil(8)) {
        let (s, chunk) = (s.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for k in chunk {
                s.put(&k, k.as_bytes().to_vec()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut want = keys.clone();
    want.sort();
    let got: Vec<String> = s
        .list("many/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(got.len(), n);
    assert_eq!(got, want);
    // list_page walks the same keys in pages of 1000.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.list_page("many/", cursor.as_deref(), 1000).await.unwrap();
        paged.extend(page.objects.into_iter().map(|m| m.key));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, want);
}

#[tokio::test]
async fn a_missing_bucket_is_a_clear_error_naming_the_fix() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = storage(&moto.endpoint(), "s3://no-such-bucket/x");
    let err = s.put("config", b"x".to_vec()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Remote { .. }), "{err:?}");
    assert!(
        msg.contains("bucket does not exist") && !msg.contains('\n'),
        "{msg}"
    );
    assert!(matches!(
        s.get("config").await,
        Err(StorageError::Remote { .. })
    ));
}

#[tokio::test]
async fn stat_and_ranged_reads_on_a_missing_bucket_name_the_bucket_not_a_missing_object() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let s = storage(&moto.endpoint(), "s3://no-such-bucket/x");
    // HEAD answers 404 without a body for a missing bucket too.
    let err = s.stat("config").await.unwrap_err();
    assert!(matches!(err, StorageError::Remote { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-bucket")
            && msg.contains("bucket does not exist")
            && msg.contains("create it"),
        "{msg}"
    );
    let err = s.get_range("data/00/p", 0, 10).await.unwrap_err();
    assert!(matches!(err, StorageError::Remote { .. }), "{err:?}");
    // In an existing bucket a missing object is still just absent.
    moto.create_bucket("there");
    let s = storage(&moto.endpoint(), "s3://there/x");
    assert!(s.stat("config").await.unwrap().is_none());
    assert!(matches!(
        s.get("config").await,
        Err(StorageError::NotFound { .. })
    ));
}

#[tokio::test]
async fn refused_credentials_name_the_credentials_and_the_fix_even_without_a_body() {
    let Some((moto, id, secret)) = MotoServer::start_with_auth("guarded") else {
        return;
    };
    // The server's own user works.
    let mut o = S3Options::from_url("s3://guarded/r").unwrap();
    o.endpoint = Some(moto.endpoint());
    o.path_style = true;
    o.region = Some("us-east-1".into());
    o.access_key_id = Some(id.clone());
    o.secret_access_key = Some(secret);
    let good = S3Storage::new(o.clone()).unwrap();
    good.put("config", b"x".to_vec()).await.unwrap();
    assert!(good.stat("config").await.unwrap().is_some());
    // A wrong secret, and an unknown user: HEAD (403, no body), GET, PUT.
    o.secret_access_key = Some("wrong-secret".into());
    let wrong_secret = S3Storage::new(o.clone()).unwrap();
    let unknown = storage(&moto.endpoint(), "s3://guarded/r");
    for s in [&wrong_secret, &unknown] {
        let errs = [
            s.stat("config").await.unwrap_err(),
            s.get("config").await.unwrap_err(),
            s.put("other", b"y".to_vec()).await.unwrap_err(),
        ];
        for err in errs {
            assert!(matches!(err, StorageError::Remote { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains("credentials")
                    && msg.contains("AWS_ACCESS_KEY_ID")
                    && !msg.contains('\n'),
                "{msg}"
            );
        }
    }
}

const RACE_ENDPOINT: &str = "LIFEBOAT_TEST_S3_RACE_ENDPOINT";
const RACE_KEY: &str = "LIFEBOAT_TEST_S3_RACE_KEY";
const RACE_TAG: &str = "LIFEBOAT_TEST_S3_RACE_TAG";

/// One racing process (re-executed by the test below); a no-op otherwise.
#[tokio::test]
async fn s3_race_child() {
    let (Ok(ep), Ok(key), Ok(tag)) = (
        std::env::var(RACE_ENDPOINT),
        std::env::var(RACE_KEY),
        std::env::var(RACE_TAG),
    ) else {
        return;
    };
    let s = storage(&ep, "s3://race/r");
    let won = race_put_if_absent(&s, &key, tag.parse().unwrap()).await;
    println!("RACE-RESULT {}", if won { "won" } else { "lost" });
}

#[tokio::test]
async fn put_if_absent_races_across_processes_on_s3() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("race");
    let s = storage(&moto.endpoint(), "s3://race/r");
    let exe = std::env::current_exe().unwrap();
    for round in 0..3 {
        let key = format!("locks/race-{round}");
        let children: Vec<(u8, std::process::Child)> = (1..=6u8)
            .map(|tag| {
                let child = Command::new(&exe)
                    .args([
                        "s3_race_child",
                        "--exact",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(RACE_ENDPOINT, moto.endpoint())
                    .env(RACE_KEY, &key)
                    .env(RACE_TAG, tag.to_string())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                (tag, child)
            })
            .collect();
        let mut wins = Vec::new();
        for (tag, child) in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "racer {tag} failed: {out:?}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let won = stdout.contains("RACE-RESULT won");
            assert!(
                won || stdout.contains("RACE-RESULT lost"),
                "racer {tag}: {stdout}"
            );
            wins.push((tag, won));
        }
        check_race(&s, &key, &wins).await;
    }
}
