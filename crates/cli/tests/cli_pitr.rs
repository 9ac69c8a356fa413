//! WAL archiving and point-in-time recovery end to end, on real clusters:
//! a scratch cluster archives with `archive_command = 'lifeboat --config C
//! --key-file K wal push %p'` (run by the server as its OS user), physical
//! base backups are taken while a workload commits one numbered row per
//! transaction (with its xid, the WAL insert position and the clock after
//! each commit, per-table checksums, and named restore points), and
//! restores to many targets (time, LSN, xid, name) are started with
//! `--start` and compared with what the source had at that target: exactly
//! the rows committed before it, the same table checksums. Every server a
//! test starts is stopped by its pid on drop.

mod common;
mod pg_common;

use lifeboat_sources::postgres::psql::run_sql;
use lifeboat_sources::postgres::{PgTarget, ScratchCluster};
use pg_common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A cluster archiving into a workspace's repository.
struct Archive {
    c: ScratchCluster,
    ws: Workspace,
    key: PathBuf,
    owner: (u32, u32),
}

/// Hand `p` (recursively) to `owner`.
fn chown_r(p: &Path, owner: (u32, u32)) {
    std::os::unix::fs::lchown(p, Some(owner.0), Some(owner.1)).unwrap();
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_r(&e.unwrap().path(), owner);
        }
    }
}

