//! Which scheduled jobs are due, from the schedule and the job history
//! (pure functions, no I/O).
//!
//! A job is due when its latest slot at or before now has no finished run
//! (`ok` or `failed`) for that slot or a later one: after downtime only the
//! latest missed slot is made up, once, not every slot missed. A run that
//! was `interrupted` (its process died) does not count, so the slot is
//! retried, but only once: after two interrupted runs of one slot the job
//! waits for its next slot (a job that kills its process every time must not
//! loop).

use crate::schedule::JobKind;
use jiff::Timestamp;
use lifeboat_repo::jobs::{JobEvent, JobRecord, JobResult};

/// Interrupted runs of one slot after which it is not retried again.
pub const MAX_INTERRUPTED_PER_SLOT: usize = 2;

/// The slot a record ran for, when it parses.
fn slot_of(r: &JobRecord) -> Option<Timestamp> {
    r.slot.parse().ok()
}

/// Whether the job `kind` of `source`, whose latest slot is `latest`, is due.
pub fn is_due(history: &[JobRecord], source: &str, kind: JobKind, latest: Timestamp) -> bool {
    let mut interrupted = 0;
    for r in finished(history, source, kind) {
        if slot_of(r).is_none_or(|s| s < latest) {
            continue;
        }
        match r.result {
            Some(JobResult::Interrupted) => interrupted += 1,
            _ => return false,
        }
    }
    interrupted < MAX_INTERRUPTED_PER_SLOT
}

fn finished<'a>(
    history: &'a [JobRecord],
    source: &'a str,
    kind: JobKind,
) -> impl Iterator<Item = &'a JobRecord> {
    history.iter().filter(move |r| {
        r.event == JobEvent::Finished && r.source == source && r.kind == kind.as_str()
    })
}

/// Started records of `source` without a finished record: jobs running
/// now, or whose process died.
pub fn unfinished<'a>(history: &'a [JobRecord], source: &str) -> Vec<&'a JobRecord> {
    let done: std::collections::HashSet<&str> = history
        .iter()
        .filter(|r| r.event == JobEvent::Finished)
        .map(|r| r.job.as_str())
        .collect();
    history
        .iter()
        .filter(|r| r.event == JobEvent::Started && r.source == source)
        .filter(|r| !done.contains(r.job.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_repo::jobs::{JobFigures, JOB_VERSION};

    fn rec(job: &str, event: JobEvent, slot: &str, result: Option<JobResult>) -> JobRecord {
        JobRecord {
            version: JOB_VERSION,
            event,
            job: job.into(),
            source: "main".into(),
            kind: "logical".into(),
            slot: slot.into(),
            host: "h".into(),
            pid: 1,
            started: slot.into(),
            finished: None,
            result,
            figures: JobFigures::default(),
            error: None,
        }
    }

    const T2: &str = "2026-12-03T02:00:00Z";
    const T1: &str = "2026-12-02T02:00:00Z";

    #[test]
    fn a_slot_is_due_until_a_run_for_it_finished() {
        let latest: Timestamp = T2.parse().unwrap();
        assert!(is_due(&[], "main", JobKind::Logical, latest), "never ran");
        let old = vec![rec("a", JobEvent::Finished, T1, Some(JobResult::Ok))];
        assert!(
            is_due(&old, "main", JobKind::Logical, latest),
            "ran for an older slot"
        );
        let failed = vec![rec("b", JobEvent::Finished, T2, Some(JobResult::Failed))];
        assert!(
            !is_due(&failed, "main", JobKind::Logical, latest),
            "a failed run waits for the next slot"
        );
        assert!(is_due(&failed, "main", JobKind::Prune, latest), "per kind");
        assert!(
            is_due(&failed, "other", JobKind::Logical, latest),
            "per source"
        );
    }

    #[test]
    fn an_interrupted_slot_is_retried_once() {
        let latest: Timestamp = T2.parse().unwrap();
        let once = vec![rec(
            "a",
            JobEvent::Finished,
            T2,
            Some(JobResult::Interrupted),
        )];
        assert!(is_due(&once, "main", JobKind::Logical, latest));
        let mut twice = once.clone();
        twice.push(rec(
            "b",
            JobEvent::Finished,
            T2,
            Some(JobResult::Interrupted),
        ));
        assert!(!is_due(&twice, "main", JobKind::Logical, latest));
    }

    #[test]
    fn started_without_finished_is_unfinished() {
        let h = vec![
            rec("a", JobEvent::Started, T1, None),
            rec("a", JobEvent::Finished, T1, Some(JobResult::Ok)),
            rec("b", JobEvent::Started, T2, None),
        ];
        let u = unfinished(&h, "main");
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].job, "b");
        assert!(unfinished(&h, "other").is_empty());
    }
}
