//! End-to-end tests of how the `lifeboat` binary protects what it handles on
//! real PostgreSQL: the restore-test scratch cluster admits no other OS user,
//! no child process sees lifeboat's environment, restores in restore tests
//! run without superuser rights, plaintext files are private, transaction
//! poolers are refused, and pg_dump neither waits forever for a lock nor
//! hides a full repository disk.
//!
//! Child processes are observed through a `bin_dir` of wrapper scripts that
//! record their environment (and, while a scratch cluster is up, try to get
//! into it as the `nobody` user) before running the real tool.

mod common;
mod pg_common;

use pg_common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The tools the wrapper directory provides.
const TOOLS: &[&str] = &[
    "pg_dump",
    "pg_dumpall",
    "pg_restore",
    "psql",
    "initdb",
    "pg_ctl",
];

/// What `pg_restore`'s wrapper runs first: record the mode of every file it is
/// given (spooled archive, list file); when it restores into a server on a
/// socket directory (`$PGHOST`), record the postmaster's environment and
/// sockets, then try to connect as `nobody`, over the socket and over TCP on
/// 127.0.0.1, even knowing the password (read from the password file).
const PROBE: &str = r#"
for a in "$@"; do
  case "$a" in --use-list=*) f="${a#--use-list=}" ;; *) f="$a" ;; esac
  if [ -f "$f" ]; then stat -c '%a %n' "$f" >> "$LOG/files.$$"; fi
done
if [ -d "$PGHOST" ] && [ -f "$PGHOST/../data/postmaster.pid" ]; then
  pid=$(head -1 "$PGHOST/../data/postmaster.pid")
  tr '\0' '\n' < /proc/$pid/environ > "$LOG/postmaster.$$.env"
  ls -l /proc/$pid/fd > "$LOG/postmaster.$$.fds" 2>&1
  cat /proc/net/tcp /proc/net/tcp6 > "$LOG/postmaster.$$.tcp" 2>&1
  pw=$(cut -d: -f5 "$PGPASSFILE")
  runuser -u nobody -- env -i PGPASSWORD="$pw" "$REAL/psql" -X -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -c 'SELECT 1' > "$LOG/nobody-socket.$$.out" 2>&1
  echo "exit=$?" >> "$LOG/nobody-socket.$$.out"
  runuser -u nobody -- env -i PGPASSWORD="$pw" "$REAL/psql" -X -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -c 'SELECT 1' > "$LOG/nobody-tcp.$$.out" 2>&1
  echo "exit=$?" >> "$LOG/nobody-tcp.$$.out"
fi
"#;

/// A directory of wrappers around the real tools in `real`, logging into `log`
/// (world-writable: server tools run as `postgres`).
fn wrapper_bin(dir: &Path, real: &Path, log: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::create_dir_all(log).unwrap();
    fs::set_permissions(log, fs::Permissions::from_mode(0o777)).unwrap();
    for tool in TOOLS {
        let probe = if *tool == "pg_restore" { PROBE } else { "" };
        let script = format!(
            "#!/bin/sh\nLOG='{}'\nREAL='{}'\nenv > \"$LOG/{tool}.$$.env\"\necho \"$@\" > \"$LOG/{tool}.$$.args\"\n{probe}\nexec \"$REAL/{tool}\" \"$@\"\n",
            log.display(),
            real.display()
        );
        let path = dir.join(tool);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The log files whose name starts with `prefix`, with their text.
fn logs(log: &Path, prefix: &str) -> Vec<(PathBuf, String)> {
    let mut out: Vec<_> = fs::read_dir(log)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| (e.path(), fs::read_to_string(e.path()).unwrap_or_default()))
        .collect();
    out.sort();
    out
}

fn env_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect()
}

/// Variables a client tool may see: the allowlist of `sources::process` plus
/// the connection settings lifeboat sets, and what `/bin/sh` itself adds.
const CLIENT_ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "TZ",
    "LC_ALL",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSFILE",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGCLIENTENCODING",
    "PGOPTIONS",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
];

