//! Catalog queries and held sessions through the in-process client (`postgres`
//! crate) against a real scratch cluster: they need no `psql` binary, return
//! the catalog's content, and classify server errors by SQLSTATE into the same
//! [`PgError`] variants the tools' stderr gives. Every cluster is stopped on drop.

use std::path::PathBuf;

use lifeboat_sources::postgres::catalog;
use lifeboat_sources::postgres::session::{is_transaction_pooler, Session};
use lifeboat_sources::postgres::{ClientTools, PgError, PgTarget, ScratchCluster};

fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFEBOAT_TEST_PG_BIN") {
        return p.into();
    }
    ClientTools::any(None)
        .expect("PostgreSQL installed")
        .bin_dir
}

/// The cluster's tools with `psql` pointing nowhere: anything that still ran
/// psql would fail with a spawn error.
fn tools_without_psql(c: &ScratchCluster) -> ClientTools {
    let mut tools = c.tools().clone();
    tools.psql = PathBuf::from("/nonexistent/lifeboat-test/psql");
    tools
}

#[test]
fn catalog_queries_and_sessions_need_no_psql_and_return_the_catalog() {
    let c = ScratchCluster::start(&server_bin()).expect("scratch cluster starts");
    c.create_database("app").unwrap();
    c.run_sql_in(
        "app",
        "CREATE SCHEMA \"we|ird\nschema\"; \
         CREATE TABLE \"we|ird\nschema\".t (id int PRIMARY KEY, note text); \
         INSERT INTO \"we|ird\nschema\".t SELECT g, NULL FROM generate_series(1, 37) g; \
         CREATE INDEX t_note ON \"we|ird\nschema\".t (note);",
    )
    .unwrap();
    let tools = tools_without_psql(&c);
    let admin = c.target();
    let app = admin.with_database("app");

    let v = catalog::server_version_num(&tools, &admin).unwrap();
    assert!(v >= 100000, "{v}");
    assert!(catalog::database_exists(&tools, &admin, "app").unwrap());
    assert!(!catalog::database_exists(&tools, &admin, "nope").unwrap());
    catalog::create_database(&tools, &admin, "scratch").unwrap();
    assert!(catalog::is_database_empty(&tools, &admin.with_database("scratch")).unwrap());
    catalog::drop_database(&tools, &admin, "scratch").unwrap();
    assert!(!catalog::database_exists(&tools, &admin, "scratch").unwrap());
    assert!(!catalog::is_database_empty(&tools, &app).unwrap());

    let stats = catalog::table_stats(&tools, &app).unwrap();
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].schema, "we|ird\nschema");
    assert_eq!(stats[0].name, "t");
    assert_eq!(stats[0].kind, "table");
    assert!(stats[0].bytes > 0);

    let qualified = stats[0].qualified();
    let counts = catalog::exact_row_counts(&tools, &app, std::slice::from_ref(&qualified));
    assert_eq!(counts.unwrap()[&qualified], 37);

    let deps = catalog::dependency_info(&tools, &app).unwrap();
    let t = &deps.tables[&qualified];
    assert_eq!(t.indexes, vec!["t_note".to_string(), "t_pkey".to_string()]);

    let cat = catalog::target_catalog(&tools, &app).unwrap();
    assert!(cat.schemas.contains("we|ird\nschema"));
    assert!(cat.relations.contains(&qualified));
    assert!(catalog::database_size(&tools, &app).unwrap() > 0);

    // A held session: NULL comes back as the empty string, several
    // statements answer in order, and a direct connection is no pooler.
    let mut s = Session::open(&tools, &app).unwrap();
    let rows = s.query("SELECT 1, NULL::text; SELECT 'a\nb';").unwrap();
    assert_eq!(
        rows,
        vec![
            vec!["1".to_string(), String::new()],
            vec!["a\nb".to_string()]
        ]
    );
    assert!(!is_transaction_pooler(&tools, &app, &mut s).unwrap());
    s.close();

    // sslmode is ignored on a Unix socket (as libpq does): still no psql.
    let sock_tls = PgTarget::parse(&format!("{}&sslmode=verify-full", c.url())).unwrap();
    assert!(catalog::database_exists(&tools, &sock_tls, "app").unwrap());
    c.stop().unwrap();
}

