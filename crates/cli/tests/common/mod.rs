//! Helpers for the end-to-end CLI tests: a scratch workspace with a
//! repository and password file, running the real `lifeboat` binary, and
//! comparing directory trees (kind, bytes, mode, mtime, owner, symlink target).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, UNIX_EPOCH};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// What was run, for messages.
    pub what: String,
}

impl Run {
    fn from_output(what: String, o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what,
        }
    }

    /// Assert the exit code, showing the output when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "`{}` exited {} (expected {expected})\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Assert success.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}`: stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.what, self.stdout, self.stderr
            )
        })
    }

    /// Assert the run failed with `code` and printed exactly one
    /// `lifeboat: error: ...` line on stderr containing every one of `needles`;
    /// returns that line.
    #[track_caller]
    pub fn error(&self, code: i32, needles: &[&str]) -> String {
        self.code(code);
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}`: expected one error line on stderr, got:\n{}",
            self.what,
            self.stderr
        );
        let line = lines[0];
        assert!(
            line.starts_with("lifeboat: error: "),
            "`{}`: unexpected error line: {line}",
            self.what
        );
        for n in needles {
            assert!(
                line.contains(n),
                "`{}`: error line lacks {n:?}: {line}",
                self.what
            );
        }
        line.to_string()
    }
}

/// A scratch workspace: `repo/`, `pass` (the password file) and room for data.
pub struct Workspace {
    /// Owns the directory.
    pub tmp: tempfile::TempDir,
    /// The repository location.
    pub repo: PathBuf,
    /// The password file.
    pub pass: PathBuf,
}

impl Workspace {
    /// A workspace without a repository yet.
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("lifeboat-cli-")
            .tempdir()
            .expect("tempdir");
        let repo = tmp.path().join("repo");
        let pass = tmp.path().join("pass");
        fs::write(&pass, "correct horse battery staple\n").expect("write password file");
        Workspace { tmp, repo, pass }
    }

    /// A workspace with an initialised repository.
    pub fn init() -> Self {
        let ws = Self::new();
        let r = ws.run(&["init"]);
        r.ok();
        assert!(
            r.stdout.contains("created lifeboat repository"),
            "{}",
            r.stdout
        );
        assert!(ws.repo.join("config").is_file());
        ws
    }

    /// A path inside the workspace.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Write a password file into the workspace.
    pub fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, format!("{password}\n")).expect("write password file");
        p
    }

    /// The binary with inherited `LIFEBOAT_*` variables removed and this
    /// workspace's repository and password file set.
    pub fn cmd(&self) -> Command {
        let mut c = bare_cmd();
        c.env("LIFEBOAT_REPOSITORY", &self.repo)
            .env("LIFEBOAT_PASSWORD_FILE", &self.pass)
            .current_dir(self.tmp.path());
        c
    }

    /// Run with this workspace's repository and password.
    pub fn run(&self, args: &[&str]) -> Run {
        run_cmd(self.cmd(), args)
    }

    /// Run with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &OsStr)]) -> Run {
        let mut c = self.cmd();
        for (k, v) in env {
            c.env(k, v);
        }
        run_cmd(c, args)
    }

    /// Run after adjusting the command (environment, working directory).
    pub fn run_with(&self, args: &[&str], f: impl FnOnce(&mut Command)) -> Run {
        let mut c = self.cmd();
        f(&mut c);
        run_cmd(c, args)
    }

    /// Run against another repository location (a damaged copy).
    pub fn run_on(&self, repo: &Path, args: &[&str]) -> Run {
        self.run_with(args, |c| {
            c.env("LIFEBOAT_REPOSITORY", repo);
        })
    }

    /// Run `backup --json ARGS...`, assert success, and return the output JSON.
    #[track_caller]
    pub fn backup(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json", "backup"];
        a.extend_from_slice(args);
        let r = self.run(&a);
        r.ok();
        let v = r.json();
        assert_eq!(v["id"].as_str().map(str::len), Some(64), "{v}");
        v
    }

    /// `snapshots --json`.
    #[track_caller]
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let r = self.run(&["--json", "snapshots"]);
        r.ok();
        r.json().as_array().expect("array").clone()
    }

    /// `verify --json [extra]`, returning (exit code, JSON).
    #[track_caller]
    pub fn verify(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut a = vec!["--json", "verify"];
        a.extend_from_slice(extra);
        let r = self.run(&a);
        (r.code, r.json())
    }
}

/// The binary with no `LIFEBOAT_*` variables from the environment.
pub fn bare_cmd() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.as_bytes().starts_with(b"LIFEBOAT_") {
            c.env_remove(k);
        }
    }
    c.env_remove("RUST_BACKTRACE").stdin(Stdio::null());
    c
}

/// Run a prepared command with arguments.
pub fn run_cmd(mut c: Command, args: &[&str]) -> Run {
    c.args(args);
    let what = format!("lifeboat {}", args.join(" "));
    Run::from_output(what, c.output().expect("run lifeboat"))
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Compressible text of about `n` bytes.
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 100);
    let mut i = seed;
    while out.len() < n {
        out.extend_from_slice(
            format!("line {i}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

/// Write a file with a mode and an mtime.
pub fn write_file(path: &Path, data: &[u8], mode: u32, mtime_secs: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(path, data).expect("write file");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    set_mtime(path, mtime_secs, 0);
}

/// Set the mtime (and atime) of a file or directory, following symlinks.
pub fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = UNIX_EPOCH + Duration::new(secs, nanos);
    let f = fs::File::open(path).expect("open for set_times");
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .expect("set_times");
}

/// Set the mtime of a symlink itself (`touch -h`).
pub fn set_symlink_mtime(path: &Path, secs: u64, nanos: u32) {
    let st = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{secs}.{nanos:09}"))
        .arg(path)
        .status()
        .expect("run touch");
    assert!(st.success(), "touch -h failed on {}", path.display());
}

/// What a tree entry is, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with its bytes.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symlink with its target bytes.
    Symlink(Vec<u8>),
    /// Anything else.
    Other,
}

/// One entry of a tree, for comparison.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind and content.
    pub kind: Kind,
    /// Permission bits (not compared for symlinks).
    pub mode: u32,
    /// mtime in ns.
    pub mtime_ns: i64,
    /// Owner (restored when the restore runs as root, as these tests do
    /// in CI; otherwise a test that changes owners skips that part).
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::File(b) => format!("file({} bytes, fnv {:016x})", b.len(), fnv(b)),
            Kind::Dir => "dir".into(),
            Kind::Symlink(t) => format!("symlink -> {:?}", String::from_utf8_lossy(t)),
            Kind::Other => "other".into(),
        };
        write!(
            f,
            "{kind} mode {:o} mtime_ns {} owner {}:{}",
            self.mode, self.mtime_ns, self.uid, self.gid
        )
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Every entry below (and including) `root`, keyed by the raw relative path
/// bytes (`""` is `root` itself).
pub fn snapshot_tree(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), Vec::<u8>::new())];
    while let Some((path, rel)) = stack.pop() {
        let m =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = m.file_type();
        let kind = if ft.is_file() {
            Kind::File(fs::read(&path).expect("read file"))
        } else if ft.is_dir() {
            for e in fs::read_dir(&path).expect("read_dir") {
                let name = e.expect("dir entry").file_name();
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(name.as_bytes());
                stack.push((path.join(&name), r));
            }
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(
                fs::read_link(&path)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else {
            Kind::Other
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode,
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                uid: m.uid(),
                gid: m.gid(),
            },
        );
    }
    out
}

/// Assert two trees are identical in kind, content, mode, mtime, owner and link target.
#[track_caller]
pub fn assert_same_tree(original: &Path, restored: &Path) {
    let a = snapshot_tree(original);
    let b = snapshot_tree(restored);
    let show = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
    for (k, ea) in &a {
        match b.get(k) {
            None => panic!("{:?} missing from the restore", show(k)),
            Some(eb) => assert_eq!(
                ea,
                eb,
                "{:?} differs (original left, restored right)",
                show(k)
            ),
        }
    }
    for k in b.keys() {
        assert!(
            a.contains_key(k),
            "{:?} restored but not in the original",
            show(k)
        );
    }
    if let Ok(st) = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(original)
        .arg(restored)
        .output()
    {
        assert!(
            st.status.success(),
            "diff -r {} {} found differences:\n{}{}",
            original.display(),
            restored.display(),
            String::from_utf8_lossy(&st.stdout),
            String::from_utf8_lossy(&st.stderr)
        );
    }
}

/// All files below `dir` (relative paths, sorted); symlinks and dirs excluded.
pub fn files_below(dir: &Path) -> Vec<String> {
    snapshot_tree(dir)
        .into_iter()
        .filter(|(_, e)| matches!(e.kind, Kind::File(_)))
        .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
        .collect()
}

/// Complete data pack files in a repository (not `.tmp-` files being
/// written), largest first, as (key, path, size).
pub fn packs(repo: &Path) -> Vec<(String, PathBuf, u64)> {
    let mut out = Vec::new();
    for d in fs::read_dir(repo.join("data")).expect("read data/") {
        let d = d.expect("entry").path();
        for f in fs::read_dir(&d).expect("read data/xx") {
            let f = f.expect("entry").path();
            if f.file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b".tmp-"))
            {
                continue;
            }
            let key = f
                .strip_prefix(repo)
                .expect("inside repo")
                .to_string_lossy()
                .into_owned();
            let size = fs::metadata(&f).expect("stat").len();
            out.push((key, f, size));
        }
    }
    out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    out
}

/// The single object in `repo/<dir>/` (index, snapshots), as (key, path).
#[track_caller]
pub fn only_object(repo: &Path, dir: &str) -> (String, PathBuf) {
    let entries: Vec<PathBuf> = fs::read_dir(repo.join(dir))
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "expected one object in {dir}/: {entries:?}"
    );
    let p = entries.into_iter().next().expect("one");
    let key = format!("{dir}/{}", p.file_name().expect("name").to_string_lossy());
    (key, p)
}

/// Flip one bit of the byte at `offset` in a file.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut b = fs::read(path).expect("read");
    b[offset] ^= 0x40;
    // Repository files are 0600 and owned by us; rewrite in place.
    fs::write(path, b).expect("write");
}

/// Copy a directory tree (`cp -a`).
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp -a failed");
}

/// Every regular file below `dir` with its bytes (to prove nothing changed).
pub fn contents(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    snapshot_tree(dir)
        .into_iter()
        .filter_map(|(k, e)| match e.kind {
            Kind::File(b) => Some((k, b)),
            _ => None,
        })
        .collect()
}

/// Whether the tests run under CI (`CI=true`), where every prerequisite
/// must be available.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A test cannot set up a prerequisite (a tmpfs mount, a tool): under CI
/// that fails the test; elsewhere the test is reported as skipped by name
/// on stderr (`SKIPPED: <test>: <why>`) and the caller returns.
#[track_caller]
pub fn skip_or_fail(test: &str, why: &str) {
    assert!(
        !under_ci(),
        "{test}: prerequisite missing under CI=true (tests must not skip in CI): {why}"
    );
    eprintln!("SKIPPED: {test}: {why}");
}

/// [`Tmpfs::mount`], or `None` after [`skip_or_fail`] when it cannot be mounted.
#[track_caller]
pub fn tmpfs_or_skip(test: &str, size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(size) {
        Ok(t) => Some(t),
        Err(why) => {
            skip_or_fail(test, &format!("cannot mount a tmpfs: {why}"));
            None
        }
    }
}

/// A small tmpfs mounted on a fresh directory, unmounted on drop.
pub struct Tmpfs {
    /// The mount point (inside `_dir`).
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (e.g. `1m`); `Err` says why it could not be mounted.
    pub fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-tmpfs-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let path = dir.path().join("mnt");
        fs::create_dir(&path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
            ])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { path, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(&self.path)
            .stdin(Stdio::null())
            .status();
    }
}