/// Variables the scratch server may see (pg_ctl adds `PGDATA` and
/// `PG_GRANDPARENT_PID`; the postmaster sets `PGLOCALEDIR`/`PGSYSCONFDIR`).
const SERVER_ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "LC_ALL",
    "PGDATA",
    "PG_GRANDPARENT_PID",
    "PGLOCALEDIR",
    "PGSYSCONFDIR",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
];

/// Socket inodes of a process (from `ls -l /proc/PID/fd`).
fn socket_inodes(fds: &str) -> Vec<String> {
    fds.split("socket:[")
        .skip(1)
        .filter_map(|s| s.split(']').next().map(str::to_string))
        .collect()
}

/// Inodes of TCP sockets in state LISTEN (`0A`) in `/proc/net/tcp{,6}`.
fn listening_tcp_inodes(tcp: &str) -> Vec<String> {
    tcp.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[3] == "0A").then(|| f[9].to_string())
        })
        .collect()
}

#[test]
fn restore_test_cluster_admits_no_other_user_and_no_child_sees_lifeboats_environment() {
    let src = kitchen_sink_cluster();
    let tmp = tempfile::Builder::new()
        .prefix("lifeboat-wrap-")
        .tempdir()
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (bin, log) = (tmp.path().join("bin"), tmp.path().join("log"));
    wrapper_bin(&bin, &server_bin(), &log);
    let ws = Workspace::new(
        &url(&src, "ks"),
        &format!(
            "bin_dir = {:?}\nverify = {{ assertions = [\"SELECT count(*) = 3000 FROM public.users\"] }}",
            bin.display().to_string()
        ),
    );
    let canary = "canary-7d1f0c2e";
    let secret_env = |c: &mut std::process::Command| {
        c.env("LIFEBOAT_TEST_CANARY", canary)
            .env("LIFEBOAT_PASSWORD", "correct horse battery staple");
    };
    let r = ws.run_with(&["--json", "backup", "main"], secret_env);
    r.ok();
    let r = ws.run_with(&["--json", "verify", "--restore-test"], secret_env);
    r.ok();
    let report = &r.json()["restore_test"];
    assert_eq!(report["ok"], true, "{report}");

    // Every PostgreSQL tool lifeboat started ran through a wrapper...
    for tool in TOOLS {
        assert!(
            !logs(&log, &format!("{tool}.")).is_empty(),
            "{tool} never ran"
        );
    }
    // ...and saw only allowlisted variables: no canary, no repository password,
    // no database URL or password, no PGPASSWORD.
    let secrets = [
        canary,
        "correct horse battery staple",
        src.password(),
        ws.database_url.as_str(),
    ];
    let mut envs = logs(&log, "");
    envs.retain(|(p, _)| p.extension().is_some_and(|e| e == "env"));
    assert!(envs.len() > 10, "{envs:?}");
    for (path, text) in &envs {
        for s in secrets {
            assert!(
                !text.contains(s),
                "{} contains {s:?}:\n{text}",
                path.display()
            );
        }
        let name = path.file_name().unwrap().to_string_lossy();
        let server = ["initdb.", "pg_ctl.", "postmaster."]
            .iter()
            .any(|p| name.starts_with(p));
        let allowed = if server {
            SERVER_ALLOWED
        } else {
            CLIENT_ALLOWED
        };
        let extra: Vec<String> = env_names(text)
            .into_iter()
            .filter(|n| !allowed.contains(&n.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "{} has {extra:?}:\n{text}",
            path.display()
        );
        assert_eq!(
            text.lines().find(|l| l.starts_with("LC_ALL=")),
            Some("LC_ALL=C"),
            "{}",
            path.display()
        );
    }

    // pg_dump ran in the snapshot the catalog facts were read in, and with a
    // lock timeout (the default, 30 s).
    let dumps: Vec<String> = logs(&log, "pg_dump.")
        .into_iter()
        .filter(|(p, t)| {
            p.extension().is_some_and(|e| e == "args") && t.contains("--format=custom")
        })
        .map(|(_, t)| t)
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert!(dumps[0].contains("--snapshot=0"), "{}", dumps[0]);
    assert!(
        dumps[0].contains("--lock-wait-timeout=30000"),
        "{}",
        dumps[0]
    );

    // During the restore test, `nobody` could not connect, over the socket
    // (its directory is private) nor over TCP (the server has no TCP port).
    let socket = logs(&log, "nobody-socket.");
    let tcp = logs(&log, "nobody-tcp.");
    assert!(!socket.is_empty() && !tcp.is_empty(), "no probe ran");
    for (path, text) in socket.iter().chain(&tcp) {
        assert!(!text.contains("exit=0"), "{}: {text}", path.display());
        assert!(!text.contains("(1 row)"), "{}: {text}", path.display());
    }
    assert!(
        socket.iter().all(|(_, t)| t.contains("Permission denied")),
        "{socket:?}"
    );
    assert!(
        tcp.iter().all(|(_, t)| t.contains("Connection refused")),
        "{tcp:?}"
    );
    for ((_, fds), (_, net)) in logs(&log, "postmaster.")
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "fds"))
        .zip(
            logs(&log, "postmaster.")
                .iter()
                .filter(|(p, _)| p.extension().is_some_and(|e| e == "tcp")),
        )
    {
        let listening = listening_tcp_inodes(net);
        let own = socket_inodes(fds);
        assert!(!own.is_empty(), "{fds}");
        assert!(
            own.iter().all(|i| !listening.contains(i)),
            "the scratch server listens on TCP: {own:?} in {listening:?}"
        );
    }

    // The archive (trusted extensions only) was restored without superuser rights.
    assert_eq!(report["restored_as"], "lifeboat_restore", "{report}");
    assert_eq!(
        report["superuser_reason"],
        serde_json::Value::Null,
        "{report}"
    );
    let restore = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restore")
        .unwrap()
        .clone();
    assert!(
        restore["detail"]
            .as_str()
            .unwrap()
            .contains("as lifeboat_restore (no superuser rights)"),
        "{restore}"
    );
}

