//! The policy's semantics, table-driven (docs/RETENTION.md quotes these cases).

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cands(times: &[&str]) -> Vec<Candidate<String>> {
    times
        .iter()
        .map(|t| Candidate {
            key: t.to_string(),
            time: ts(t),
            tags: vec![],
        })
        .collect()
}

fn kept(policy: &Policy, c: &[Candidate<String>]) -> Vec<String> {
    plan(policy, c)
        .unwrap()
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| d.key)
        .collect()
}

fn daily_snapshots(from: &str, days: i64) -> Vec<Candidate<String>> {
    let start: jiff::civil::Date = from.parse().unwrap();
    (0..days)
        .map(|i| {
            let t = format!(
                "{}T02:00:00Z",
                start.checked_add(Span::new().days(i)).unwrap()
            );
            Candidate {
                key: t.clone(),
                time: ts(&t),
                tags: vec![],
            }
        })
        .collect()
}

fn gfs(daily: u32, weekly: u32, monthly: u32) -> Policy {
    Policy {
        daily,
        weekly,
        monthly,
        ..Policy::default()
    }
}

#[test]
fn two_years_of_dailies_with_the_runbook_policy_keep_the_documented_twenty() {
    // 2025-01-01 .. 2026-12-31, one snapshot a day at 02:00 UTC.
    let c = daily_snapshots("2025-01-01", 730);
    assert_eq!(c.last().unwrap().key, "2026-12-31T02:00:00Z");
    let want: Vec<String> = [
        // daily: the last 7 days
        "2026-12-31",
        "2026-12-30",
        "2026-12-29",
        "2026-12-28",
        "2026-12-27",
        "2026-12-26",
        "2026-12-25",
        // weekly: ISO 2026-W53 (Dec 28..) and W52 are covered above; W51, W50
        "2026-12-20",
        "2026-12-13",
        // monthly: Dec 2026 covered above; the last day of the 11 months before
        "2026-11-30",
        "2026-10-31",
        "2026-09-30",
        "2026-08-31",
        "2026-07-31",
        "2026-06-30",
        "2026-05-31",
        "2026-04-30",
        "2026-03-31",
        "2026-02-28",
        "2026-01-31",
    ]
    .iter()
    .map(|d| format!("{d}T02:00:00Z"))
    .collect();
    assert_eq!(kept(&gfs(7, 4, 12), &c), want);
    let d = plan(&gfs(7, 4, 12), &c).unwrap();
    assert_eq!(d[0].reasons, ["daily 1/7", "weekly 1/4", "monthly 1/12"]);
    assert_eq!(d[4].reasons, ["daily 5/7", "weekly 2/4"]); // Sunday Dec 27
    assert_eq!(d[6].reasons, ["daily 7/7"]);
    assert_eq!(d.len(), 730);
    assert_eq!(d.iter().filter(|d| !d.keep).count(), 710);
    assert!(d.iter().all(|d| d.keep != d.reasons.is_empty()));
}

