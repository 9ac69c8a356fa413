//! End-to-end tests of the `lifeboat` binary on real PostgreSQL: logical
//! backups of the kitchen-sink fixture into a repository, full, parallel,
//! partial, schema-only and data-only restores, exports stock tools accept,
//! restore tests, roles, the Supabase profile, and the errors an operator
//! meets (exit codes per docs/CLI.md).
//!
//! Every test starts its own scratch clusters (stopped on drop) and runs the
//! real binary with a config file (`LIFEBOAT_CONFIG`) whose source `main`
//! reads `DATABASE_URL`. Restores are proven by content: normalised schema
//! dumps and per-table checksums (sequences and large objects included).

mod common;
mod pg_common;

use pg_common::*;
use std::fs;

/// Keys of checksums in `schema`: its tables and its sequences.
fn schema_keys(schema: &str) -> Vec<String> {
    vec![format!("{schema}."), format!("sequence:{schema}.")]
}

fn prefixes(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn kitchen_sink_round_trips_into_a_new_database_in_parallel_and_into_a_second_cluster() {
    let src = kitchen_sink_cluster();
    let want_schema = schema(&src, "ks");
    let want = sums(&src, "ks");
    // The fixture really has what the comparison is meant to cover.
    assert_eq!(want["public.users"].0, 3000);
    assert_eq!(want["pg_largeobject"].0, 3);
    assert!(want.contains_key("sequence:public.big_seq"), "{want:?}");
    assert!(want.contains_key("public.measurements_2024"));
    assert!(want.contains_key("public.project_totals"));

    let ws = Workspace::new(&url(&src, "ks"), "");
    let b = ws.backup(&[]);
    let id = b["id"].as_str().unwrap();

    // Into a new database on the same cluster, streamed into pg_restore.
    let r = ws.restore(&id[..12], &url(&src, "copy"), &[]);
    r.ok();
    assert!(r.stdout.contains("created the database"), "{}", r.stdout);
    assert_same_schema(&want_schema, &schema(&src, "copy"), "restore into copy");
    assert_same_sums(&want, &sums(&src, "copy"), "restore into copy");

    // In parallel (data over two streams, indexes with pg_restore -j 2).
    let r = ws.run(&[
        "--json",
        "restore",
        "latest",
        "--to",
        &url(&src, "par"),
        "--jobs",
        "2",
    ]);
    r.ok();
    let v = r.json();
    assert_eq!(v["outcome"]["created"], true, "{v}");
    assert_eq!(v["outcome"]["database"], "par", "{v}");
    assert_same_schema(&want_schema, &schema(&src, "par"), "--jobs 2");
    assert_same_sums(&want, &sums(&src, "par"), "--jobs 2");

    // Into a second cluster: the roles the grants name come from the globals.
    let other = cluster();
    ws.restore("latest", &url(&other, "ks"), &["--roles"]).ok();
    assert_same_schema(&want_schema, &schema(&other, "ks"), "second cluster");
    assert_same_sums(&want, &sums(&other, "ks"), "second cluster");
}

#[test]
fn unchanged_database_backs_up_again_for_little_and_records_exact_row_counts() {
    let src = kitchen_sink_cluster();
    let ws = Workspace::new(&url(&src, "ks"), "");
    let first = ws.backup(&[]);
    // A second later: the archive header's timestamp differs, and only the
    // header and TOC may be stored again, not the data after them.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = ws.backup(&[]);
    let stored = |v: &serde_json::Value| v["snapshot"]["stats"]["stored_bytes"].as_u64().unwrap();
    let bytes = |v: &serde_json::Value| v["snapshot"]["stats"]["bytes"].as_u64().unwrap();
    assert!(bytes(&first) > 1_000_000, "{}", first["snapshot"]["stats"]);
    assert_eq!(bytes(&first), bytes(&second));
    assert!(
        stored(&second) * 20 < stored(&first),
        "second backup of an unchanged database stored {} bytes, the first {}",
        stored(&second),
        stored(&first)
    );
    assert_eq!(
        second["snapshot"]["parent"], first["id"],
        "{}",
        second["snapshot"]
    );

    let snaps = ws.snapshots();
    assert_eq!(snaps.len(), 2);
    for s in &snaps {
        assert_eq!(s["kind"], "postgres-logical", "{s}");
        assert_eq!(s["source"], "main", "{s}");
        assert_eq!(s["paths"], serde_json::json!(["ks"]), "{s}");
    }
    let tables = snaps[1]["meta"]["tables"].as_array().expect("meta.tables");
    let recorded = |name: &str| -> u64 {
        tables
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in meta.tables: {tables:?}"))["rows"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no exact row count"))
    };
    for (name, rel) in [
        ("public.users", "public.users"),
        ("public.projects", "public.projects"),
        ("public.Audit Log", "public.\"Audit Log\""),
        ("billing.invoices", "billing.invoices"),
        ("billing.payments", "billing.payments"),
        ("public.measurements_2023", "public.measurements_2023"),
        ("public.vehicles", "public.vehicles"),
        ("public.cars", "public.cars"),
    ] {
        let actual: u64 = value(&src, "ks", &format!("SELECT count(*) FROM ONLY {rel}"))
            .parse()
            .unwrap();
        assert_eq!(recorded(name), actual, "{name}");
    }
    // Spot values, so a count of 0 everywhere cannot pass.
    assert_eq!(recorded("public.users"), 3000);
    assert_eq!(recorded("public.vehicles"), 2);
    assert_eq!(recorded("billing.payments"), 4000);
}