#[test]
fn scratch_cluster_refuses_other_os_users_on_socket_and_tcp() {
    let c = cluster();
    assert_eq!(value(&c, "postgres", "SELECT 1"), "1");
    let psql = c.tools().psql.clone();
    let try_as_nobody = |host: &str| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "env", "-i"])
            .arg(format!("PGPASSWORD={}", c.password()))
            .arg(&psql)
            .args(["-X", "-h", host, "-p", &c.port().to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-c", "SELECT 1"])
            .output()
            .expect("runuser runs")
    };
    let socket = try_as_nobody(&c.socket_dir().to_string_lossy());
    let err = String::from_utf8_lossy(&socket.stderr);
    assert!(!socket.status.success(), "nobody connected over the socket");
    assert!(err.contains("Permission denied"), "{err}");
    let tcp = try_as_nobody("127.0.0.1");
    let err = String::from_utf8_lossy(&tcp.stderr);
    assert!(!tcp.status.success(), "nobody connected over TCP");
    assert!(err.contains("Connection refused"), "{err}");
    // Even the right OS user needs the password.
    let mut no_password = std::process::Command::new(&psql);
    no_password
        .env_clear()
        .arg("-X")
        .arg("-h")
        .arg(c.socket_dir())
        .args([
            "-p",
            &c.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["--no-password", "-c", "SELECT 1"]);
    let out = no_password.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = fs::metadata(c.socket_dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn restore_test_of_an_archive_with_an_untrusted_extension_says_it_used_the_superuser() {
    let src = cluster();
    src.create_database("ext").unwrap();
    src.run_sql_in(
        "ext",
        "CREATE EXTENSION dblink; CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
    let ws = Workspace::new(&url(&src, "ext"), "");
    ws.backup(&[]);
    let r = ws.run(&["--json", "verify", "--restore-test"]);
    r.ok();
    let report = &r.json()["restore_test"];
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["restored_as"], "postgres", "{report}");
    let reason = report["superuser_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("extension dblink (not trusted)"),
        "{report}"
    );
}

#[test]
fn exported_dumps_and_restore_spools_are_created_private() {
    let src = cluster();
    src.create_database("ks").unwrap();
    src.run_sql_in(
        "ks",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'secret ' || g FROM generate_series(1, 100) g;",
    )
    .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("lifeboat-wrap-")
        .tempdir()
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (bin, log) = (tmp.path().join("bin"), tmp.path().join("log"));
    wrapper_bin(&bin, &server_bin(), &log);
    let ws = Workspace::new(
        &url(&src, "ks"),
        &format!("bin_dir = {:?}", bin.display().to_string()),
    );
    ws.backup(&[]);
    for format in ["custom", "plain"] {
        let out = ws.path(format!("export.{format}"));
        let r = ws.run(&[
            "dump",
            "export",
            "latest",
            "--format",
            format,
            "-o",
            &out.to_string_lossy(),
        ]);
        r.ok();
        let meta = fs::metadata(&out).unwrap();
        assert!(meta.len() > 100, "{format}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{format} export");
    }
    // A parallel, partial restore writes the archive's TOC and list files;
    // with --clean (the single-stream path) it spools the whole archive.
    for (db, clean) in [("copy", false), ("spooled", true)] {
        let mut args = vec!["--jobs", "2", "--table", "public.t"];
        args.extend(clean.then_some("--clean"));
        ws.restore("latest", &url(&src, db), &args).ok();
        assert_eq!(value(&src, db, "SELECT count(*) FROM t"), "100");
    }
    let files: Vec<String> = logs(&log, "files.")
        .into_iter()
        .flat_map(|(_, t)| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for name in [
        "/toc-database.dump",
        "/data-0.list",
        "/post.list",
        "/database.dump",
        "/restore.list",
    ] {
        assert!(files.iter().any(|l| l.ends_with(name)), "{name}: {files:?}");
    }
    for line in &files {
        assert!(line.starts_with("600 "), "not private: {line}");
    }
}

/// A real PgBouncer (run as the `postgres` OS user) on 127.0.0.1 in front of
/// the scratch cluster `c`, in `mode` (`transaction` or `session`); killed on drop.
struct Pgbouncer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Pgbouncer {
    /// `None` (with a note) when pgbouncer is not installed.
    fn start(c: &lifeboat_sources::postgres::ScratchCluster, mode: &str) -> Option<Self> {
        use std::os::unix::process::CommandExt;
        let Ok(bin) = which("pgbouncer") else {
            common::skip_or_fail(
                "a_transaction_pooler_is_refused_whatever_the_port_and_a_session_pooler_is_not",
                "pgbouncer is not installed (scripts/setup.sh installs it)",
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-pgbouncer-")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let port = closed_port();
        let ini = dir.path().join("pgbouncer.ini");
        fs::write(dir.path().join("users.txt"), "\"postgres\" \"unused\"\n").unwrap();
        fs::write(
            &ini,
            format!(
                "[databases]\n* = host={sock} port={pgport} user=postgres password={pw}\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = any\nauth_file = {dir}/users.txt\npool_mode = {mode}\n\
                 default_pool_size = 4\nignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
                sock = c.socket_dir().display(),
                pgport = c.port(),
                pw = c.password(),
                dir = dir.path().display(),
            ),
        )
        .unwrap();
        let (uid, gid) = postgres_ids();
        let mut cmd = std::process::Command::new(bin);
        cmd.arg(&ini)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some((uid, gid)) = uid.zip(gid) {
            cmd.uid(uid).gid(gid);
        }
        let bouncer = Pgbouncer {
            child: cmd.spawn().expect("pgbouncer starts"),
            port,
            _dir: dir,
        };
        bouncer.wait_ready(c);
        Some(bouncer)
    }

    fn url(&self, c: &lifeboat_sources::postgres::ScratchCluster, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            c.password(),
            self.port
        )
    }

    /// Polls until a query through the pooler answers (readiness, not timing).
    fn wait_ready(&self, c: &lifeboat_sources::postgres::ScratchCluster) {
        let target = lifeboat_sources::postgres::PgTarget::parse(&self.url(c, "postgres")).unwrap();
        for _ in 0..200 {
            if lifeboat_sources::postgres::psql::run_sql(c.tools(), &target, "SELECT 1").is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("pgbouncer did not come up");
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

/// uid and gid of the `postgres` OS user when we are root (else `None`).
fn postgres_ids() -> (Option<u32>, Option<u32>) {
    use std::os::unix::fs::MetadataExt;
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return (None, None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let f: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .expect("postgres OS user");
    (f[2].parse().ok(), f[3].parse().ok())
}

#[test]
fn a_transaction_pooler_is_refused_whatever_the_port_and_a_session_pooler_is_not() {
    let src = cluster();
    src.create_database("ks").unwrap();
    src.run_sql_in(
        "ks",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
    let Some(tx) = Pgbouncer::start(&src, "transaction") else {
        return;
    };
    assert_ne!(tx.port, 6543, "not judged by the port");
    let mut ws = Workspace::new(&tx.url(&src, "ks"), "");
    let line = ws.run(&["backup", "main"]).error(
        15,
        &["transaction-mode connection pooler", "port 5432", "session"],
    );
    assert!(line.contains(&format!("127.0.0.1:{}", tx.port)), "{line}");
    assert!(ws.snapshots().is_empty());
    drop(tx);

    // A session-mode pooler keeps one server connection per client: fine.
    let Some(session) = Pgbouncer::start(&src, "session") else {
        return;
    };
    ws.database_url = session.url(&src, "ks");
    let b = ws.backup(&[]);
    assert_eq!(b["snapshot"]["meta"]["tables"][0]["rows"], 2, "{b}");
    // And a direct connection is not refused either.
    ws.database_url = url(&src, "ks");
    ws.backup(&[]);
}

#[test]
fn a_backup_behind_an_exclusive_lock_fails_clearly_and_leaves_no_snapshot() {
    let src = cluster();
    src.create_database("ks").unwrap();
    src.run_sql_in(
        "ks",
        "CREATE TABLE busy (id int); INSERT INTO busy VALUES (1);",
    )
    .unwrap();
    let ws = Workspace::new(&url(&src, "ks"), "lock_wait_timeout = 1");
    let mut holder =
        lifeboat_sources::postgres::session::Session::open(src.tools(), &target(&src, "ks"))
            .unwrap();
    holder
        .query("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    let line = ws
        .run(&["backup", "main"])
        .error(16, &["lock_wait_timeout", "lock"]);
    assert!(
        line.contains("busy") || line.contains("lock timeout"),
        "{line}"
    );
    assert!(ws.snapshots().is_empty());
    assert_eq!(ws.repo_files("snapshots"), 0);
    holder.close();
    // Once the lock is gone the same backup works.
    ws.backup(&[]);
}

#[test]
fn a_full_repository_disk_during_a_dump_is_exit_17_not_a_pg_dump_failure() {
    let Some(tmpfs) = tmpfs_or_skip(
        "a_full_repository_disk_during_a_dump_is_exit_17_not_a_pg_dump_failure",
        "2m",
    ) else {
        return;
    };
    let src = cluster();
    src.create_database("big").unwrap();
    // About 90 MB of hex text, over 40 MB compressed: several 16 MiB packs,
    // so the disk fills while pg_dump is still streaming (not only at the end).
    src.run_sql_in(
        "big",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) \
         || md5((g * 13)::text) || md5((g * 31)::text) AS v FROM generate_series(1, 700000) g;",
    )
    .unwrap();
    let mut ws = Workspace::new(&url(&src, "big"), "");
    ws.repo = tmpfs.path.join("repo");
    ws.write_config("");
    ws.run(&["init"]).ok();
    let line = ws.run(&["backup", "main"]).error(17, &[]);
    assert!(line.to_lowercase().contains("no space"), "{line}");
    assert!(!line.contains("pg_dump failed"), "{line}");
    assert!(ws.snapshots().is_empty());
}

#[test]
fn globals_with_a_psql_meta_command_smuggled_in_a_role_name_are_refused() {
    // A role name with a line break: pg_dumpall before 15.14 / 16.10 / 17.6
    // (CVE-2025-8714) wrote it raw into a `--` comment ("User Config"), so the
    // text after the break is a line of its own that psql reads as a
    // meta-command (`\!` runs a shell command as lifeboat's OS user), and it
    // wrote no `\restrict`. The wrapper turns today's pg_dumpall output back
    // into that form.
    let src = cluster();
    src.create_database("app").unwrap();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("pwned");
    let evil = format!("x\n\\! touch {}", marker.display());
    src.run_sql_in(
        "app",
        &format!(
            "CREATE ROLE \"{evil}\"; ALTER ROLE \"{evil}\" SET work_mem = '8MB'; CREATE TABLE t (id int);"
        ),
    )
    .unwrap();
    let (bin, log) = (work.path().join("bin"), work.path().join("log"));
    wrapper_bin(&bin, &server_bin(), &log);
    let old_dumpall = format!(
        "#!/bin/sh\n'{}/pg_dumpall' \"$@\" | sed -e '/^\\\\restrict /d' -e '/^\\\\unrestrict /d' -e 's/^-- User Config \"x \\\\!/-- User Config \"x\\n\\\\!/'\n",
        server_bin().display()
    );
    fs::write(bin.join("pg_dumpall"), old_dumpall).unwrap();
    let ws = Workspace::new(
        &url(&src, "app"),
        &format!("bin_dir = {:?}", bin.display().to_string()),
    );
    ws.backup(&[]);
    let other = cluster();
    let r = ws.restore("latest", &url(&other, "app"), &["--roles"]);
    let line = r.error(
        16,
        &["globals.sql", "meta-command", "\\\\!", "without --roles"],
    );
    assert!(!marker.exists(), "{line}");
    assert_eq!(
        rows(
            &other,
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'x%'"
        ),
        vec!["0".to_string()],
        "nothing was applied"
    );
}

#[test]
fn a_role_with_too_low_a_connection_limit_gets_an_error_that_names_the_limit() {
    // A backup holds two connections at once (the snapshot session and
    // pg_dump); a role limited to one is told so, and what to raise.
    let src = cluster();
    src.create_database("app").unwrap();
    src.create_login_role("lim").unwrap();
    src.run_sql_in(
        "app",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1); GRANT SELECT ON t TO lim; \
         ALTER ROLE lim CONNECTION LIMIT 1;",
    )
    .unwrap();
    let mut ws = Workspace::new(&src.url_for("lim", "app"), "");
    let line = ws.run(&["backup", "main"]).error(
        16,
        &[
            "refused another connection",
            "too many connections for role",
            "CONNECTION LIMIT 3",
        ],
    );
    assert!(ws.snapshots().is_empty(), "{line}");
    // The advice is enough.
    src.run_sql("ALTER ROLE lim CONNECTION LIMIT 3;").unwrap();
    ws.database_url = src.url_for("lim", "app");
    ws.backup(&[]);
}

fn scratch_dirs(base: &Path) -> Vec<PathBuf> {
    fs::read_dir(base)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("lifeboat-pg-")
        })
        .collect()
}

#[test]
fn a_restore_test_cluster_left_by_a_killed_lifeboat_is_stopped_and_removed_by_the_next_one() {
    let src = cluster();
    src.create_database("app").unwrap();
    src.run_sql_in(
        "app",
        "CREATE TABLE t (id int, pad text); \
         INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g;",
    )
    .unwrap();
    let ws = Workspace::new(&url(&src, "app"), "");
    ws.backup(&[]);
    let tmp = tempfile::tempdir().unwrap();
    // The server runs as `postgres` when we are root: it must traverse TMPDIR.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o711)).unwrap();

    let mut cmd = ws.cmd();
    cmd.env("TMPDIR", tmp.path())
        .args(["verify", "--restore-test"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    let postmaster = loop {
        let pid = scratch_dirs(tmp.path()).iter().find_map(|d| {
            fs::read_to_string(d.join("data/postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        });
        if let Some(pid) = pid {
            break pid;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "verify ended before its cluster was seen"
        );
        assert!(
            start.elapsed().as_secs() < 60,
            "no scratch cluster appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let alive = |pid: u32| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
    };
    assert!(
        alive(postmaster),
        "the killed run's server is still running (what is reaped)"
    );
    let left = scratch_dirs(tmp.path());
    assert_eq!(left.len(), 1, "{left:?}");

    let r = ws.run_with(&["verify", "--restore-test"], |c| {
        c.env("TMPDIR", tmp.path());
    });
    r.ok();
    assert!(!alive(postmaster), "the orphaned server was stopped");
    assert!(
        !left[0].exists(),
        "its directory (restored rows) was removed"
    );
    assert!(scratch_dirs(tmp.path()).is_empty());
}

/// An export that fails half way (here: a damaged pack) removes the file it
/// created: a truncated plain script would otherwise run in psql without
/// complaint, and the retry would be refused because the file exists.
#[test]
fn a_failed_export_leaves_no_partial_dump_behind() {
    let src = cluster();
    src.create_database("pe").unwrap();
    src.run_sql_in(
        "pe",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;",
    )
    .unwrap();
    let ws = Workspace::new(&url(&src, "pe"), "");
    ws.backup(&[]);
    for (_, path, size) in common::packs(&ws.repo) {
        common::flip_byte(&path, (size / 2) as usize);
    }
    for format in ["custom", "plain"] {
        let out = ws.path(format!("broken.{format}"));
        let r = ws.run(&[
            "dump",
            "export",
            "latest",
            "--format",
            format,
            "-o",
            &out.to_string_lossy(),
        ]);
        assert_ne!(r.code, 0, "{format}: {r:?}");
        assert!(!out.exists(), "{format}: a partial export was left: {r:?}");
    }
}

/// psql losing its connection while applying globals.sql (exit 2) fails the
/// restore: the roles were not applied, which was reported as success.
#[test]
fn restore_fails_when_psql_cannot_apply_the_globals() {
    let src = cluster();
    src.create_database("gl").unwrap();
    src.run_sql_in("gl", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("lifeboat-gl-")
        .tempdir()
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let real = server_bin();
    for tool in TOOLS {
        // psql running the globals script (`-f -` with ON_ERROR_STOP=0) dies
        // as it does when the server goes away; every other use is real.
        let script = format!(
            "#!/bin/sh\ncase \"$*\" in *ON_ERROR_STOP=0*) cat >/dev/null; echo 'psql:<stdin>:1: fatal: connection to server was lost' >&2; exit 2;; esac\nexec '{}/{tool}' \"$@\"\n",
            real.display()
        );
        let path = bin.join(tool);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ws = Workspace::new(
        &url(&src, "gl"),
        &format!("bin_dir = {:?}", bin.display().to_string()),
    );
    ws.backup(&[]);
    let r = ws.restore("latest", &url(&src, "gl_copy"), &["--roles"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("connection to server was lost"), "{r:?}");
}
