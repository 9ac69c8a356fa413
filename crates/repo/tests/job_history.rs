//! Job records (docs/FORMAT.md §19) in a real local repository: stored
//! sealed under `jobs/`, listed in order, a record written twice listed once, a
//! damaged record reported without hiding the others, and `check` content
//! with them.

use lifeboat_repo::jobs::{self, JobEvent, JobFigures, JobRecord, JobResult};
use lifeboat_repo::{check, CheckOptions, KdfParams, KeyMeta, Repository};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::Storage;
use std::sync::Arc;

fn record(event: JobEvent, job: &str, started: &str) -> JobRecord {
    let finished = event == JobEvent::Finished;
    JobRecord {
        version: jobs::JOB_VERSION,
        event,
        job: job.into(),
        source: "main".into(),
        kind: "logical".into(),
        slot: "2026-01-01T02:00:00Z".into(),
        host: "h".into(),
        pid: 7,
        started: started.into(),
        finished: finished.then(|| "2026-01-01T02:00:09Z".into()),
        result: finished.then_some(JobResult::Ok),
        figures: JobFigures {
            bytes: finished.then_some(42),
            ..JobFigures::default()
        },
        error: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_records_are_sealed_listed_in_order_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root.clone()));
    let fast = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let repo = Repository::init(storage.clone(), b"pw", fast, KeyMeta::default())
        .await
        .unwrap();
    let late_start = record(JobEvent::Started, "bb", "2026-01-01T03:00:00Z");
    let finish = record(JobEvent::Finished, "aa", "2026-01-01T02:00:01Z");
    let start = record(JobEvent::Started, "aa", "2026-01-01T02:00:01Z");
    let ids = [
        jobs::put_job(&repo, &late_start).await.unwrap(),
        jobs::put_job(&repo, &finish).await.unwrap(),
        jobs::put_job(&repo, &start).await.unwrap(),
    ];
    // A retried write (fresh nonce, so a second object) is one record.
    assert_ne!(jobs::put_job(&repo, &start).await.unwrap(), ids[2]);
    let listed = storage.list("jobs/").await.unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    let raw = std::fs::read(root.join(format!("jobs/{}", ids[1]))).unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains("logical"),
        "records are sealed"
    );
    let (got, bad) = jobs::jobs_checked(&repo).await.unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(got, vec![start.clone(), finish.clone(), late_start.clone()]);

    // A damaged record is reported and hides nothing else.
    let victim = root.join(format!("jobs/{}", ids[0]));
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let (got, bad) = jobs::jobs_checked(&repo).await.unwrap();
    assert_eq!(got, vec![start, finish]);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, ids[0]);

    // `verify` of the repository is not disturbed by the history.
    let report = check(&repo, CheckOptions::default()).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
