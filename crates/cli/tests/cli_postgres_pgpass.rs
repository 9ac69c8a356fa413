//! A source URL without a password, the password in libpq's password file:
//! `~/.pgpass` (through `HOME`) and `PGPASSFILE` work for the whole backup
//! (the in-process client's session and catalog queries, and pg_dump), and a
//! file others may read is ignored with libpq's warning. The scratch cluster
//! stops on drop.

mod common;
mod pg_common;

use pg_common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn write_mode(path: &std::path::Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_backup_takes_the_password_from_pgpass_or_pgpassfile() {
    let c = cluster();
    c.create_database("app").unwrap();
    c.run_sql_in(
        "app",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
    let sock = c.socket_dir().display().to_string();
    let url = format!("postgres://postgres@/app?host={sock}&port={}", c.port());
    let ws = Workspace::new(&url, "");
    let line = format!("{sock}:{}:*:postgres:{}\n", c.port(), c.password());

    let home = ws.path("home");
    fs::create_dir(&home).unwrap();
    write_mode(&home.join(".pgpass"), &line, 0o600);
    let r = ws.run_with(&["--json", "backup", "main"], |cmd| {
        cmd.env("HOME", &home);
    });
    r.ok();

    let empty_home = ws.path("empty-home");
    fs::create_dir(&empty_home).unwrap();
    let file = ws.path("passfile");
    write_mode(&file, &line, 0o600);
    let r = ws.run_with(&["--json", "backup", "main"], |cmd| {
        cmd.env("HOME", &empty_home).env("PGPASSFILE", &file);
    });
    r.ok();

    write_mode(&home.join(".pgpass"), &line, 0o644);
    let r = ws.run_with(&["backup", "main"], |cmd| {
        cmd.env("HOME", &home);
    });
    assert_eq!(r.code, 16, "{r:?}");
    assert!(r.stderr.contains("has group or world access"), "{r:?}");
    assert!(r.stderr.contains("password"), "{r:?}");

    c.stop().unwrap();
}
