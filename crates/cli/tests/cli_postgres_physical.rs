//! Physical backups end to end: `backup --kind physical` of a running
//! scratch cluster loaded with the kitchen sink, rows written after the
//! backup, `restore --to DIR`, the restored data directory started as its
//! own server (private socket, stopped by its pid on drop): it reaches
//! consistency and holds exactly the backed-up data (normalised schema dump
//! and per-table checksums), not the later rows; a non-empty target is
//! refused with nothing written; an unreadable `pgdata` is a clear error.

mod common;
mod pg_common;

use lifeboat_sources::postgres::compare::{normalized_schema_dump, table_checksums};
use lifeboat_sources::postgres::{PgTarget, ScratchCluster};
use pg_common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A server started on a restored data directory; stopped by pid on drop.
struct Restored {
    data: PathBuf,
    sock: PathBuf,
    pid: Option<i32>,
}

impl Restored {
    fn start(data: &Path, sock: &Path, pg_ctl: &Path) -> Self {
        std::fs::create_dir_all(sock).unwrap();
        let owner = std::fs::metadata(data).unwrap();
        std::os::unix::fs::chown(sock, Some(owner.uid()), Some(owner.gid())).unwrap();
        let opts = format!(
            "-p 5432 -k {} -c listen_addresses='' -c unix_socket_permissions=0700",
            sock.display()
        );
        let log = sock.join("server.log");
        let mut r = Restored {
            data: data.to_path_buf(),
            sock: sock.to_path_buf(),
            pid: None,
        };
        let status = Command::new("setpriv")
            .args([
                &format!("--reuid={}", owner.uid()),
                &format!("--regid={}", owner.gid()),
                "--clear-groups",
            ])
            .arg(pg_ctl)
            .args(["-w", "-t", "120", "-D"])
            .arg(data)
            .arg("-l")
            .arg(&log)
            .args(["start", "-o", &opts])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        r.pid = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
        assert!(
            status.success(),
            "the restored cluster does not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        r
    }

    fn target(&self, password: &str, db: &str) -> PgTarget {
        PgTarget::parse(&format!(
            "postgres://postgres:{password}@/{db}?host={}&port=5432",
            self.sock.display()
        ))
        .unwrap()
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // SIGINT: fast shutdown; then wait for it to go.
            unsafe_kill(pid, "INT");
            for _ in 0..600 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            unsafe_kill(pid, "KILL");
        }
        let _ = &self.data;
    }
}

fn unsafe_kill(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// `--json backup main --kind physical`: asserts success, returns the JSON.
#[track_caller]
fn backup_physical(ws: &Workspace) -> serde_json::Value {
    let r = ws.run(&["--json", "backup", "main", "--kind", "physical"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["snapshot"]["kind"], "postgres-physical", "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    v
}

fn physical_ws(c: &ScratchCluster) -> Workspace {
    Workspace::new(
        &url(c, "ks"),
        &format!("pgdata = {:?}", c.data_dir().display().to_string()),
    )
}

#[test]
fn a_physical_backup_restores_to_a_cluster_with_exactly_the_backed_up_data() {
    let src = kitchen_sink_cluster();
    let want_schema = schema(&src, "ks");
    let want = sums(&src, "ks");
    let ws = physical_ws(&src);
    backup_physical(&ws);
    // Written after the backup: must not be in the restore.
    src.run_sql_in(
        "ks",
        "CREATE TABLE public.after_backup (i int); INSERT INTO public.after_backup VALUES (1);",
    )
    .unwrap();

    let out = ws.path("restored");
    ws.run(&["restore", "latest", "--to", out.to_str().unwrap()])
        .ok();
    let mode = std::fs::metadata(&out).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700, "the data directory must be private");
    let auto = std::fs::read_to_string(out.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("archive_mode = 'off'"), "{auto}");

    let server = Restored::start(&out, &ws.path("sock"), &src.tools().bin_dir.join("pg_ctl"));
    let t = server.target(src.password(), "ks");
    let got_schema = normalized_schema_dump(src.tools(), &t).unwrap();
    assert_same_schema(&want_schema, &got_schema, "physical restore");
    let got = table_checksums(src.tools(), &t).unwrap();
    assert_same_sums(&want, &got, "physical restore");
    assert!(
        !got.contains_key("public.after_backup"),
        "a table created after the backup came back"
    );
}

#[test]
fn a_non_empty_target_is_refused_and_left_alone() {
    let src = cluster();
    src.create_database("ks").unwrap();
    let ws = physical_ws(&src);
    backup_physical(&ws);
    let out = ws.path("busy");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let r = ws.run(&["restore", "latest", "--to", out.to_str().unwrap()]);
    r.code(14);
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keep.txt")]);
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_pgdata_that_is_not_there_is_a_clear_error() {
    let src = cluster();
    src.create_database("ks").unwrap();
    let ws = Workspace::new(&url(&src, "ks"), "pgdata = \"/nonexistent/pgdata\"");
    let r = ws.run(&["backup", "main", "--kind", "physical"]);
    r.code(15);
    assert!(
        r.stderr.contains("/nonexistent/pgdata") || r.stdout.contains("/nonexistent/pgdata"),
        "{r:?}"
    );
    assert!(ws.snapshots().is_empty());
}