/// Index definitions, constraint definitions, triggers and policies of `tables`.
fn objects_of(
    c: &lifeboat_sources::postgres::ScratchCluster,
    db: &str,
    tables: &[&str],
) -> Vec<String> {
    let list = tables
        .iter()
        .map(|t| format!("'{t}'::regclass"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Vec::new();
    out.extend(rows(
        c,
        db,
        &format!(
            "SELECT 'index', indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index \
             WHERE indrelid IN ({list}) ORDER BY 2"
        ),
    ));
    out.extend(rows(
        c,
        db,
        &format!(
            "SELECT 'constraint', conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) \
             FROM pg_constraint WHERE conrelid IN ({list}) ORDER BY 2, 3"
        ),
    ));
    out.extend(rows(
        c,
        db,
        &format!(
            "SELECT 'trigger', tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger \
             WHERE tgrelid IN ({list}) AND NOT tgisinternal ORDER BY 2, 3"
        ),
    ));
    out.extend(rows(
        c,
        db,
        &format!(
            "SELECT 'policy', schemaname, tablename, policyname, cmd, roles::text, qual, with_check \
             FROM pg_policies WHERE (schemaname || '.' || tablename)::regclass IN ({list}) ORDER BY 2, 3, 4"
        ),
    ));
    out
}

#[test]
fn partial_restore_of_two_tables_brings_their_indexes_and_constraints_and_notes_what_it_leaves_out()
{
    let src = kitchen_sink_cluster();
    let want = sums(&src, "ks");
    let ws = Workspace::new(&url(&src, "ks"), "");
    ws.backup(&[]);

    let r = ws.restore(
        "latest",
        &url(&src, "two"),
        &["-t", "public.projects", "-t", "billing.invoices"],
    );
    r.ok();
    // projects -> users (not restored): the FK is left out with a note;
    // the rule writing into deleted_projects (not restored) too.
    let notes: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("note: left out"))
        .collect();
    assert!(
        notes
            .iter()
            .any(|l| l.contains("projects_owner_id_fkey") && l.contains("public.users")),
        "no note about the FK to public.users:\n{}",
        r.stderr
    );
    assert!(
        notes
            .iter()
            .any(|l| l.contains("projects_no_delete") && l.contains("deleted_projects")),
        "no note about the rule writing into deleted_projects:\n{}",
        r.stderr
    );

    // Exactly those tables (and their owned sequences) came back.
    let restored_tables = rows(
        &src,
        "two",
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname IN ('public', 'billing') ORDER BY 1",
    );
    assert_eq!(restored_tables, ["billing.invoices", "public.projects"]);

    let tables = ["public.projects", "billing.invoices"];
    let mut want_objects = objects_of(&src, "ks", &tables);
    let before = want_objects.len();
    want_objects.retain(|o| !o.contains("projects_owner_id_fkey"));
    assert_eq!(before - want_objects.len(), 1, "{want_objects:?}");
    let got_objects = objects_of(&src, "two", &tables);
    assert_eq!(want_objects, got_objects);
    // The kept FK between the two restored tables, indexes of every kind.
    for needle in [
        "invoices_project_id_fkey",
        "invoices_one_open_per_project",
        "projects_trgm_idx",
        "projects_active_idx",
        "projects_slug_format",
        "projects_audit",
        "projects_owner_read",
    ] {
        assert!(
            got_objects.iter().any(|o| o.contains(needle)),
            "{needle} missing: {got_objects:?}"
        );
    }
    assert_eq!(
        value(
            &src,
            "two",
            "SELECT count(*) FROM pg_rules WHERE tablename = 'projects'"
        ),
        "0"
    );

    let got = sums(&src, "two");
    assert_same_sums(
        &only(
            &want,
            &[
                "public.projects",
                "billing.invoices",
                "sequence:public.projects_id_seq",
                "sequence:billing.invoice_no_seq",
            ],
        ),
        &only(&got, &["public.", "billing.", "sequence:"]),
        "two tables",
    );
    assert_eq!(got["public.projects"].0, 5000);

    // A whole schema: every table, sequence, view and function of billing.
    let r = ws.restore("latest", &url(&src, "bill"), &["-n", "billing"]);
    r.ok();
    assert!(
        r.stderr.contains("invoices_project_id_fkey"),
        "the FK to public.projects is left out with a note:\n{}",
        r.stderr
    );
    let keys = schema_keys("billing");
    let got = sums(&src, "bill");
    let want_billing = only(&want, &prefixes(&keys));
    assert!(want_billing.len() >= 3, "{want_billing:?}");
    assert_same_sums(
        &want_billing,
        &only(&got, &["public.", "billing.", "sequence:"]),
        "-n billing",
    );
    assert_eq!(
        rows(
            &src,
            "bill",
            "SELECT c.relname || ':' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'billing' AND c.relkind IN ('r', 'v', 'S') ORDER BY 1"
        ),
        rows(
            &src,
            "ks",
            "SELECT c.relname || ':' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'billing' AND c.relkind IN ('r', 'v', 'S') ORDER BY 1"
        )
    );
    assert_eq!(value(&src, "bill", "SELECT billing.add_tax(100)"), "120.00");
}

#[test]
fn schema_only_backup_restores_the_schema_and_data_only_restore_fills_it() {
    let src = kitchen_sink_cluster();
    let want_schema = schema(&src, "ks");
    let want = sums(&src, "ks");
    let ws = Workspace::new(&url(&src, "ks"), "");
    let schema_snap = ws.backup(&["--schema-only"]);
    let full_snap = ws.backup(&[]);
    let schema_id = schema_snap["id"].as_str().unwrap();
    let full_id = full_snap["id"].as_str().unwrap();
    assert!(
        schema_snap["snapshot"]["stats"]["bytes"].as_u64()
            < full_snap["snapshot"]["stats"]["bytes"].as_u64()
    );

    ws.restore(schema_id, &url(&src, "s"), &[]).ok();
    assert_same_schema(&want_schema, &schema(&src, "s"), "schema-only");
    let empty = sums(&src, "s");
    let with_rows: Vec<_> = empty
        .iter()
        .filter(|(k, (n, _))| !k.starts_with("sequence:") && *n != 0)
        .collect();
    assert!(
        with_rows.is_empty(),
        "a schema-only restore has rows: {with_rows:?}"
    );
    assert!(empty.contains_key("public.users"));

    // The schema exists now, so the database is not empty: --force is needed.
    let r = ws.restore(full_id, &url(&src, "s"), &["--data-only"]);
    r.error(14, &["not empty", "--force"]);
    assert_same_sums(&empty, &sums(&src, "s"), "refused data-only restore");

    ws.restore(full_id, &url(&src, "s"), &["--data-only", "--force"])
        .ok();
    assert_same_schema(&want_schema, &schema(&src, "s"), "after data-only");
    let got = sums(&src, "s");
    let mut tables_want = want.clone();
    let mut tables_got = got.clone();
    tables_want.remove("public.project_totals");
    tables_got.remove("public.project_totals");
    assert_same_sums(&tables_want, &tables_got, "data-only restore");
    // The materialized view is derived data: it must reflect the restored rows,
    // not the empty tables of the schema-only restore.
    assert_eq!(
        got.get("public.project_totals"),
        want.get("public.project_totals"),
        "data-only restore left the materialized view as the schema-only restore made it"
    );
}

/// pg_restore itself reports errors (no pre-check refuses first):
/// `--data-only --force` into a database that already has the rows hits
/// duplicate keys. The restore fails with exit 16 and pg_restore's error,
/// and the rows already there are left as they were.
#[test]
fn a_restore_where_pg_restore_reports_errors_exits_16_with_its_error() {
    let src = cluster();
    src.create_database("app").unwrap();
    src.run_sql_in(
        "app",
        "CREATE TABLE public.items (id int PRIMARY KEY, name text); \
         INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 100) g;",
    )
    .unwrap();
    let want = sums(&src, "app");
    let ws = Workspace::new(&url(&src, "app"), "");
    let b = ws.backup(&[]);
    let id = b["id"].as_str().unwrap();
    ws.restore(id, &url(&src, "copy"), &[]).ok();
    assert_same_sums(&want, &sums(&src, "copy"), "first restore");

    let r = ws.restore(id, &url(&src, "copy"), &["--data-only", "--force"]);
    r.error(
        16,
        &[
            "pg_restore reported 1 error(s)",
            "duplicate key value violates unique constraint",
            "items_pkey",
        ],
    );
    assert_same_sums(&want, &sums(&src, "copy"), "after the failed restore");
}

#[test]
fn exported_dumps_are_read_by_stock_pg_restore_and_psql() {
    let src = kitchen_sink_cluster();
    let want = sums(&src, "ks");
    let ws = Workspace::new(&url(&src, "ks"), "");
    let b = ws.backup(&[]);
    let tools = src.tools().clone();

    let custom = ws.path("f.dump");
    let r = ws.run(&[
        "--json",
        "dump",
        "export",
        "latest",
        "--format",
        "custom",
        "-o",
        custom.to_str().unwrap(),
    ]);
    r.ok();
    let len = fs::metadata(&custom).unwrap().len();
    assert_eq!(r.json()["bytes"].as_u64(), Some(len));
    assert_eq!(b["snapshot"]["meta"]["dump_bytes"].as_u64(), Some(len));
    assert_eq!(&fs::read(&custom).unwrap()[..5], b"PGDMP");

    let list = std::process::Command::new(&tools.pg_restore)
        .arg("--list")
        .arg(&custom)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listing = String::from_utf8_lossy(&list.stdout);
    for needle in [
        "TABLE public users",
        "TABLE DATA billing invoices",
        "FK CONSTRAINT billing invoices invoices_project_id_fkey",
        "MATERIALIZED VIEW DATA public project_totals",
    ] {
        assert!(listing.contains(needle), "{needle} not in:\n{listing}");
    }

    src.create_database("from_custom").unwrap();
    stock_tool(
        &src,
        &tools.pg_restore,
        "from_custom",
        &["--exit-on-error", custom.to_str().unwrap()],
    )
    .ok();
    assert_same_sums(&want, &sums(&src, "from_custom"), "stock pg_restore");

    // Refuses to overwrite an existing file.
    ws.run(&["dump", "export", "latest", "-o", custom.to_str().unwrap()])
        .error(14, &[custom.to_str().unwrap(), "must not exist"]);
    assert_eq!(fs::metadata(&custom).unwrap().len(), len);

    let plain = ws.path("f.sql");
    ws.run(&[
        "dump",
        "export",
        "latest",
        "--format",
        "plain",
        "-o",
        plain.to_str().unwrap(),
    ])
    .ok();
    let sql = fs::read_to_string(&plain).unwrap();
    assert!(
        sql.contains("CREATE TABLE public.users"),
        "{}",
        &sql[..sql.len().min(2000)]
    );
    assert!(sql.contains("COPY billing.invoices"));
    src.create_database("from_plain").unwrap();
    stock_tool(
        &src,
        &tools.psql,
        "from_plain",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            plain.to_str().unwrap(),
        ],
    )
    .ok();
    assert_same_sums(
        &want,
        &sums(&src, "from_plain"),
        "psql -f of the plain export",
    );
}