#[test]
fn client_errors_are_classified_by_sqlstate() {
    let c = ScratchCluster::start(&server_bin()).expect("scratch cluster starts");
    let tools = tools_without_psql(&c);
    let admin = c.target();
    c.run_sql("CREATE TABLE held (id int); CREATE ROLE plain LOGIN PASSWORD 'pw';")
        .unwrap();

    let wrong_pw = admin.with_password(Some("not-the-password".into()));
    let e = catalog::server_version_num(&tools, &wrong_pw).unwrap_err();
    assert!(matches!(e, PgError::AuthFailed { .. }), "{e:?}");

    let e = catalog::server_version_num(&tools, &admin.with_database("nope")).unwrap_err();
    assert!(
        matches!(&e, PgError::DatabaseMissing { database } if database == "nope"),
        "{e:?}"
    );

    let ghost = PgTarget::from_parts(
        &c.socket_dir().to_string_lossy(),
        c.port(),
        "ghost",
        "postgres",
    )
    .with_password(Some("x".into()));
    let e = catalog::server_version_num(&tools, &ghost).unwrap_err();
    assert!(
        matches!(e, PgError::AuthFailed { .. } | PgError::RoleMissing { .. }),
        "{e:?}"
    );

    let nothing_there = PgTarget::from_parts(
        &c.socket_dir().to_string_lossy(),
        c.port().wrapping_add(1),
        "postgres",
        "postgres",
    );
    let e = catalog::server_version_num(&tools, &nothing_there).unwrap_err();
    assert!(matches!(e, PgError::Unreachable { .. }), "{e:?}");

    // 55P03 lock_not_available: a lock held by another session.
    let mut holder = Session::open(&tools, &admin).unwrap();
    holder
        .query("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE;")
        .unwrap();
    let mut waiter = Session::open(&tools, &admin).unwrap();
    let e = waiter
        .query("SET lock_timeout = 50; SELECT count(*) FROM held;")
        .unwrap_err();
    assert!(matches!(e, PgError::LockTimeout { .. }), "{e:?}");
    holder.close();
    waiter.close();

    // 42501 insufficient_privilege: the server's words, with the SQLSTATE.
    let plain = PgTarget::from_parts(
        &c.socket_dir().to_string_lossy(),
        c.port(),
        "plain",
        "postgres",
    )
    .with_password(Some("pw".into()));
    let mut s = Session::open(&tools, &plain).unwrap();
    let e = s.query("SELECT * FROM held;").unwrap_err();
    match &e {
        PgError::ToolFailed { status, stderr, .. } => {
            assert_eq!(status, "SQLSTATE 42501", "{e:?}");
            assert!(stderr.contains("permission denied"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    s.close();
    c.stop().unwrap();
}

#[test]
fn a_held_session_runs_a_physical_backup_start_and_stop() {
    let c = ScratchCluster::start(&server_bin()).expect("scratch cluster starts");
    let tools = tools_without_psql(&c);
    let mut s = Session::open(&tools, &c.target()).unwrap();
    assert!(s.server_version_num().unwrap() >= 100000);
    let start = s.backup_start("lifeboat test", true).unwrap();
    assert!(start.contains('/'), "an LSN: {start}");
    let stop = s.backup_stop().unwrap();
    assert!(stop.lsn.contains('/'), "{stop:?}");
    assert!(
        stop.labelfile
            .contains(&format!("START WAL LOCATION: {start}")),
        "{stop:?}"
    );
    assert!(stop.labelfile.contains("LABEL: lifeboat test"), "{stop:?}");
    assert_eq!(stop.spcmapfile, "", "no tablespaces");
    // Stopping again fails: the backup belonged to this session.
    assert!(s.backup_stop().is_err());
    s.close();
    c.stop().unwrap();
}