impl Archive {
    /// A cluster with database `app`, archiving into a fresh repository
    /// that the server's OS user can reach (config, raw key, repository).
    fn new() -> Self {
        let c = cluster();
        c.create_database("app").unwrap();
        let ws = Workspace::new(
            &url(&c, "app"),
            &format!("pgdata = {:?}", c.data_dir().display().to_string()),
        );
        let key = ws.path("raw.key");
        ws.run(&["key", "export", "-o", key.to_str().unwrap()]).ok();
        let m = std::fs::metadata(c.data_dir()).unwrap();
        let owner = (m.uid(), m.gid());
        std::fs::set_permissions(ws.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for p in [&ws.repo, &ws.config, &key] {
            chown_r(p, owner);
        }
        let a = Archive { c, ws, key, owner };
        let push = format!("{} wal push %p", a.lifeboat_prefix());
        a.restart(&[("archive_mode", "on"), ("archive_command", &push)])
    }

    fn restart(mut self, settings: &[(&str, &str)]) -> Self {
        self.c.restart_with(settings).unwrap();
        self
    }

    /// `BIN --config C --key-file K`, as archive/restore commands run it.
    fn lifeboat_prefix(&self) -> String {
        format!(
            "{BIN} --config {} --key-file {}",
            self.ws.config.display(),
            self.key.display()
        )
    }

    fn sql(&self, sql: &str) -> Vec<String> {
        rows(&self.c, "app", sql)
    }

    /// Switch to a new segment and wait until the finished one is archived;
    /// returns its name.
    fn switch_and_wait(&self) -> String {
        let seg = self.sql("SELECT pg_walfile_name(pg_switch_wal());")[0].clone();
        wait_archived(&self.c, "app", &seg);
        seg
    }

    /// Runs lifeboat with `--key-file` (so a restore's restore_command uses it).
    fn run(&self, args: &[&str]) -> Run {
        let mut a = vec!["--key-file", self.key.to_str().unwrap()];
        a.extend_from_slice(args);
        self.ws.run(&a)
    }
}

/// Wait until `pg_stat_archiver` reports `seg` (or a later one) archived.
fn wait_archived(c: &ScratchCluster, db: &str, seg: &str) {
    for _ in 0..3000 {
        let r = rows(
            c,
            db,
            "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver;",
        );
        let (last, _failed) = r[0].split_once('|').unwrap();
        if last.len() == 24 && last >= seg {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{seg} was not archived; server log:\n{}", c.log_tail());
}

#[test]
fn archive_command_archives_every_segment_without_a_gap() {
    let a = Archive::new();
    a.sql("CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 20000);");
    let mut segs = Vec::new();
    for i in 0..3 {
        a.sql(&format!(
            "INSERT INTO t SELECT generate_series(1, {});",
            1000 * (i + 1)
        ));
        segs.push(a.switch_and_wait());
    }
    let failed = a.sql("SELECT failed_count FROM pg_stat_archiver;");
    assert_eq!(failed, vec!["0"], "{}", a.c.log_tail());
    let pgdata = a.c.data_dir();
    let r = a.run(&[
        "--json",
        "wal",
        "list",
        "--pgdata",
        pgdata.to_str().unwrap(),
    ]);
    r.ok();
    let v = r.json();
    let tl = &v["timelines"][0];
    assert_eq!(tl["timeline"], "00000001", "{v}");
    assert_eq!(tl["gaps"], serde_json::json!([]), "{v}");
    let ranges = tl["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{v}");
    let last = ranges[0][1].as_str().unwrap();
    assert!(last >= segs[2].as_str(), "{v}");
    for s in &segs {
        let first = ranges[0][0].as_str().unwrap();
        assert!(first <= s.as_str() && s.as_str() <= last, "{s} not in {v}");
    }
    // Every archived segment is a whole segment that fetches back.
    let out = a.ws.path("fetched");
    a.run(&[
        "wal",
        "fetch",
        &segs[1],
        out.to_str().unwrap(),
        "--pgdata",
        pgdata.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 16 << 20);
}

/// What the source held right after transaction `k` committed.
#[derive(Debug, Clone)]
struct Mark {
    k: u32,
    xid: String,
    lsn: String,
    time: String,
    ev: String,
    acct: String,
}

/// One transaction per row: `ev` gets row `k` (its xid by default), `acct`
/// row `k % 5` is updated; after each commit a mark records what a
/// restore to that point must hold. Restore point `rp_<k>` after every
/// 7th, a segment switch after every 25th.
fn workload(a: &Archive, ks: std::ops::RangeInclusive<u32>) -> Vec<Mark> {
    workload_with(&|sql| a.c.run_sql_in("app", sql).unwrap(), ks)
}

fn workload_with(
    run: &dyn Fn(&str) -> Vec<Vec<String>>,
    ks: std::ops::RangeInclusive<u32>,
) -> Vec<Mark> {
    let mut sql = String::new();
    for k in ks {
        sql.push_str(&format!(
            "BEGIN; INSERT INTO ev (seq, note) VALUES ({k}, 'row {k}'); \
             UPDATE acct SET bal = bal + {k}, last = {k} WHERE id = {k} % 5; COMMIT;\n\
             SELECT 'mark', {k}, (SELECT xid FROM ev WHERE seq = {k}), pg_current_wal_insert_lsn(), clock_timestamp(), {EV_SUM}, {ACCT_SUM};\n"
        ));
        if k.is_multiple_of(7) {
            sql.push_str(&format!(
                "SELECT 'rp', pg_create_restore_point('rp_{k}');\n"
            ));
        }
        if k.is_multiple_of(25) {
            sql.push_str("SELECT 'sw', pg_switch_wal();\n");
        }
    }
    run(&sql)
        .into_iter()
        .filter(|r| r[0] == "mark")
        .map(|r| Mark {
            k: r[1].parse().unwrap(),
            xid: r[2].clone(),
            lsn: r[3].clone(),
            time: r[4].clone(),
            ev: r[5].clone(),
            acct: r[6].clone(),
        })
        .collect()
}

const EV_SUM: &str = "(SELECT coalesce(md5(string_agg(seq || ':' || note || ':' || xid, ',' ORDER BY seq)), '') FROM ev)";
const ACCT_SUM: &str =
    "(SELECT md5(string_agg(id || ':' || bal || ':' || last, ',' ORDER BY id)) FROM acct)";

const SCHEMA: &str = "CREATE TABLE ev (seq int PRIMARY KEY, note text NOT NULL, \
    xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint, ts timestamptz NOT NULL DEFAULT clock_timestamp()); \
    CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL, last int NOT NULL); \
    INSERT INTO acct SELECT i, 0, 0 FROM generate_series(0, 4) i;";

/// A server `restore --start` left running; stopped by its pid on drop,
/// then its data directory removed.
struct Started {
    data: PathBuf,
    sock: PathBuf,
    pid: Option<u32>,
    /// Remove the data directory on drop.
    remove: bool,
}

impl Started {
    fn from_report(v: &serde_json::Value, data: PathBuf) -> Self {
        let o = &v["recovery"]["outcome"];
        Started {
            data,
            sock: PathBuf::from(o["socket_dir"].as_str().unwrap_or_default()),
            pid: o["pid"].as_u64().map(|p| p as u32),
            remove: true,
        }
    }

    fn sql(&self, c: &ScratchCluster, sql: &str) -> Vec<Vec<String>> {
        let t = PgTarget::parse(&format!(
            "postgres://postgres:{}@/app?host={}&port=5432",
            c.password(),
            self.sock.display()
        ))
        .unwrap();
        run_sql(c.tools(), &t, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            stop_pid(pid);
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.stop();
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.data);
        }
        let _ = std::fs::remove_dir_all(&self.sock);
    }
}

/// SIGINT (fast shutdown), wait for it to go, SIGKILL as the last resort.
fn stop_pid(pid: u32) {
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    for sig in ["-INT", "-KILL"] {
        let _ = Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        for _ in 0..600 {
            if !alive() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Time,
    Lsn,
    Xid,
    Name,
}

fn target_args(kind: Kind, m: &Mark) -> Vec<String> {
    let (flag, value) = match kind {
        Kind::Time => ("--target-time", m.time.clone()),
        Kind::Lsn => ("--target-lsn", m.lsn.clone()),
        Kind::Xid => ("--target-xid", m.xid.clone()),
        Kind::Name => ("--target-name", format!("rp_{}", m.k)),
    };
    vec![flag.into(), value]
}

/// Restore `latest` to `args`' target with promote and `--start`;
/// returns the report and the running server.
fn pitr(a: &Archive, dir: &str, args: &[String]) -> (serde_json::Value, Started) {
    let to = a.ws.path(dir);
    let mut all = vec!["--json", "restore", "latest", "--to", to.to_str().unwrap()];
    all.extend(args.iter().map(String::as_str));
    all.extend(["--target-action", "promote", "--start"]);
    let r = a.run(&all);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or(serde_json::Value::Null);
    let started = Started::from_report(&v, to);
    r.ok();
    assert_eq!(v["recovery"]["outcome"]["state"], "promoted", "{v}");
    (v, started)
}

/// The restored server holds exactly rows 1..=k and the mark's checksums.
#[track_caller]
fn assert_at(a: &Archive, s: &Started, m: &Mark, what: &str) {
    let got = s.sql(
        &a.c,
        &format!("SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0), {EV_SUM}, {ACCT_SUM} FROM ev;"),
    );
    let want = vec![
        m.k.to_string(),
        (if m.k == 0 { 0 } else { 1 }).to_string(),
        m.k.to_string(),
        m.ev.clone(),
        m.acct.clone(),
    ];
    assert_eq!(
        got[0], want,
        "{what}: restored rows differ from the source at k={}",
        m.k
    );
}

fn backup_physical(a: &Archive) -> String {
    let r = a.run(&["--json", "backup", "main", "--kind", "physical"]);
    r.ok();
    r.json()["id"].as_str().unwrap().to_string()
}

#[test]
fn pitr_restores_exactly_what_was_committed_before_each_target() {
    let n: usize = std::env::var("LIFEBOAT_PITR_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let a = Archive::new();
    a.sql(SCHEMA);
    let b1 = backup_physical(&a);
    let mut marks = workload(&a, 1..=40);
    let b2 = backup_physical(&a);
    marks.extend(workload(&a, 41..=80));
    a.switch_and_wait();

    // Targets spread over the run, kinds in turn (names where a restore point is).
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
    let mut targets = Vec::new();
    for i in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let m = marks[(rng % marks.len() as u64) as usize].clone();
        let kind = match i % 4 {
            0 => Kind::Time,
            1 => Kind::Lsn,
            2 => Kind::Xid,
            _ if m.k.is_multiple_of(7) => Kind::Name,
            _ => Kind::Time,
        };
        targets.push((kind, m));
    }
    // Both sides of the second backup, and a named point, always.
    targets.push((Kind::Lsn, marks[40].clone()));
    targets.push((Kind::Time, marks[39].clone()));
    targets.push((Kind::Name, marks[6].clone()));

    for (i, (kind, m)) in targets.iter().enumerate() {
        let what = format!(
            "target {i}: {kind:?} of k={} ({:?})",
            m.k,
            target_args(*kind, m)
        );
        let (v, s) = pitr(&a, &format!("pitr-{i}"), &target_args(*kind, m));
        let want_base = match kind {
            Kind::Time | Kind::Lsn if m.k > 40 => &b2,
            _ => &b1,
        };
        assert_eq!(
            v["snapshot"].as_str(),
            Some(want_base.as_str()),
            "{what}: base backup\n{v}"
        );
        assert_at(&a, &s, m, &what);
        drop(s);
    }
    eprintln!("pitr: {} targets restored exactly", targets.len());
}

/// Start a data directory as its owner on a new private socket directory
/// (`pg_ctl -w`); the guard stops it.
fn start_as_owner(a: &Archive, data: &Path) -> Started {
    let sock = a.ws.path(format!(
        "sock-{}",
        data.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&sock).unwrap();
    std::os::unix::fs::chown(&sock, Some(a.owner.0), Some(a.owner.1)).unwrap();
    let opts = format!(
        "-p 5432 -k {} -c listen_addresses='' -c unix_socket_permissions=0700",
        sock.display()
    );
    let log = sock.join("server.log");
    let status = Command::new("setpriv")
        .args([
            &format!("--reuid={}", a.owner.0),
            &format!("--regid={}", a.owner.1),
            "--clear-groups",
        ])
        .arg(a.c.tools().bin_dir.join("pg_ctl"))
        .args(["-w", "-t", "120", "-D"])
        .arg(data)
        .arg("-l")
        .arg(&log)
        .args(["start", "-o", &opts])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let s = Started {
        data: data.to_path_buf(),
        sock: sock.clone(),
        pid: lifeboat_sources::postgres::recovery::postmaster_pid(data),
        remove: true,
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    s
}

/// As the server's OS user (archive_command's view of the files).
fn as_owner(a: &Archive, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={}", a.owner.0),
            &format!("--regid={}", a.owner.1),
            "--clear-groups",
            BIN,
            "--config",
            a.ws.config.to_str().unwrap(),
            "--key-file",
            a.key.to_str().unwrap(),
        ])
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn after_a_promote_to_timeline_2_pitr_on_timeline_2_works() {
    let a = Archive::new();
    a.sql(SCHEMA);
    backup_physical(&a);
    let marks = workload(&a, 1..=30);
    a.switch_and_wait();
    // Promote at k = 20: timeline 2, which then archives into the same repository.
    let (v, mut tl2) = pitr(&a, "tl2", &target_args(Kind::Xid, &marks[19]));
    assert_eq!(v["recovery"]["outcome"]["new_timeline"], 2, "{v}");
    assert_at(&a, &tl2, &marks[19], "promoted to timeline 2");
    tl2.stop();
    tl2.remove = false;
    let data = tl2.data.clone();
    drop(tl2);
    let conf = data.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "archive_mode = 'on'\narchive_command = '{} wal push %p'\n",
        a.lifeboat_prefix()
    ));
    std::fs::write(&conf, text).unwrap();
    let hist = data.join("pg_wal/00000002.history");
    let o = as_owner(&a, &["wal", "push", hist.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let server = start_as_owner(&a, &data);
    let tl2_marks = workload_with(&|sql| server.sql(&a.c, sql), 21..=45);
    let seg = server.sql(&a.c, "SELECT pg_walfile_name(pg_switch_wal());")[0][0].clone();
    assert!(seg.starts_with("00000002"), "{seg}");
    for _ in 0..3000 {
        let last = server.sql(
            &a.c,
            "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver;",
        );
        if last[0][0].len() == 24 && last[0][0] >= seg {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);

    // On timeline 2, from the timeline-1 base backup: rows 1..=20, then 21..=k.
    for (kind, m) in [(Kind::Xid, &tl2_marks[10]), (Kind::Time, &tl2_marks[20])] {
        let mut args = target_args(kind, m);
        args.extend(["--target-timeline".to_string(), "2".to_string()]);
        let what = format!("timeline 2, {kind:?} at k={}", m.k);
        let (v, s) = pitr(&a, &format!("tl2-pitr-{}", m.k), &args);
        assert_at(&a, &s, m, &what);
        assert_eq!(v["recovery"]["outcome"]["new_timeline"], 3, "{v}");
    }
    let r = a.run(&[
        "--json",
        "wal",
        "list",
        "--pgdata",
        a.c.data_dir().to_str().unwrap(),
    ]);
    let v = r.json();
    assert_eq!(v["timelines"][1]["timeline"], "00000002", "{v}");
    assert_eq!(v["timelines"][1]["gaps"], serde_json::json!([]), "{v}");
}

#[test]
fn pitr_errors_are_clear_and_destroy_nothing() {
    let a = Archive::new();
    a.sql(SCHEMA);
    backup_physical(&a);
    let marks = workload(&a, 1..=30);
    a.switch_and_wait();
    let dir = |n: &str| a.ws.path(n);

    // A target before the oldest base backup: exit 18, nothing written.
    let to = dir("too-early");
    let r = a.run(&[
        "restore",
        "latest",
        "--to",
        to.to_str().unwrap(),
        "--target-time",
        "2001-01-01 00:00:00+00",
        "--start",
    ]);
    r.error(
        18,
        &["no physical base backup is consistent before the recovery target"],
    );
    assert!(!to.exists());

    // A non-empty directory: exit 14, left as it was.
    let to = dir("busy");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("keep.txt"), "mine").unwrap();
    let r = a.run(&[
        "restore",
        "latest",
        "--to",
        to.to_str().unwrap(),
        "--target-lsn",
        &marks[5].lsn,
    ]);
    r.code(14);
    assert_eq!(std::fs::read_dir(&to).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_to_string(to.join("keep.txt")).unwrap(),
        "mine"
    );

    // Two targets, or a bad one: exit 15 before anything is written.
    let to = dir("bad");
    for bad in [
        vec!["--target-lsn", "0/1", "--target-xid", "5"],
        vec!["--target-time", "yesterday"],
        vec!["--target-action", "explode", "--target-xid", "5"],
    ] {
        let mut args = vec!["restore", "latest", "--to", to.to_str().unwrap()];
        args.extend(bad);
        a.run(&args).code(15);
        assert!(!to.exists());
    }

    // WAL missing for the target: the segment after the backup is removed
    // from the archive, so recovery ends before a later target: exit 23,
    // the server stopped, the directory kept; `wal verify` names the gap.
    let sysid = value(
        &a.c,
        "app",
        "SELECT system_identifier FROM pg_control_system();",
    );
    let wal_dir = a.ws.repo.join(format!("wal/{sysid}/00000001"));
    let mut segs: Vec<String> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    segs.sort();
    let r = a.run(&["--json", "wal", "verify", "--system-id", &sysid]);
    r.ok();
    let first_needed = r.json()["timelines"][0]["base_backups"][0][1]
        .as_str()
        .unwrap()
        .to_string();
    let gone = segs.iter().find(|s| **s > first_needed).unwrap().clone();
    std::fs::remove_file(wal_dir.join(&gone)).unwrap();
    let r = a.run(&["--json", "wal", "verify", "--system-id", &sysid]);
    r.code(12);
    assert_eq!(
        r.json()["timelines"][0]["missing"],
        serde_json::json!([[gone, gone]])
    );
    let to = dir("missing-wal");
    let r = a.run(&[
        "restore",
        "latest",
        "--to",
        to.to_str().unwrap(),
        "--target-xid",
        &marks[29].xid,
        "--target-action",
        "promote",
        "--start",
    ]);
    r.code(23);
    for needle in [
        "recovery stopped before reaching the target",
        "recovery ended before configured recovery target was reached",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {r:?}");
    }
    assert!(
        to.join("PG_VERSION").is_file(),
        "the restored directory is kept"
    );
    assert!(lifeboat_sources::postgres::recovery::postmaster_pid(&to)
        .is_none_or(|p| !lifeboat_sources::postgres::recovery::is_alive(p)));

    // Recovery options on a logical snapshot (now the latest): exit 15.
    let r = a.run(&["--json", "backup", "main"]);
    r.ok();
    let logical = r.json()["id"].as_str().unwrap().to_string();
    let to = dir("logical");
    a.run(&[
        "restore",
        &logical,
        "--to",
        to.to_str().unwrap(),
        "--target-xid",
        "5",
    ])
    .error(15, &["apply to physical snapshots only"]);
    assert!(!to.exists());
}
