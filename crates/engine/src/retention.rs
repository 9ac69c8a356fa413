//! Retention policies: which snapshots `forget` keeps, as a pure function
//! ([`plan`]) of the snapshots' times and tags. docs/RETENTION.md is the
//! spec; the tests below pin it.
//!
//! Calendar buckets are UTC; weeks are ISO 8601 weeks (Monday first, week
//! 53 exists, the week's year may differ from the calendar year). A bucket
//! rule `daily = N` keeps the newest snapshot of each of the N newest days
//! that *have* a snapshot (empty days do not count). One snapshot may
//! satisfy several rules: each rule counts it. History shorter than a rule
//! simply keeps everything that rule can see.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

/// The tag that protects a snapshot from every policy.
pub const PROTECTED_TAG: &str = "protected";

/// A retention policy (`retention = { ... }` of a source, or forget's flags).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Keep the N newest snapshots.
    #[serde(default)]
    pub last: u32,
    /// Keep the newest snapshot of each of the N newest hours with one.
    #[serde(default)]
    pub hourly: u32,
    /// ... of each of the N newest UTC days with one.
    #[serde(default)]
    pub daily: u32,
    /// ... of each of the N newest ISO weeks with one.
    #[serde(default)]
    pub weekly: u32,
    /// ... of each of the N newest months with one.
    #[serde(default)]
    pub monthly: u32,
    /// ... of each of the N newest years with one.
    #[serde(default)]
    pub yearly: u32,
    /// Keep every snapshot taken within this span before the newest
    /// snapshot (e.g. `"30d"`, `"2 weeks"`, `"36h"`).
    #[serde(default)]
    pub within: Option<String>,
    /// Keep every snapshot carrying one of these tags.
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// Point-in-time recovery window in days (physical backups and WAL).
    /// TODO(issue 12): once physical base backups and WAL objects exist,
    /// [`plan`] must also keep the newest base backup starting before the
    /// window and every base backup in it, and forget must expire WAL older
    /// than the oldest base backup kept (docs/RETENTION.md, "The PITR window").
    #[serde(default)]
    pub pitr_days: Option<u32>,
}

/// One rule of a policy, as named in plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Hourly => "hourly",
            Bucket::Daily => "daily",
            Bucket::Weekly => "weekly",
            Bucket::Monthly => "monthly",
            Bucket::Yearly => "yearly",
        }
    }

    /// The calendar period (UTC) a time falls in, as a comparable key.
    fn key(self, t: DateTime) -> (i32, i32, i32, i32) {
        let (y, m, d, h) = (
            i32::from(t.year()),
            i32::from(t.month()),
            i32::from(t.day()),
            i32::from(t.hour()),
        );
        match self {
            Bucket::Hourly => (y, m, d, h),
            Bucket::Daily => (y, m, d, 0),
            Bucket::Weekly => {
                let w = t.date().iso_week_date();
                (i32::from(w.year()), i32::from(w.week()), 0, 0)
            }
            Bucket::Monthly => (y, m, 0, 0),
            Bucket::Yearly => (y, 0, 0, 0),
        }
    }
}

/// A policy's problem, named for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No rule keeps anything: applying it would remove every snapshot.
    #[error("the retention policy has no rule (last, hourly, daily, weekly, monthly, yearly, within, keep_tags): it would remove every snapshot; set at least one rule")]
    Empty,
    /// `within` is not a duration.
    #[error(
        "retention within = {0:?} is not a duration (write e.g. \"30d\", \"2 weeks\", \"36h\")"
    )]
    BadWithin(String),
}

impl Policy {
    /// Whether no rule is set (pitr_days alone keeps no logical snapshot).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.keep_tags.is_empty()
    }

    /// Check the policy can be applied: some rule is set, `within` parses.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.is_empty() {
            return Err(PolicyError::Empty);
        }
        self.within_span().map(|_| ())
    }

    /// The rules set, as `daily=7 weekly=4 ...` (for plans and logs).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = [("last", self.last)]
            .into_iter()
            .chain(self.buckets().map(|(b, n)| (b.name(), n)))
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        if let Some(w) = &self.within {
            parts.push(format!("within={w}"));
        }
        for t in &self.keep_tags {
            parts.push(format!("tag={t}"));
        }
        if let Some(d) = self.pitr_days {
            parts.push(format!("pitr_days={d}"));
        }
        parts.join(" ")
    }

    fn within_span(&self) -> Result<Option<Span>, PolicyError> {
        let Some(w) = &self.within else {
            return Ok(None);
        };
        let span: Span = w
            .trim()
            .parse()
            .map_err(|_| PolicyError::BadWithin(w.clone()))?;
        if span.is_negative() || span.is_zero() {
            return Err(PolicyError::BadWithin(w.clone()));
        }
        Ok(Some(span))
    }

    fn buckets(&self) -> [(Bucket, u32); 5] {
        [
            (Bucket::Hourly, self.hourly),
            (Bucket::Daily, self.daily),
            (Bucket::Weekly, self.weekly),
            (Bucket::Monthly, self.monthly),
            (Bucket::Yearly, self.yearly),
        ]
    }
}

