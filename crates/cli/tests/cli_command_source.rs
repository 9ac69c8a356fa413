//! End-to-end tests of `kind = "command"` sources with the real binary: the
//! program's stdout is stored as a file with secrets redacted and restored
//! like a files snapshot; a failing, missing or hanging program fails the
//! backup (exit 16) with its status and stderr, and leaves no snapshot; a
//! program writing a lot streams through with flat memory.
#![allow(unsafe_code)]

mod common;

use common::*;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

/// Write `lifeboat.toml` with one command source `cfg` running `argv`,
/// plus `extra` TOML lines in its table.
fn configure(ws: &Workspace, argv: &[&str], extra: &str) {
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    fs::write(
        ws.path("lifeboat.toml"),
        format!(
            "[[source]]\nname = \"cfg\"\nkind = \"command\"\ncommand = [{}]\n{extra}\n",
            argv.join(", ")
        ),
    )
    .unwrap();
}

/// Run with the workspace's config.
fn run(ws: &Workspace, args: &[&str]) -> Run {
    ws.run_env(
        args,
        &[("LIFEBOAT_CONFIG", ws.path("lifeboat.toml").as_os_str())],
    )
}

/// Restore the latest snapshot into `out` and return the stored file's bytes.
fn restored(ws: &Workspace, file: &str) -> Vec<u8> {
    let out = ws.path("out");
    run(ws, &["restore", "latest", "--to", out.to_str().unwrap()]).ok();
    fs::read(out.join(file)).expect("restored file")
}

#[test]
fn command_output_is_stored_redacted_and_restored_as_a_file() {
    let ws = Workspace::init();
    // No shell: `$HOME` reaches printf literally. Only `pass_env` variables
    // (and the allowlist) reach the program.
    configure(
        &ws,
        &[
            "sh",
            "-c",
            "printf 'API_KEY=sk_live_x\\nPORT=3000\\n'; printf 'SHOWN=%s\\nLEAKED=%s%s\\n' \"$LB_TEST_SHOWN\" \"$LB_TEST_HIDDEN\" \"$LIFEBOAT_PASSWORD_FILE\"; printf '%s\\n' \"$0\"",
            "$HOME",
        ],
        "file = \"platform.env\"\npass_env = [\"LB_TEST_SHOWN\"]",
    );
    let r = ws.run_env(
        &["--json", "backup", "cfg"],
        &[
            ("LIFEBOAT_CONFIG", ws.path("lifeboat.toml").as_os_str()),
            ("LB_TEST_SHOWN", "visible".as_ref()),
            ("LB_TEST_HIDDEN", "must-not-pass".as_ref()),
        ],
    );
    r.ok();
    let v = r.json();
    assert_eq!(v["snapshot"]["kind"], "command", "{v}");
    assert_eq!(v["snapshot"]["meta"]["file"], "platform.env", "{v}");
    assert_eq!(v["snapshot"]["meta"]["redacted_values"], 1, "{v}");
    assert_eq!(v["snapshot"]["meta"]["command"][0], "sh", "{v}");
    let want = "API_KEY=<redacted>\nPORT=3000\nSHOWN=visible\nLEAKED=\n$HOME\n";
    assert_eq!(v["snapshot"]["stats"]["bytes"], want.len(), "{v}");
    let ls = run(&ws, &["ls", "latest"]);
    ls.ok();
    assert!(ls.stdout.contains("platform.env"), "{}", ls.stdout);
    assert_eq!(
        String::from_utf8(restored(&ws, "platform.env")).unwrap(),
        want
    );
    // The repository holds no trace of the secret.
    let (code, report) = ws.verify(&["--read-data"]);
    assert_eq!(code, 0, "{report}");
    let snaps = ws.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["kind"], "command");
}

#[test]
fn a_failing_command_fails_the_backup_with_its_status_and_stderr() {
    let ws = Workspace::init();
    configure(
        &ws,
        &[
            "sh",
            "-c",
            "echo 'API_KEY=partial'; echo 'vercel: error: token expired' >&2; exit 3",
        ],
        "",
    );
    let line = run(&ws, &["backup", "cfg"]).error(
        16,
        &[
            "\"sh\" failed",
            "exit status: 3",
            "vercel: error: token expired",
            "nothing was stored",
        ],
    );
    assert!(!line.contains("partial"), "{line}");
    assert!(ws.snapshots().is_empty(), "no snapshot after a failure");
    // JSON errors carry the stable code.
    let r = run(&ws, &["--json", "backup", "cfg"]);
    r.code(16);
    assert_eq!(r.json()["error"]["code"], "source", "{}", r.stdout);
    assert_eq!(
        r.json()["error"]["detail"],
        "command_failed",
        "{}",
        r.stdout
    );
    // A program that is not there.
    configure(&ws, &["lifeboat-test-no-such-program"], "");
    run(&ws, &["backup", "cfg"]).error(
        16,
        &["cannot start \"lifeboat-test-no-such-program\"", "PATH"],
    );
    assert!(ws.snapshots().is_empty());
    // An empty command is a config error.
    fs::write(
        ws.path("lifeboat.toml"),
        "[[source]]\nname = \"cfg\"\nkind = \"command\"\n",
    )
    .unwrap();
    run(&ws, &["backup", "cfg"]).error(15, &["needs `command = ["]);
}

