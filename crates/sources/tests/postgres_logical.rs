//! Logical backup and restore against real PostgreSQL servers (scratch clusters):
//! full round trips, partial restores by table and by schema, globals with the
//! Supabase profile, and error classification. Every cluster is stopped on drop.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use lifeboat_sources::postgres::archive::read_toc;
use lifeboat_sources::postgres::catalog::{self as query, dependency_info, target_catalog};
use lifeboat_sources::postgres::compare::{normalized_schema_dump, table_checksums};
use lifeboat_sources::postgres::dump::{dump_command, filter_globals, globals_command};
use lifeboat_sources::postgres::psql::run_sql;
use lifeboat_sources::postgres::restore_cmd::{check_restore, restore_command};
use lifeboat_sources::postgres::selection::select_entries;
use lifeboat_sources::postgres::toc::write_list_file;
use lifeboat_sources::postgres::{
    ClientTools, DumpOptions, PgError, PgTarget, Profile, RestoreOptions, ScratchCluster,
};

const KITCHEN_SINK: &str = include_str!("fixtures/kitchen_sink.sql");

/// Server binaries: `LIFEBOAT_TEST_PG_BIN`, else the newest installed.
fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFEBOAT_TEST_PG_BIN") {
        return p.into();
    }
    ClientTools::any(None)
        .expect("PostgreSQL installed")
        .bin_dir
}

fn cluster_with_kitchen_sink() -> ScratchCluster {
    let c = ScratchCluster::start(&server_bin()).expect("scratch cluster starts");
    c.create_database("ks").unwrap();
    c.run_sql_in("ks", KITCHEN_SINK)
        .expect("kitchen sink loads");
    c
}

fn dump_to_file(tools: &ClientTools, target: &PgTarget, opts: &DumpOptions, path: &Path) {
    let mut cmd = dump_command(tools, target, opts);
    cmd.stdout(File::create(path).unwrap());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restores by piping the archive into pg_restore's stdin, as the engine does.
fn restore_via_stdin(
    tools: &ClientTools,
    target: &PgTarget,
    opts: &RestoreOptions,
    list: Option<&Path>,
    archive: &Path,
) -> Result<(), PgError> {
    let mut child = restore_command(tools, target, opts, list, None)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = std::fs::read(archive).unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    check_restore(target, out.status, &String::from_utf8_lossy(&out.stderr))
}

fn rows(c: &ScratchCluster, db: &str, sql: &str) -> Vec<String> {
    c.run_sql_in(db, sql)
        .unwrap()
        .into_iter()
        .map(|r| r.join("|"))
        .collect()
}

fn only<'a>(
    sums: &'a BTreeMap<String, (i64, String)>,
    prefix: &str,
) -> BTreeMap<&'a String, &'a (i64, String)> {
    sums.iter().filter(|(k, _)| k.starts_with(prefix)).collect()
}

#[test]
fn full_dump_restores_identically_from_stdin_and_in_parallel() {
    let c = cluster_with_kitchen_sink();
    let tools = c.tools().clone();
    let src = c.target().with_database("ks");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("ks.dump");
    dump_to_file(&tools, &src, &DumpOptions::default(), &archive);

    let want_schema = normalized_schema_dump(&tools, &src).unwrap();
    let want_sums = table_checksums(&tools, &src).unwrap();
    assert!(
        want_sums["public.users"].0 == 3000,
        "{:?}",
        want_sums["public.users"]
    );
    assert!(want_sums["pg_largeobject"].0 == 3);
    assert!(want_sums.contains_key("public.measurements_2024"));

    // Through stdin, as the engine streams it out of the repository.
    c.create_database("copy").unwrap();
    let copy = c.target().with_database("copy");
    assert!(query::is_database_empty(&tools, &copy).unwrap());
    restore_via_stdin(&tools, &copy, &RestoreOptions::default(), None, &archive).unwrap();
    assert!(!query::is_database_empty(&tools, &copy).unwrap());
    assert_eq!(normalized_schema_dump(&tools, &copy).unwrap(), want_schema);
    assert_eq!(table_checksums(&tools, &copy).unwrap(), want_sums);

    // From a file with -j 2, in one go.
    c.create_database("par").unwrap();
    let par = c.target().with_database("par");
    let opts = RestoreOptions {
        jobs: 2,
        exit_on_error: true,
        ..RestoreOptions::default()
    };
    let out = restore_command(&tools, &par, &opts, None, Some(&archive))
        .output()
        .unwrap();
    check_restore(&par, out.status, &String::from_utf8_lossy(&out.stderr)).unwrap();
    assert_eq!(normalized_schema_dump(&tools, &par).unwrap(), want_schema);
    assert_eq!(table_checksums(&tools, &par).unwrap(), want_sums);

    // Restoring again on top without --clean must surface errors, not hide them.
    let err =
        restore_via_stdin(&tools, &par, &RestoreOptions::default(), None, &archive).unwrap_err();
    assert!(
        matches!(err, PgError::RestoreErrors { count, .. } if count > 0),
        "{err}"
    );

    // Catalog helpers see the same thing in both.
    let stats = query::table_stats(&tools, &copy).unwrap();
    let users = stats
        .iter()
        .find(|s| s.qualified() == "public.users")
        .unwrap();
    assert!(users.bytes > 0);
    assert!(query::database_size(&tools, &copy).unwrap() > 0);
    let counts = query::exact_row_counts(
        &tools,
        &copy,
        &[
            "public.projects".into(),
            "billing.invoices".into(),
            "\"Audit Log\"".into(),
        ],
    )
    .unwrap();
    assert_eq!(counts["public.projects"], 5000);
    assert_eq!(counts["billing.invoices"], 4500);
    assert_eq!(counts["\"Audit Log\""], want_sums["public.Audit Log"].0);
}

