//! Client tool discovery on the real machine: versions found, and the message
//! an operator gets when only older tools are installed.

use lifeboat_sources::postgres::{ClientTools, PgError};

#[test]
fn finds_tools_matching_an_installed_server() {
    let any = ClientTools::any(None).expect("some PostgreSQL client tools are installed");
    let found = ClientTools::find(any.major, None).unwrap();
    assert_eq!(found.major, any.major);
    assert!(found.pg_dump.is_file() && found.pg_restore.is_file() && found.psql.is_file());
    // Older servers are dumped with newer tools.
    let older = ClientTools::find(any.major - 3, None).unwrap();
    assert!(older.major >= any.major - 3);
    // An explicitly configured directory is used when it fits.
    let configured = ClientTools::find(any.major, Some(&found.bin_dir)).unwrap();
    assert_eq!(configured.bin_dir, found.bin_dir);
}

#[test]
fn tools_older_than_the_server_give_a_clear_message() {
    let any = ClientTools::any(None).unwrap();
    let err = ClientTools::find(99, None).unwrap_err();
    assert!(matches!(
        err,
        PgError::ToolsTooOld {
            server_major: 99,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "pg_dump {} cannot dump a PostgreSQL 99 server: install postgresql-client-99 or set bin_dir to a directory with pg_dump 99 or newer",
            any.major
        )),
        "{msg}"
    );
    assert_eq!(err.code(), "pg_tools_too_old");
}

#[test]
fn a_directory_without_tools_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let err = ClientTools::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, PgError::ToolsNotFound { .. }), "{err}");
}
