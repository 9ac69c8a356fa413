//! Progress output: a bar with rate and ETA on a terminal (stderr a pty,
//! through util-linux `script`), nothing at all when stderr is not a
//! terminal (cron, CI) or with `--json`.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// Run `lifeboat ARGS` with stdin, stdout and stderr on a pseudo-terminal;
/// returns the exit code and everything the terminal received. `None` when
/// `script` is not installed.
fn on_terminal(ws: &Workspace, args: &[&str]) -> Option<(i32, String)> {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let line = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new(script);
    c.args(["-qefc", &line, "/dev/null"])
        .env("LIFEBOAT_REPOSITORY", &ws.repo)
        .env("LIFEBOAT_PASSWORD_FILE", &ws.pass)
        .env("TERM", "xterm")
        .current_dir(ws.path(""));
    let o = c.output().expect("run script");
    Some((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    ))
}

fn source(ws: &Workspace) -> String {
    let src = ws.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), pseudo_random(8 << 20, 3)).unwrap();
    std::fs::write(src.join("small"), b"small\n").unwrap();
    src.display().to_string()
}

#[test]
fn a_terminal_gets_a_progress_bar_with_rate_and_eta() {
    let ws = Workspace::init();
    let src = source(&ws);
    let Some((code, out)) = on_terminal(&ws, &["backup", &src]) else {
        eprintln!("skipped: no `script` to provide a terminal");
        return;
    };
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("B/s"), "a rate is drawn: {out:?}");
    assert!(out.contains("files"), "the file count is drawn: {out:?}");
    assert!(out.contains("snapshot "), "{out:?}");

    let to = ws.path("restored");
    let (code, out) =
        on_terminal(&ws, &["restore", "latest", "--to", to.to_str().unwrap()]).unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ETA"), "a restore knows its total: {out:?}");
    assert!(out.contains("restoring"), "{out:?}");
    assert!(out.contains("MiB"), "sizes in binary units: {out:?}");
}

#[test]
fn without_a_terminal_or_with_json_nothing_is_drawn() {
    let ws = Workspace::init();
    let src = source(&ws);
    // stderr is a pipe here, as in cron: silent.
    let r = ws.run(&["backup", &src]);
    r.ok();
    assert_eq!(r.stderr, "", "no progress without a terminal");
    let to = ws.path("restored");
    let r = ws.run(&["restore", "latest", "--to", to.to_str().unwrap()]);
    r.ok();
    assert_eq!(r.stderr, "");

    // On a terminal, --json and --quiet still draw nothing.
    for flag in ["--json", "--quiet"] {
        let Some((code, out)) = on_terminal(&ws, &[flag, "backup", &src]) else {
            return;
        };
        assert_eq!(code, 0, "{out}");
        // The source path is random (e.g. `.../lifeboat-cli-LK0vKB/src`)
        // and may itself contain "B/s": look only at the rest.
        let out = out.replace(&src, "");
        assert!(!out.contains("B/s"), "{flag}: no progress: {out:?}");
        assert!(
            !out.contains('\x1b'),
            "{flag}: no terminal control: {out:?}"
        );
    }
}
