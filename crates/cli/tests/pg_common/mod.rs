//! Helpers for the PostgreSQL end-to-end tests of the `lifeboat` binary:
//! scratch clusters loaded with the kitchen-sink fixture, a workspace with a
//! config file (`[repository]` + one `[[source]] kind = "postgres"`), running
//! the real binary with `LIFEBOAT_CONFIG` / `DATABASE_URL`, and comparing
//! databases by normalised schema dump and table checksums.

#![allow(dead_code)]

use lifeboat_sources::postgres::compare::{normalized_schema_dump, table_checksums};
use lifeboat_sources::postgres::{ClientTools, PgTarget, ScratchCluster};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

/// The fixture every round trip uses.
pub const KITCHEN_SINK: &str = include_str!("../../../sources/tests/fixtures/kitchen_sink.sql");

/// Table checksums keyed by `schema.name` (see `compare::table_checksums`).
pub type Sums = BTreeMap<String, (i64, String)>;

/// Server binaries: `LIFEBOAT_TEST_PG_BIN`, else the newest installed.
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFEBOAT_TEST_PG_BIN") {
        return p.into();
    }
    ClientTools::any(None)
        .expect("PostgreSQL installed")
        .bin_dir
}

/// A fresh scratch cluster (stopped on drop).
pub fn cluster() -> ScratchCluster {
    ScratchCluster::start(&server_bin()).expect("scratch cluster starts")
}

/// A scratch cluster with the kitchen sink loaded into database `ks`.
pub fn kitchen_sink_cluster() -> ScratchCluster {
    let c = cluster();
    c.create_database("ks").expect("create ks");
    c.run_sql_in("ks", KITCHEN_SINK)
        .expect("kitchen sink loads");
    c
}

/// `postgres://postgres:PASSWORD@/db?host=SOCKET_DIR&port=PORT` (scratch
/// clusters listen on a private socket only, and require the password).
pub fn url(c: &ScratchCluster, db: &str) -> String {
    c.url_for("postgres", db)
}

/// Connection target for `db` on `c`.
pub fn target(c: &ScratchCluster, db: &str) -> PgTarget {
    c.target().with_database(db)
}

/// Table checksums of `db` (tables, partitions, matviews, sequences, large objects).
pub fn sums(c: &ScratchCluster, db: &str) -> Sums {
    table_checksums(c.tools(), &target(c, db)).expect("table checksums")
}

/// Normalised `pg_dump --schema-only --no-owner` of `db`.
pub fn schema(c: &ScratchCluster, db: &str) -> String {
    normalized_schema_dump(c.tools(), &target(c, db)).expect("schema dump")
}

/// Rows of a query, each joined with `|`.
pub fn rows(c: &ScratchCluster, db: &str, sql: &str) -> Vec<String> {
    c.run_sql_in(db, sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.join("|"))
        .collect()
}

/// The single value of a query.
pub fn value(c: &ScratchCluster, db: &str, sql: &str) -> String {
    let r = rows(c, db, sql);
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    r[0].clone()
}