#[test]
fn a_failing_commands_stderr_in_the_error_quotes_no_secret() {
    let ws = Workspace::init();
    configure(
        &ws,
        &[
            "sh",
            "-c",
            "echo \"error: token $LB_TEST_TOKEN rejected\" >&2; echo 'tried postgres://app:hunter2@db/x' >&2; exit 1",
        ],
        "pass_env = [\"LB_TEST_TOKEN\"]",
    );
    let r = ws.run_env(
        &["backup", "cfg"],
        &[
            ("LIFEBOAT_CONFIG", ws.path("lifeboat.toml").as_os_str()),
            ("LB_TEST_TOKEN", "sk_live_passed_in".as_ref()),
        ],
    );
    r.code(16);
    let err = &r.stderr;
    assert!(
        err.contains("error: token <redacted> rejected")
            && err.contains("postgres://app:<redacted>@db/x"),
        "{err}"
    );
    assert!(
        !err.contains("sk_live_passed_in") && !err.contains("hunter2"),
        "{err}"
    );
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) S ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn a_hanging_command_is_killed_with_its_process_group_at_the_timeout() {
    let ws = Workspace::init();
    let pids = ws.path("pids");
    // The shell starts a background sleeper (holding stdout open) and waits.
    let script = format!(
        "sleep 1000 & echo $! > {p}; echo $$ >> {p}; echo 'TOKEN=abc'; wait",
        p = pids.display()
    );
    configure(&ws, &["sh", "-c", &script], "timeout = 1");
    run(&ws, &["backup", "cfg"]).error(
        16,
        &[
            "did not finish within 1 s",
            "killed with its process group",
            "timeout",
        ],
    );
    assert!(ws.snapshots().is_empty(), "no snapshot after a timeout");
    let pids: Vec<u32> = fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    // SIGKILL was sent before lifeboat returned; wait (bounded) for the
    // kernel to finish the processes off.
    for pid in pids {
        let mut tries = 0;
        while !gone(pid) && tries < 200 {
            std::thread::sleep(std::time::Duration::from_millis(25));
            tries += 1;
        }
        assert!(gone(pid), "process {pid} of the command still runs");
    }
}

#[test]
fn a_process_leaving_the_group_with_stdout_open_does_not_outlast_the_timeout() {
    let ws = Workspace::init();
    let pid_file = ws.path("escaped.pid");
    // `setsid` puts the sleeper in a session of its own, out of reach of
    // the group kill, and it holds the output pipe open: the output only
    // ends when the sleeper does.
    let script = format!(
        "setsid sh -c 'echo $$ > {p}; exec sleep 1000' & echo TOKEN=abc",
        p = pid_file.display()
    );
    configure(&ws, &["sh", "-c", &script], "timeout = 1");
    let mut c = ws.cmd();
    c.env("LIFEBOAT_CONFIG", ws.path("lifeboat.toml"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run_cmd(c, &["backup", "cfg"]));
    });
    // A bound on a hang, not a timing assertion: lifeboat must return at
    // its 1 s timeout, long before the sleeper ends.
    let outcome = rx.recv_timeout(std::time::Duration::from_secs(120));
    let escaped: Option<i32> = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    if let Some(pid) = escaped {
        // SAFETY: kill(2) on the sleeper this test's command started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let r = outcome.expect("lifeboat still waits for the output of a process that left the group");
    r.error(16, &["did not finish within 1 s", "timeout"]);
    assert!(ws.snapshots().is_empty(), "no snapshot after a timeout");
}

/// Peak RSS (KiB) of `lifeboat backup cfg` with the workspace's key file.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reads its rusage
fn backup_peak_rss_kib(ws: &Workspace) -> i64 {
    let err = ws.path("stderr.txt");
    let mut c = ws.cmd();
    c.env_remove("LIFEBOAT_PASSWORD_FILE")
        .env("LIFEBOAT_KEY_FILE", ws.path("key"))
        .env("LIFEBOAT_CONFIG", ws.path("lifeboat.toml"))
        .args(["backup", "cfg"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap());
    let child = c.spawn().expect("run lifeboat");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `pid` is our own child, not yet waited for; both pointers are valid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(reaped, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "lifeboat backup failed: {}",
        fs::read_to_string(&err).unwrap_or_default()
    );
    // SAFETY: wait4 succeeded, so it filled `usage`.
    unsafe { usage.assume_init() }.ru_maxrss
}

/// Whether the restored file is exactly `seq 1 n`'s output (compared streaming).
fn is_seq(path: &std::path::Path, n: u64) -> bool {
    let mut r = BufReader::new(fs::File::open(path).unwrap());
    let mut line = String::new();
    for i in 1..=n {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 || line != format!("{i}\n") {
            return false;
        }
    }
    r.read(&mut [0u8; 1]).unwrap() == 0
}

#[test]
fn a_command_writing_a_lot_streams_with_flat_memory() {
    const SMALL: u64 = 4_000_000; // about 31 MB
    const LARGE: u64 = 20_000_000; // about 169 MB
    let ws = Workspace::init();
    ws.run(&["key", "export", "-o", "key"]).ok();
    let mut peaks = Vec::new();
    for n in [SMALL, LARGE] {
        configure(&ws, &["seq", "1", &n.to_string()], "file = \"seq.txt\"");
        peaks.push(backup_peak_rss_kib(&ws));
    }
    let out = ws.path("out");
    run(&ws, &["restore", "latest", "--to", out.to_str().unwrap()]).ok();
    assert!(
        is_seq(&out.join("seq.txt"), LARGE),
        "restored output differs"
    );
    let growth_mib = (peaks[1] - peaks[0]) / 1024;
    eprintln!(
        "peak RSS: {} KiB for {SMALL} lines, {} KiB for {LARGE} lines (+{growth_mib} MiB)",
        peaks[0], peaks[1]
    );
    // Both runs fill the writer's fixed pack buffers; 138 MB more output
    // must not show (buffering it would add that much).
    assert!(
        growth_mib < 16,
        "169 MB of output took {growth_mib} MiB more than 31 MB: {peaks:?}"
    );
}