#[test]
fn partial_restore_of_tables_brings_indexes_constraints_triggers_and_sequences() {
    let c = cluster_with_kitchen_sink();
    let tools = c.tools().clone();
    let src = c.target().with_database("ks");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("ks.dump");
    dump_to_file(&tools, &src, &DumpOptions::default(), &archive);
    let deps = dependency_info(&tools, &src).unwrap();
    assert!(deps.tables["public.projects"]
        .indexes
        .contains(&"projects_trgm_idx".to_string()));
    assert_eq!(
        deps.tables["billing.invoices"].owned_sequences,
        vec!["billing.invoice_no_seq".to_string()]
    );

    c.create_database("part").unwrap();
    let part = c.target().with_database("part");
    let opts = RestoreOptions {
        tables: vec![
            "public.users".into(),
            "billing.invoices".into(),
            "billing.payments".into(),
        ],
        exit_on_error: true,
        ..RestoreOptions::default()
    };
    let existing = target_catalog(&tools, &part).unwrap();
    let toc = read_toc(File::open(&archive).unwrap()).unwrap();
    let sel = select_entries(&toc, &opts, &deps, &existing).unwrap();
    // invoices -> projects is not restored and not present: that FK is left out, and said so.
    assert!(
        sel.skipped
            .iter()
            .any(|(line, why)| line.contains("invoices_project_id_fkey")
                && why.contains("public.projects")),
        "{:?}",
        sel.skipped
    );
    let list = tmp.path().join("list");
    write_list_file(&sel.entries, &list).unwrap();
    restore_via_stdin(&tools, &part, &opts, Some(&list), &archive).unwrap();

    let idx = rows(
        &c,
        "part",
        "SELECT schemaname || '.' || indexname FROM pg_indexes \
         WHERE schemaname IN ('public', 'billing') ORDER BY 1",
    );
    assert_eq!(
        idx,
        vec![
            "billing.invoices_one_open_per_project",
            "billing.invoices_pkey",
            "billing.payments_pkey",
            "public.users_email_key",
            "public.users_pkey",
        ]
    );
    let cons = rows(
        &c,
        "part",
        "SELECT conrelid::regclass::text || ' ' || conname || ' ' || contype::text FROM pg_constraint \
         WHERE connamespace IN ('public'::regnamespace, 'billing'::regnamespace) \
           AND conrelid <> 0 ORDER BY 1",
    );
    assert_eq!(
        cons,
        vec![
            "billing.invoices invoices_amount_check c",
            "billing.invoices invoices_pkey p",
            "billing.payments payments_invoice_id_fkey f",
            "billing.payments payments_pkey p",
            "users users_email_key u",
            "users users_pkey p",
        ]
    );
    let triggers = rows(
        &c,
        "part",
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
    );
    assert_eq!(triggers, vec!["users_touch"]);
    // Only what was asked for: no projects, no views.
    let rels = rows(
        &c,
        "part",
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace \
         AND relkind IN ('r','v','m','p') ORDER BY 1",
    );
    assert_eq!(rels, vec!["users"]);
    // Data and sequence positions match the source.
    let want = table_checksums(&tools, &src).unwrap();
    let got = table_checksums(&tools, &part).unwrap();
    for key in [
        "public.users",
        "billing.invoices",
        "billing.payments",
        "sequence:public.users_id_seq",
        "sequence:billing.invoice_no_seq",
        "sequence:billing.payments_id_seq",
    ] {
        assert_eq!(got.get(key), want.get(key), "{key}");
    }
    // The trigger works in the restored database.
    c.run_sql_in("part", "UPDATE public.users SET name = 'x' WHERE id = 1;")
        .unwrap();
    assert_eq!(
        rows(
            &c,
            "part",
            "SELECT updated_at FROM public.users WHERE id = 1"
        ),
        vec!["2000-01-01 00:00:00"]
    );
}