/// Whether database `db` exists on `c`.
pub fn database_exists(c: &ScratchCluster, db: &str) -> bool {
    value(
        c,
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

/// Only the entries whose key starts with one of `prefixes`.
pub fn only(sums: &Sums, prefixes: &[&str]) -> Sums {
    sums.iter()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Assert two checksum maps are equal, naming the keys that differ.
#[track_caller]
pub fn assert_same_sums(want: &Sums, got: &Sums, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            Some(g) if g == v => {}
            Some(g) => diffs.push(format!("{k}: want {v:?}, got {g:?}")),
            None => diffs.push(format!("{k}: missing")),
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        diffs.push(format!("{k}: unexpected"));
    }
    assert!(
        diffs.is_empty(),
        "{what}: checksums differ:\n{}",
        diffs.join("\n")
    );
}

/// Assert two schema dumps are equal, showing the first differing lines.
#[track_caller]
pub fn assert_same_schema(want: &str, got: &str, what: &str) {
    if want == got {
        return;
    }
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let first = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    let ctx = |v: &[&str]| v[first.saturating_sub(3)..(first + 8).min(v.len())].join("\n");
    panic!(
        "{what}: schema dumps differ at line {} (want {} lines, got {}):\n--- want\n{}\n--- got\n{}",
        first + 1,
        w.len(),
        g.len(),
        ctx(&w),
        ctx(&g)
    );
}

pub use crate::common::Run;

/// A temporary directory with `lifeboat.toml`, a password file and a
/// repository (initialised by [`Workspace::new`]).
pub struct Workspace {
    /// Owns the directory.
    pub tmp: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The repository.
    pub repo: PathBuf,
    /// `DATABASE_URL` passed to every run.
    pub database_url: String,
}

impl Workspace {
    /// A workspace whose source `main` backs up `database_url`, with `extra`
    /// TOML lines appended to the `[[source]]` table; the repository is initialised.
    pub fn new(database_url: &str, extra: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("lifeboat-pg-cli-")
            .tempdir()
            .expect("tempdir");
        let ws = Workspace {
            config: tmp.path().join("lifeboat.toml"),
            repo: tmp.path().join("repo"),
            database_url: database_url.to_string(),
            tmp,
        };
        fs::write(ws.path("pass"), "correct horse battery staple\n").expect("password file");
        ws.write_config(extra);
        let r = ws.run(&["init"]);
        r.ok();
        assert!(ws.repo.join("config").is_file(), "{r:?}");
        ws
    }

    /// Rewrite the config with other `extra` source lines.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "[repository]\nurl = {:?}\npassword_file = {:?}\n\n[[source]]\nname = \"main\"\nkind = \"postgres\"\nurl = \"env:DATABASE_URL\"\n{extra}\n",
            self.repo.display().to_string(),
            self.path("pass").display().to_string()
        );
        fs::write(&self.config, text).expect("write config");
    }

    /// A path inside the workspace.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// The binary with no inherited `LIFEBOAT_*`/`PG*` variables, this
    /// workspace's config and `DATABASE_URL`.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            let b = k.as_bytes();
            if b.starts_with(b"LIFEBOAT_") || b.starts_with(b"PG") {
                c.env_remove(k);
            }
        }
        c.env_remove("RUST_BACKTRACE")
            .env("LIFEBOAT_CONFIG", &self.config)
            .env("DATABASE_URL", &self.database_url)
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        c
    }

    /// Run with arguments.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    /// Run after adjusting the command (environment).
    pub fn run_with(&self, args: &[&str], f: impl FnOnce(&mut Command)) -> Run {
        let mut c = self.cmd();
        f(&mut c);
        c.args(args);
        let o = c.output().expect("run lifeboat");
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what: format!("lifeboat {}", args.join(" ")),
        }
    }

    /// `--json backup main [args]`: asserts success and returns the JSON.
    #[track_caller]
    pub fn backup(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json", "backup", "main"];
        a.extend_from_slice(args);
        let r = self.run(&a);
        r.ok();
        let v = r.json();
        assert_eq!(v["id"].as_str().map(str::len), Some(64), "{v}");
        assert_eq!(v["snapshot"]["kind"], "postgres-logical", "{v}");
        assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
        v
    }

    /// `restore SNAP --to URL [args]` (human output, so notes are on stderr).
    pub fn restore(&self, snap: &str, to: &str, args: &[&str]) -> Run {
        let mut a = vec!["restore", snap, "--to", to];
        a.extend_from_slice(args);
        self.run(&a)
    }

    /// `snapshots --json`.
    #[track_caller]
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let r = self.run(&["--json", "snapshots"]);
        r.ok();
        r.json().as_array().expect("array").clone()
    }

    /// Regular files below `repo/<dir>`, recursively.
    pub fn repo_files(&self, dir: &str) -> usize {
        fn count(p: &Path) -> usize {
            match fs::read_dir(p) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| {
                        let ft = e.file_type().expect("file type");
                        if ft.is_dir() {
                            count(&e.path())
                        } else {
                            usize::from(ft.is_file())
                        }
                    })
                    .sum(),
                Err(_) => 0,
            }
        }
        count(&self.repo.join(dir))
    }
}

/// Run a stock PostgreSQL client tool of `c` against database `db`
/// (`-h SOCKET_DIR -p PORT -U postgres -d db` appended by the caller's args,
/// the password in `PGPASSWORD`).
pub fn stock_tool(c: &ScratchCluster, program: &Path, db: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.as_bytes().starts_with(b"PG") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("-h")
        .arg(c.socket_dir())
        .args(["-p", &c.port().to_string(), "-U", "postgres"])
        .env("PGPASSWORD", c.password())
        .arg(format!("--dbname={db}"))
        .args(args)
        .stdin(Stdio::null());
    let o = cmd.output().expect("run stock tool");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        what: format!("{} {db} {}", program.display(), args.join(" ")),
    }
}

/// A port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[allow(unused_imports)]
pub use crate::common::tmpfs_or_skip;

/// What a Supabase project's database holds before its user touches it
/// (roles, `extensions`, `auth`, `storage`, grants): fixtures/supabase/platform.sql.
pub const SUPABASE_PLATFORM: &str = include_str!("../fixtures/supabase/platform.sql");

/// What a user adds on top (public tables, RLS policies, a trigger on
/// `auth.users`, rows): fixtures/supabase/project.sql.
pub const SUPABASE_PROJECT: &str = include_str!("../fixtures/supabase/project.sql");

/// Create database `db` on `c` as a Supabase-like project: the platform
/// only (`with_project = false`, a restore target), or with the user's
/// project loaded on top.
pub fn load_supabase(c: &ScratchCluster, db: &str, with_project: bool) {
    c.create_database(db).expect("create database");
    c.run_sql_in(db, SUPABASE_PLATFORM)
        .expect("supabase platform.sql loads");
    if with_project {
        c.run_sql_in(db, SUPABASE_PROJECT)
            .expect("supabase project.sql loads");
    }
}