#[test]
fn backup_of_an_unreachable_server_fails_with_exit_16_naming_host_and_port() {
    let port = closed_port();
    let ws = Workspace::new(&format!("postgres://postgres@127.0.0.1:{port}/ks"), "");
    let r = ws.run(&["backup", "main"]);
    r.error(16, &[&format!("127.0.0.1:{port}")]);
    assert!(ws.snapshots().is_empty());
    // The same in JSON: a code and a message on stdout.
    let r = ws.run(&["--json", "backup", "main"]);
    r.code(16);
    let v = r.json();
    assert_eq!(v["error"]["code"], "source", "{v}");
    // The source's own typed code travels up with it.
    assert_eq!(v["error"]["detail"], "pg_unreachable", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{v}"
    );
}

#[test]
fn restore_into_a_non_empty_database_is_refused_unchanged_until_clean() {
    let src = kitchen_sink_cluster();
    let want = sums(&src, "ks");
    let ws = Workspace::new(&url(&src, "ks"), "");
    ws.backup(&[]);
    ws.restore("latest", &url(&src, "live"), &[]).ok();
    // The live copy drifts from the snapshot.
    src.run_sql_in(
        "live",
        "DELETE FROM billing.payments WHERE id % 2 = 0; UPDATE public.users SET name = 'changed' WHERE id < 100; \
         INSERT INTO public.vehicles VALUES (99, 9);",
    )
    .unwrap();
    let drifted = sums(&src, "live");
    assert_ne!(drifted["billing.payments"], want["billing.payments"]);

    let r = ws.restore("latest", &url(&src, "live"), &[]);
    r.error(
        14,
        &[
            "\"live\"",
            "not empty",
            "--clean",
            "--force",
            "nothing was changed",
        ],
    );
    assert_same_sums(&drifted, &sums(&src, "live"), "refused restore");
    let r = ws.restore("latest", &url(&src, "live"), &["-t", "public.users"]);
    r.error(14, &["not empty"]);
    assert_same_sums(&drifted, &sums(&src, "live"), "refused partial restore");

    ws.restore("latest", &url(&src, "live"), &["--clean"]).ok();
    assert_same_sums(&want, &sums(&src, "live"), "--clean restore");
}