#[test]
fn schema_restore_brings_the_whole_schema() {
    let c = cluster_with_kitchen_sink();
    let tools = c.tools().clone();
    let src = c.target().with_database("ks");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("ks.dump");
    dump_to_file(&tools, &src, &DumpOptions::default(), &archive);
    let deps = dependency_info(&tools, &src).unwrap();

    c.create_database("billing_only").unwrap();
    let dst = c.target().with_database("billing_only");
    let opts = RestoreOptions {
        schemas: vec!["billing".into()],
        exit_on_error: true,
        ..RestoreOptions::default()
    };
    let toc = read_toc(File::open(&archive).unwrap()).unwrap();
    let sel = select_entries(&toc, &opts, &deps, &target_catalog(&tools, &dst).unwrap()).unwrap();
    let list = tmp.path().join("list");
    write_list_file(&sel.entries, &list).unwrap();
    let out = restore_command(&tools, &dst, &opts, Some(&list), Some(&archive))
        .output()
        .unwrap();
    check_restore(&dst, out.status, &String::from_utf8_lossy(&out.stderr)).unwrap();

    let want = table_checksums(&tools, &src).unwrap();
    let got = table_checksums(&tools, &dst).unwrap();
    assert_eq!(only(&got, "billing."), only(&want, "billing."));
    assert_eq!(
        only(&got, "sequence:billing."),
        only(&want, "sequence:billing.")
    );
    assert!(only(&got, "public.").is_empty());
    assert_eq!(
        rows(&c, "billing_only", "SELECT billing.add_tax(100)"),
        vec!["120.00"]
    );
    assert_eq!(
        rows(
            &c,
            "billing_only",
            "SELECT count(*) FROM billing.open_invoices"
        ),
        vec!["500"]
    );
    assert_eq!(
        rows(
            &c,
            "billing_only",
            "SELECT obj_description('billing'::regnamespace)"
        ),
        vec!["Invoices and payments"]
    );
}

#[test]
fn supabase_profile_keeps_only_non_reserved_roles() {
    let src = ScratchCluster::start(&server_bin()).unwrap();
    src.run_sql(
        "CREATE ROLE anon NOLOGIN; CREATE ROLE authenticated NOLOGIN; \
         CREATE ROLE supabase_admin; CREATE ROLE app_user LOGIN PASSWORD 'not-on-argv'; \
         GRANT anon TO authenticated; GRANT app_user TO authenticated; \
         ALTER ROLE authenticated SET statement_timeout = '8s';",
    )
    .unwrap();
    let tools = src.tools().clone();
    let cmd = globals_command(&tools, &src.target(), false);
    assert!(cmd
        .get_args()
        .any(|a| a.to_string_lossy() == "--no-role-passwords"));
    let out = { cmd }.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let globals = String::from_utf8(out.stdout).unwrap();
    assert!(globals.contains("CREATE ROLE anon;"));
    assert!(!globals.contains("SCRAM-SHA-256"), "passwords left out");
    let filtered = filter_globals(
        &globals,
        &Profile::Supabase {
            keep_auth_data: false,
            keep_storage_data: false,
        },
    );

    let live_creates: Vec<&str> = filtered
        .lines()
        .filter(|l| l.starts_with("CREATE ROLE"))
        .collect();
    assert_eq!(live_creates, vec!["CREATE ROLE app_user;"]);

    // A Supabase project already has its reserved roles; the filtered globals
    // must apply there without touching them.
    let dst = ScratchCluster::start(&server_bin()).unwrap();
    dst.run_sql("CREATE ROLE anon NOLOGIN; CREATE ROLE authenticated NOLOGIN;")
        .unwrap();
    dst.run_sql(&filtered)
        .expect("filtered globals apply cleanly");
    let roles = rows(
        &dst,
        "postgres",
        "SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1",
    );
    assert_eq!(roles, vec!["anon", "app_user", "authenticated", "postgres"]);
    // Allowed settings of reserved roles survive; memberships granted to reserved roles do not.
    assert_eq!(
        rows(
            &dst,
            "postgres",
            "SELECT array_to_string(rolconfig, ',') FROM pg_roles WHERE rolname = 'authenticated'"
        ),
        vec!["statement_timeout=8s"]
    );
    assert_eq!(
        rows(
            &dst,
            "postgres",
            "SELECT count(*) FROM pg_auth_members WHERE member = 'authenticated'::regrole"
        ),
        vec!["0"]
    );

    // The plain profile keeps everything.
    assert_eq!(filter_globals(&globals, &Profile::Plain), globals);
    dst.stop().unwrap();
}