#[test]
fn edge_cases() {
    struct Case {
        name: &'static str,
        policy: Policy,
        times: &'static [&'static str],
        keep: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "gaps: empty days do not count",
            policy: gfs(3, 0, 0),
            times: &[
                "2026-01-01T05:00:00Z",
                "2026-01-02T05:00:00Z",
                "2026-01-05T05:00:00Z",
                "2026-01-10T05:00:00Z",
            ],
            keep: &[
                "2026-01-10T05:00:00Z",
                "2026-01-05T05:00:00Z",
                "2026-01-02T05:00:00Z",
            ],
        },
        Case {
            name: "several a day: the newest of each day",
            policy: gfs(2, 0, 0),
            times: &[
                "2026-01-01T10:00:00Z",
                "2026-01-01T20:00:00Z",
                "2026-01-02T01:00:00Z",
                "2026-01-02T12:00:00Z",
                "2026-01-02T23:59:00Z",
            ],
            keep: &["2026-01-02T23:59:00Z", "2026-01-01T20:00:00Z"],
        },
        Case {
            name: "exactly midnight UTC starts the new day",
            policy: gfs(1, 0, 0),
            times: &["2026-01-01T23:59:59Z", "2026-01-02T00:00:00Z"],
            keep: &["2026-01-02T00:00:00Z"],
        },
        Case {
            name: "midnight: two days, two snapshots",
            policy: gfs(2, 0, 0),
            times: &["2026-01-01T23:59:59Z", "2026-01-02T00:00:00Z"],
            keep: &["2026-01-02T00:00:00Z", "2026-01-01T23:59:59Z"],
        },
        Case {
            name: "offsets are converted to UTC before bucketing",
            policy: gfs(2, 0, 0),
            times: &["2026-01-02T01:00:00+02:00", "2026-01-01T20:00:00Z"],
            keep: &["2026-01-02T01:00:00+02:00"],
        },
        Case {
            name: "year boundary",
            policy: Policy {
                yearly: 2,
                ..Policy::default()
            },
            times: &[
                "2024-06-01T00:00:00Z",
                "2025-12-31T23:59:59Z",
                "2026-01-01T00:00:00Z",
            ],
            keep: &["2026-01-01T00:00:00Z", "2025-12-31T23:59:59Z"],
        },
        Case {
            name: "ISO week 53: Sunday 2021-01-03 is in 2020-W53 with Monday 2020-12-28",
            policy: gfs(0, 2, 0),
            times: &[
                "2020-12-28T12:00:00Z",
                "2021-01-03T12:00:00Z",
                "2021-01-04T12:00:00Z",
            ],
            keep: &["2021-01-04T12:00:00Z", "2021-01-03T12:00:00Z"],
        },
        Case {
            name: "ISO week crossing the year: 2024-12-30 is in 2025-W01 with 2025-01-05",
            policy: gfs(0, 1, 0),
            times: &[
                "2024-12-29T12:00:00Z",
                "2024-12-30T12:00:00Z",
                "2025-01-05T12:00:00Z",
            ],
            keep: &["2025-01-05T12:00:00Z"],
        },
        Case {
            name: "history shorter than the policy keeps everything",
            policy: gfs(7, 4, 12),
            times: &[
                "2026-03-01T02:00:00Z",
                "2026-03-02T02:00:00Z",
                "2026-03-03T02:00:00Z",
            ],
            keep: &[
                "2026-03-03T02:00:00Z",
                "2026-03-02T02:00:00Z",
                "2026-03-01T02:00:00Z",
            ],
        },
        Case {
            name: "hourly",
            policy: Policy {
                hourly: 2,
                ..Policy::default()
            },
            times: &[
                "2026-01-01T10:10:00Z",
                "2026-01-01T10:50:00Z",
                "2026-01-01T11:00:00Z",
                "2026-01-01T11:30:00Z",
            ],
            keep: &["2026-01-01T11:30:00Z", "2026-01-01T10:50:00Z"],
        },
        Case {
            name: "monthly counts months that have a snapshot",
            policy: gfs(0, 0, 2),
            times: &[
                "2026-01-15T00:00:00Z",
                "2026-01-31T23:59:59Z",
                "2026-04-01T00:00:00Z",
            ],
            keep: &["2026-04-01T00:00:00Z", "2026-01-31T23:59:59Z"],
        },
        Case {
            name: "last",
            policy: Policy {
                last: 2,
                ..Policy::default()
            },
            times: &[
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:01Z",
                "2026-01-01T00:00:02Z",
            ],
            keep: &["2026-01-01T00:00:02Z", "2026-01-01T00:00:01Z"],
        },
        Case {
            name: "within counts back from the newest snapshot, inclusive",
            policy: Policy {
                within: Some("2d".into()),
                ..Policy::default()
            },
            times: &[
                "2026-01-07T23:59:59Z",
                "2026-01-08T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-10T00:00:00Z",
            ],
            keep: &[
                "2026-01-10T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-08T00:00:00Z",
            ],
        },
    ];
    for c in cases {
        let got = kept(&c.policy, &cands(c.times));
        assert_eq!(got, c.keep, "{}", c.name);
    }
}

#[test]
fn tags_and_protected_snapshots_are_kept_whatever_the_rules() {
    let mut c = cands(&[
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
        "2026-01-03T00:00:00Z",
        "2026-01-04T00:00:00Z",
    ]);
    c[0].tags = vec![PROTECTED_TAG.into()];
    c[1].tags = vec!["release".into(), "other".into()];
    let p = Policy {
        last: 1,
        keep_tags: vec!["release".into()],
        ..Policy::default()
    };
    let d = plan(&p, &c).unwrap();
    let row = |k: &str| d.iter().find(|d| d.key == k).unwrap().clone();
    assert_eq!(row("2026-01-04T00:00:00Z").reasons, ["last 1/1"]);
    assert!(!row("2026-01-03T00:00:00Z").keep);
    assert_eq!(row("2026-01-02T00:00:00Z").reasons, ["tag release"]);
    assert_eq!(row("2026-01-01T00:00:00Z").reasons, ["protected"]);
}

#[test]
fn same_time_orders_by_key_so_plans_are_deterministic() {
    let mut c = cands(&["2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]);
    c[0].key = "a".into();
    c[1].key = "b".into();
    let p = Policy {
        last: 1,
        ..Policy::default()
    };
    assert_eq!(kept(&p, &c), ["b"]);
    c.reverse();
    assert_eq!(kept(&p, &c), ["b"]);
}

#[test]
fn a_policy_without_rules_or_with_a_bad_duration_is_refused() {
    let c = cands(&["2026-01-01T00:00:00Z"]);
    let none = Policy {
        pitr_days: Some(7),
        ..Policy::default()
    };
    assert_eq!(plan(&none, &c).unwrap_err(), PolicyError::Empty);
    for bad in ["soon", "-3d", "0d"] {
        let p = Policy {
            within: Some(bad.into()),
            ..Policy::default()
        };
        assert!(
            matches!(plan(&p, &c), Err(PolicyError::BadWithin(_))),
            "{bad}"
        );
    }
    let ok = Policy {
        within: Some("1 week".into()),
        ..Policy::default()
    };
    assert!(plan(&ok, &c).is_ok());
}

#[test]
fn no_snapshots_no_decisions() {
    assert!(plan(&gfs(1, 0, 0), &cands(&[])).unwrap().is_empty());
}