/// A snapshot as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<T> {
    /// What the caller identifies it by (an id).
    pub key: T,
    /// When it was taken.
    pub time: Timestamp,
    /// Its tags.
    pub tags: Vec<String>,
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<T> {
    /// The caller's key.
    pub key: T,
    /// When it was taken.
    pub time: Timestamp,
    /// Whether it stays.
    pub keep: bool,
    /// The rules keeping it (`last 1/3`, `daily 2/7`, `within 30d`,
    /// `tag nightly`, `protected`); empty when it goes.
    pub reasons: Vec<String>,
}

/// Apply `policy` to one group of snapshots (one source and kind).
/// Returns the decisions newest first (ties in time: the greater key
/// first). Pure: no clock, no I/O.
pub fn plan<T: Clone + Ord>(
    policy: &Policy,
    candidates: &[Candidate<T>],
) -> Result<Vec<Decision<T>>, PolicyError> {
    policy.validate()?;
    let mut order: Vec<&Candidate<T>> = candidates.iter().collect();
    order.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.key.cmp(&a.key)));
    let mut out: Vec<Decision<T>> = order
        .iter()
        .map(|c| Decision {
            key: c.key.clone(),
            time: c.time,
            keep: false,
            reasons: Vec::new(),
        })
        .collect();
    let civil: Vec<DateTime> = order
        .iter()
        .map(|c| TimeZone::UTC.to_datetime(c.time))
        .collect();
    keep_last(policy.last, &mut out);
    for (bucket, n) in policy.buckets() {
        keep_buckets(bucket, n, &civil, &mut out);
    }
    keep_within(policy, &civil, &mut out)?;
    keep_tagged(policy, &order, &mut out);
    for d in &mut out {
        d.keep = !d.reasons.is_empty();
    }
    Ok(out)
}

fn keep_last<T>(n: u32, out: &mut [Decision<T>]) {
    for (i, d) in out.iter_mut().take(n as usize).enumerate() {
        d.reasons.push(format!("last {}/{n}", i + 1));
    }
}

/// Newest first: the first snapshot seen in a new period is that period's
/// newest; stop after `n` periods.
fn keep_buckets<T>(bucket: Bucket, n: u32, civil: &[DateTime], out: &mut [Decision<T>]) {
    let mut last_key = None;
    let mut kept = 0u32;
    for (i, t) in civil.iter().enumerate() {
        if kept == n {
            break;
        }
        let key = bucket.key(*t);
        if last_key == Some(key) {
            continue;
        }
        last_key = Some(key);
        kept += 1;
        out[i].reasons.push(format!("{} {kept}/{n}", bucket.name()));
    }
}

fn keep_within<T>(
    policy: &Policy,
    civil: &[DateTime],
    out: &mut [Decision<T>],
) -> Result<(), PolicyError> {
    let (Some(span), Some(newest)) = (policy.within_span()?, civil.first()) else {
        return Ok(());
    };
    let label = policy.within.as_deref().unwrap_or_default().trim();
    let cutoff = newest
        .checked_sub(span)
        .map_err(|_| PolicyError::BadWithin(label.to_string()))?;
    for (i, t) in civil.iter().enumerate() {
        if *t >= cutoff {
            out[i].reasons.push(format!("within {label}"));
        }
    }
    Ok(())
}

fn keep_tagged<T>(policy: &Policy, order: &[&Candidate<T>], out: &mut [Decision<T>]) {
    for (i, c) in order.iter().enumerate() {
        if c.tags.iter().any(|t| t == PROTECTED_TAG) {
            out[i].reasons.push("protected".to_string());
        }
        for t in c.tags.iter().filter(|t| policy.keep_tags.contains(t)) {
            out[i].reasons.push(format!("tag {t}"));
        }
    }
}

#[cfg(test)]
mod tests;