#[test]
fn errors_name_the_problem() {
    let c = ScratchCluster::start(&server_bin()).unwrap();
    let tools = c.tools().clone();
    assert_eq!(
        query::server_major(&tools, &c.target()).unwrap(),
        tools.major
    );
    assert!(query::server_version_num(&tools, &c.target()).unwrap() >= tools.major * 10000);

    let missing = c.target().with_database("nope");
    let err = run_sql(&tools, &missing, "SELECT 1").unwrap_err();
    assert!(
        matches!(err, PgError::DatabaseMissing { ref database } if database == "nope"),
        "{err}"
    );
    assert!(!query::database_exists(&tools, &c.target(), "nope").unwrap());
    c.create_database("we\"ird name").unwrap();
    assert!(query::database_exists(&tools, &c.target(), "we\"ird name").unwrap());

    let sql_err = c.run_sql("SELECT * FROM no_such_table").unwrap_err();
    assert!(sql_err.to_string().contains("no_such_table"), "{sql_err}");

    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let gone = PgTarget::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).unwrap();
    let err = run_sql(&tools, &gone, "SELECT 1").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("could not connect to server at 127.0.0.1:{port}: connection refused — is PostgreSQL running? check the URL")
    );
    // A socket that is gone with its cluster.
    let socket = c.target();
    c.stop().unwrap();
    let err = run_sql(&tools, &socket, "SELECT 1").unwrap_err();
    assert!(matches!(err, PgError::Unreachable { .. }), "{err:?}");
}

#[test]
fn dump_streams_to_a_pipe_and_supabase_profile_excludes_internal_schemas() {
    let c = cluster_with_kitchen_sink();
    c.run_sql_in(
        "ks",
        "CREATE SCHEMA auth; CREATE TABLE auth.users (id int PRIMARY KEY); \
         INSERT INTO auth.users VALUES (1), (2); \
         CREATE TABLE auth.schema_migrations (version text); \
         INSERT INTO auth.schema_migrations VALUES ('1'); \
         CREATE SCHEMA storage; CREATE TABLE storage.objects (id int); \
         CREATE SCHEMA supabase_migrations; CREATE TABLE supabase_migrations.schema_migrations (v text);",
    )
    .unwrap();
    let tools = c.tools().clone();
    let src = c.target().with_database("ks");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("sb.dump");
    let opts = DumpOptions {
        profile: Profile::Supabase {
            keep_auth_data: true,
            keep_storage_data: false,
        },
        ..DumpOptions::default()
    };
    // Read stdout through a pipe, as the engine does.
    let mut child = dump_command(&tools, &src, &opts).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut f = File::create(&archive).unwrap();
    std::io::copy(&mut out, &mut f).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let toc = read_toc(File::open(&archive).unwrap()).unwrap();
    let has = |desc: &str, ns: &str, tag: &str| {
        toc.iter()
            .any(|e| e.desc == desc && e.namespace.as_deref() == Some(ns) && e.tag == tag)
    };
    assert!(has("TABLE", "auth", "users"));
    assert!(has("TABLE DATA", "auth", "users"));
    assert!(has("TABLE", "auth", "schema_migrations"));
    assert!(!has("TABLE DATA", "auth", "schema_migrations"));
    assert!(!has("TABLE", "storage", "objects"));
    assert!(!has("TABLE", "supabase_migrations", "schema_migrations"));
    assert!(has("TABLE DATA", "public", "users"));
    let _ = Stdio::null();
}

/// The one TOC model, read from the archive itself, lists exactly what
/// `pg_restore -l` lists, line for line (what `-L` list files and dry runs show).
#[test]
fn archive_toc_reads_like_pg_restore_list() {
    let c = cluster_with_kitchen_sink();
    let tools = c.tools().clone();
    c.run_sql_in("ks", "COMMENT ON DATABASE ks IS 'kitchen\nsink';")
        .unwrap();
    let src = c.target().with_database("ks");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("ks.dump");
    dump_to_file(&tools, &src, &DumpOptions::default(), &archive);
    let out = lifeboat_sources::process::command(&tools.pg_restore)
        .arg("--list")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let toc = read_toc(File::open(&archive).unwrap()).unwrap();
    let ours: Vec<String> = toc
        .iter()
        .filter(|e| e.listed())
        .map(|e| e.line())
        .collect();
    assert!(listed.len() > 50, "{listed:?}");
    assert_eq!(ours, listed);
}