#[test]
fn restore_url_without_a_database_name_is_a_clear_config_error() {
    let src = cluster();
    src.create_database("ks").unwrap();
    src.run_sql_in(
        "ks",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
    let ws = Workspace::new(&url(&src, "ks"), "");
    ws.backup(&[]);
    let dbs = rows(
        &src,
        "postgres",
        "SELECT datname FROM pg_database ORDER BY 1",
    );
    for to in [url(&src, "").replace("@/?", "@?"), url(&src, "")] {
        let r = ws.restore("latest", &to, &[]);
        r.error(15, &["must name a database"]);
    }
    assert_eq!(
        rows(
            &src,
            "postgres",
            "SELECT datname FROM pg_database ORDER BY 1"
        ),
        dbs
    );
    assert_eq!(
        value(
            &src,
            "postgres",
            "SELECT count(*) FROM pg_class WHERE relname = 't'"
        ),
        "0"
    );
}

#[test]
fn bin_dir_without_postgres_tools_is_reported_not_silently_replaced() {
    let src = cluster();
    src.create_database("ks").unwrap();
    src.run_sql_in("ks", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .unwrap();
    let empty = tempfile::tempdir().unwrap();
    let ws = Workspace::new(
        &url(&src, "ks"),
        &format!("bin_dir = {:?}", empty.path().display().to_string()),
    );
    let r = ws.run(&["backup", "main"]);
    let major = src.tools().major.to_string();
    r.error(16, &[&empty.path().display().to_string()]);
    assert!(
        r.stderr.contains(&major),
        "the message names the needed version {major}: {}",
        r.stderr
    );
    assert!(ws.snapshots().is_empty());
}

#[test]
fn parallel_restore_on_a_full_temporary_disk_fails_with_exit_17() {
    let src = kitchen_sink_cluster();
    let ws = Workspace::new(&url(&src, "ks"), "");
    let b = ws.backup(&[]);
    let dump_bytes = b["snapshot"]["meta"]["dump_bytes"].as_u64().unwrap();
    let Some(tmpfs) = tmpfs_or_skip(
        "parallel_restore_on_a_full_temporary_disk_fails_with_exit_17",
        "1m",
    ) else {
        return;
    };
    assert!(
        dump_bytes > 2 << 20,
        "the archive ({dump_bytes} bytes) must not fit in 1 MiB"
    );
    let r = ws.run_with(
        &[
            "restore",
            "latest",
            "--to",
            &url(&src, "full"),
            "--jobs",
            "2",
            // --clean takes the single-stream path, which spools for -j.
            "--clean",
        ],
        |c| {
            c.env("TMPDIR", &tmpfs.path);
        },
    );
    let line = r.error(17, &[]);
    assert!(line.to_lowercase().contains("no space"), "{line}");
    assert!(
        line.contains(&tmpfs.path.display().to_string()),
        "names the full device: {line}"
    );
    // The spool is cleaned up again.
    assert_eq!(fs::read_dir(&tmpfs.path).unwrap().count(), 0);
    // Without the spool (streamed), the same restore works.
    let r = ws.run_with(
        &["restore", "latest", "--to", &url(&src, "full"), "--force"],
        |c| {
            c.env("TMPDIR", &tmpfs.path);
        },
    );
    r.ok();
    assert_same_sums(&sums(&src, "ks"), &sums(&src, "full"), "streamed restore");
}

#[test]
fn restore_test_passes_on_a_good_snapshot_fails_on_a_false_assertion_and_is_recorded() {
    let src = kitchen_sink_cluster();
    let good = "verify = { critical_tables = [\"public.users\", \"billing.invoices\"], \
                assertions = [\"SELECT count(*) = 3000 FROM public.users\"] }";
    let ws = Workspace::new(&url(&src, "ks"), good);
    let b = ws.backup(&[]);
    assert_eq!(ws.repo_files("verifications"), 0);

    let r = ws.run(&["--json", "verify", "--restore-test"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    let report = &v["restore_test"];
    assert_eq!(report["snapshot"], b["id"], "{v}");
    let tables = report["tables_checked"].as_u64().unwrap();
    assert!(tables >= 10, "{v}");
    let checks = report["checks"].as_array().unwrap();
    for name in [
        "restore",
        "row counts",
        "critical table public.users",
        "critical table billing.invoices",
        "assertion SELECT count(*) = 3000 FROM public.users",
    ] {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?}: {v}"));
        assert_eq!(c["ok"], true, "{c}");
    }
    assert_eq!(ws.repo_files("verifications"), 1);
    // `snapshots` shows the recorded result and the measured restore time.
    let listed = ws.snapshots();
    let test = &listed[0]["restore_test"]["report"];
    assert_eq!(test["ok"], true, "{listed:?}");
    assert_eq!(test["snapshot"], b["id"]);
    assert!(test["restore_ms"].as_u64().unwrap() > 0, "{test}");
    let table = ws.run(&["snapshots"]);
    table.ok();
    assert!(
        table.stdout.contains("restore test") && table.stdout.contains(" ok "),
        "{}",
        table.stdout
    );

    // A failing assertion: exit 12, the check named.
    ws.write_config(
        "verify = { critical_tables = [\"public.users\"], assertions = [\"select false\"] }",
    );
    let r = ws.run(&["verify", "--restore-test", &b["id"].as_str().unwrap()[..10]]);
    r.code(12);
    assert!(
        r.stdout.contains("FAIL assertion select false"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("RESTORE TEST FAILED"), "{}", r.stdout);
    assert_eq!(ws.snapshots()[0]["restore_test"]["report"]["ok"], false);
    assert!(r.stdout.contains("ok   row counts"), "{}", r.stdout);
    assert_eq!(ws.repo_files("verifications"), 2);

    // The source is untouched by all this.
    assert_eq!(
        value(&src, "ks", "SELECT count(*) FROM public.users"),
        "3000"
    );
}

#[test]
fn roles_are_restored_with_their_grants_into_a_second_cluster() {
    let src = cluster();
    src.create_database("app").unwrap();
    src.run_sql_in(
        "app",
        "CREATE ROLE app_user LOGIN; CREATE TABLE public.orders (id int PRIMARY KEY, total numeric); \
         INSERT INTO public.orders SELECT g, g * 1.5 FROM generate_series(1, 50) g; \
         CREATE TABLE public.secrets (id int); \
         GRANT SELECT, INSERT ON public.orders TO app_user;",
    )
    .unwrap();
    let ws = Workspace::new(&url(&src, "app"), "");
    ws.backup(&[]);

    let other = cluster();
    assert_eq!(
        value(
            &other,
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'app_user'"
        ),
        "0"
    );
    let r = ws.restore("latest", &url(&other, "app"), &["--roles"]);
    r.ok();
    assert_eq!(
        value(
            &other,
            "postgres",
            "SELECT rolname || ':' || rolcanlogin FROM pg_roles WHERE rolname = 'app_user'"
        ),
        "app_user:true"
    );
    assert_eq!(
        value(
            &other,
            "app",
            "SELECT has_table_privilege('app_user', 'public.orders', 'SELECT') || ',' || \
             has_table_privilege('app_user', 'public.orders', 'INSERT') || ',' || \
             has_table_privilege('app_user', 'public.orders', 'DELETE') || ',' || \
             has_table_privilege('app_user', 'public.secrets', 'SELECT')"
        ),
        "true,true,false,false"
    );
    assert_same_sums(&sums(&src, "app"), &sums(&other, "app"), "roles restore");
}

#[test]
fn supabase_profile_opted_out_leaves_auth_and_storage_out_of_the_archive() {
    let src = cluster();
    src.create_database("sb").unwrap();
    src.run_sql_in(
        "sb",
        "CREATE SCHEMA auth; CREATE SCHEMA storage; \
         CREATE TABLE auth.users (id uuid PRIMARY KEY, email text); \
         INSERT INTO auth.users VALUES (md5('a')::uuid, 'a@example.com'); \
         CREATE TABLE storage.objects (id int PRIMARY KEY, name text); \
         INSERT INTO storage.objects VALUES (1, 'x.png'); \
         CREATE TABLE public.todos (id int PRIMARY KEY, title text, done boolean); \
         INSERT INTO public.todos SELECT g, 'todo ' || g, g % 2 = 0 FROM generate_series(1, 20) g;",
    )
    .unwrap();
    let ws = Workspace::new(
        &url(&src, "sb"),
        "profile = \"supabase\"\nkeep_auth_data = false\nkeep_storage_data = false",
    );
    let b = ws.backup(&[]);
    let notes = b["notes"].to_string();
    assert!(
        notes.contains("keep_auth_data = false") && notes.contains("keep_storage_data = false"),
        "{b}"
    );
    let tables = b["snapshot"]["meta"]["tables"].as_array().unwrap();
    assert!(
        tables
            .iter()
            .any(|t| t["name"] == "public.todos" && t["rows"] == 20),
        "{tables:?}"
    );

    let plain = ws.path("sb.sql");
    ws.run(&[
        "dump",
        "export",
        "latest",
        "--format",
        "plain",
        "-o",
        plain.to_str().unwrap(),
    ])
    .ok();
    let sql = fs::read_to_string(&plain).unwrap();
    assert!(sql.contains("CREATE TABLE public.todos"), "{sql}");
    assert!(sql.contains("COPY public.todos"), "{sql}");
    for needle in [
        "CREATE TABLE auth.",
        "CREATE TABLE storage.",
        "COPY auth.",
        "COPY storage.",
        "CREATE SCHEMA auth",
        "CREATE SCHEMA storage",
    ] {
        assert!(
            !sql.contains(needle),
            "{needle} in the supabase archive:\n{sql}"
        );
    }

    // It restores into a plain database with public intact.
    ws.restore("latest", &url(&src, "copy"), &[]).ok();
    assert_same_sums(
        &only(&sums(&src, "sb"), &["public.", "pg_largeobject"]),
        &sums(&src, "copy"),
        "supabase restore",
    );
}

#[test]
fn dry_run_restore_lists_the_entries_it_would_restore_and_changes_nothing() {
    let src = kitchen_sink_cluster();
    let ws = Workspace::new(&url(&src, "ks"), "");
    ws.backup(&[]);
    let r = ws.run(&[
        "restore",
        "latest",
        "--to",
        &url(&src, "planned"),
        "-t",
        "public.users",
        "--dry-run",
    ]);
    r.ok();
    assert!(
        r.stdout.contains("would restore") && r.stdout.contains("TABLE public users"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("TABLE DATA public users"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("TABLE public projects"),
        "only the chosen table: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("would create the database") && r.stdout.contains("nothing was changed"),
        "{}",
        r.stdout
    );
    assert_eq!(
        value(
            &src,
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'planned'"
        ),
        "0",
        "a dry run must not create the database"
    );
    // Into a non-empty database, a dry run refuses exactly as the restore would.
    ws.run(&["restore", "latest", "--to", &url(&src, "ks"), "--dry-run"])
        .error(14, &["not empty"]);
}

#[test]
fn a_source_url_that_does_not_parse_is_a_config_error_exit_15() {
    let ws = Workspace::new("mysql://root@127.0.0.1/ks", "");
    let line = ws
        .run(&["backup", "main"])
        .error(15, &["source \"main\"", "invalid"]);
    assert!(!line.contains("root@"), "{line}");
    let v = ws.run(&["--json", "backup", "main"]).json();
    assert_eq!(v["error"]["code"], "config", "{v}");
    assert!(ws.snapshots().is_empty());
}
