//! Supabase projects end to end (issue 11) with the real binary, on a
//! Supabase-shaped database built from fixtures/supabase/{platform,project}.sql
//! (platform roles, `extensions`, `auth`, `storage`; the user's public tables
//! with RLS policies calling auth.uid(), a trigger on auth.users, a policy on
//! storage.objects, rows everywhere) and a source with `profile = "supabase"`.
//!
//! Proven by content: per-table checksums, policy and trigger lists, zero
//! pg_restore errors (a restore with any fails).

mod common;
#[allow(unused_imports)] // pg_common re-exports helpers other test files use
mod pg_common;

use lifeboat_sources::postgres::ScratchCluster;
use pg_common::*;
use std::fs;

/// The source database: platform and project loaded into `proj`.
fn supabase_project() -> ScratchCluster {
    let c = cluster();
    load_supabase(&c, "proj", true);
    c
}

/// Checksums of what a recovery point must bring back: every table and
/// sequence of `public`, `auth` and `storage`, except the platform's own
/// migration history, whose data the profile leaves to the target platform.
fn project_sums(c: &ScratchCluster, db: &str) -> Sums {
    let mut s = only(
        &sums(c, db),
        &[
            "public.",
            "auth.",
            "storage.",
            "sequence:public.",
            "sequence:auth.",
            "sequence:storage.",
        ],
    );
    s.remove("auth.schema_migrations");
    s.remove("storage.migrations");
    s
}

/// Every row-level security policy, with its roles and expressions.
fn policies(c: &ScratchCluster, db: &str) -> Vec<String> {
    rows(
        c,
        db,
        "SELECT schemaname, tablename, policyname, cmd, roles::text, coalesce(qual, ''), \
         coalesce(with_check, '') FROM pg_policies ORDER BY 1, 2, 3",
    )
}

/// Every user trigger (not the internal ones of foreign keys), with its definition.
fn triggers(c: &ScratchCluster, db: &str) -> Vec<String> {
    rows(
        c,
        db,
        "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger \
         WHERE NOT tgisinternal ORDER BY 1, 2",
    )
}

/// Tables with row-level security enabled.
fn rls_tables(c: &ScratchCluster, db: &str) -> Vec<String> {
    rows(
        c,
        db,
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relrowsecurity ORDER BY 1",
    )
}

/// Rows of `table` recorded in the snapshot's metadata, if it is there.
fn meta_rows(backup: &serde_json::Value, table: &str) -> Option<i64> {
    backup["snapshot"]["meta"]["tables"]
        .as_array()
        .expect("meta.tables")
        .iter()
        .find(|t| t["name"] == table)
        .and_then(|t| t["rows"].as_i64())
}

#[test]
fn the_fixture_is_shaped_like_a_supabase_project() {
    let src = supabase_project();
    let want = project_sums(&src, "proj");
    for (table, n) in [
        ("auth.users", 3),
        ("auth.identities", 3),
        ("auth.sessions", 1),
        ("auth.refresh_tokens", 1),
        ("auth.mfa_factors", 1),
        ("storage.buckets", 2),
        ("storage.objects", 3),
        ("public.profiles", 3),
        ("public.projects", 6),
        ("public.tasks", 18),
    ] {
        assert_eq!(want[table].0, n, "{table}: {want:?}");
    }
    assert_eq!(
        value(
            &src,
            "proj",
            "SELECT string_agg(e.extname || '@' || n.nspname, ',' ORDER BY e.extname) \
             FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname <> 'plpgsql'"
        ),
        "pgcrypto@extensions,uuid-ossp@extensions"
    );
    assert_eq!(
        value(
            &src,
            "postgres",
            "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles \
             WHERE rolname IN ('anon', 'authenticated', 'service_role', 'authenticator', 'supabase_admin')"
        ),
        "anon:false,authenticated:false,authenticator:true,service_role:false,supabase_admin:true"
    );
    // The trigger filled the profiles; auth.uid() reads the JWT claims.
    assert_eq!(
        value(
            &src,
            "proj",
            "SELECT count(*) FROM public.profiles p JOIN auth.users u USING (id)"
        ),
        "3"
    );
    assert_eq!(
        value(
            &src,
            "proj",
            "SELECT set_config('request.jwt.claims', '{\"sub\": \"a0000000-0000-4000-8000-000000000002\", \"role\": \"authenticated\"}', false) IS NOT NULL \
             AND auth.uid() = 'a0000000-0000-4000-8000-000000000002' AND auth.role() = 'authenticated' \
             AND auth.jwt() ->> 'role' = 'authenticated'"
        ),
        "t"
    );
    assert_eq!(triggers(&src, "proj").len(), 1);
    assert_eq!(policies(&src, "proj").len(), 7);
    assert_eq!(
        rls_tables(&src, "proj"),
        ["profiles", "projects", "storage.objects", "tasks"]
    );
}

#[test]
fn supabase_backup_keeps_the_user_schema_and_leaves_platform_definitions_and_roles_out() {
    let src = supabase_project();
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    let b = ws.backup(&[]);
    for (table, n) in [
        ("public.profiles", 3),
        ("public.projects", 6),
        ("public.tasks", 18),
    ] {
        assert_eq!(meta_rows(&b, table), Some(n), "{table}: {b}");
    }
    // The snapshot records what the dump presupposes of the platform.
    let platform = &b["snapshot"]["meta"]["platform"];
    assert_eq!(
        platform["schemas"],
        serde_json::json!(["extensions"]),
        "{b}"
    );
    assert_eq!(
        platform["data_schemas"],
        serde_json::json!(["auth", "storage"]),
        "{b}"
    );
    for (name, schema) in [("pgcrypto", "extensions"), ("uuid-ossp", "extensions")] {
        assert!(
            platform["extensions"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!({"name": name, "schema": schema})),
            "{name}: {b}"
        );
    }
    for role in [
        "anon",
        "authenticated",
        "service_role",
        "supabase_auth_admin",
    ] {
        assert!(
            platform["roles"].as_array().unwrap().contains(&role.into()),
            "{role}: {b}"
        );
    }
    let plain = ws.path("proj.sql");
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
    for needle in [
        "CREATE TABLE public.profiles",
        "CREATE FUNCTION public.handle_new_user()",
        "ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY \"Owners manage their projects\" ON public.projects",
        "COPY public.tasks",
    ] {
        assert!(sql.contains(needle), "{needle} missing:\n{sql}");
    }
    // The extensions the user's defaults call are recorded where they live
    // (pg_dump keeps an extension whose schema it leaves out) ...
    assert!(
        sql.contains("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions"),
        "{sql}"
    );
    // ... and platform-owned definitions are the platform's business.
    for needle in [
        "CREATE SCHEMA extensions",
        "CREATE TABLE realtime.",
        "CREATE SCHEMA graphql_public",
    ] {
        assert!(!sql.contains(needle), "{needle} in the archive:\n{sql}");
    }
    // Reserved roles are never created or altered from the globals (their
    // lines are kept as comments; allowed settings such as statement_timeout stay).
    let globals = ws.path("globals");
    ws.run(&["restore", "latest", "--to", globals.to_str().unwrap()])
        .ok();
    let globals = fs::read_to_string(globals.join("globals.sql")).unwrap();
    for role in [
        "anon",
        "authenticated",
        "service_role",
        "supabase_admin",
        "authenticator",
    ] {
        let creates = format!("CREATE ROLE {role};");
        assert!(
            globals
                .lines()
                .all(|l| l != creates && !l.starts_with(&format!("ALTER ROLE {role} WITH"))),
            "{role} created or altered by globals.sql:\n{globals}"
        );
        assert!(globals.contains(&format!("-- {creates}")), "{globals}");
    }
}

#[test]
fn a_default_supabase_backup_is_a_full_recovery_point() {
    let src = supabase_project();
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    let b = ws.backup(&[]);
    for (table, n) in [
        ("auth.users", 3),
        ("auth.identities", 3),
        ("auth.sessions", 1),
        ("auth.mfa_factors", 1),
        ("storage.buckets", 2),
        ("storage.objects", 3),
        ("public.profiles", 3),
    ] {
        assert_eq!(meta_rows(&b, table), Some(n), "{table}: {b}");
    }
    // Leaving them out is an explicit opt-out, and the backup says so.
    ws.write_config("profile = \"supabase\"\nkeep_auth_data = false\nkeep_storage_data = false");
    let r = ws.run(&["backup", "main"]);
    r.ok();
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("auth") && said.contains("keep_auth_data = false"),
        "{said}"
    );
    assert!(said.contains("keep_storage_data = false"), "{said}");
}

#[test]
fn a_supabase_snapshot_restores_into_plain_postgresql_with_every_row_policy_and_trigger() {
    let src = supabase_project();
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    ws.backup(&[]);
    let plain = cluster();
    let r = ws.restore("latest", &url(&plain, "staging"), &[]);
    r.ok();
    assert!(!r.stderr.contains("error"), "{}", r.stderr);
    assert_same_sums(
        &project_sums(&src, "proj"),
        &project_sums(&plain, "staging"),
        "restore into plain PostgreSQL",
    );
    assert_eq!(policies(&src, "proj"), policies(&plain, "staging"));
    assert_eq!(triggers(&src, "proj"), triggers(&plain, "staging"));
    assert_eq!(rls_tables(&src, "proj"), rls_tables(&plain, "staging"));
    // The trigger still works there.
    plain
        .run_sql_in(
            "staging",
            "INSERT INTO auth.users (id, email, raw_user_meta_data) \
             VALUES ('a0000000-0000-4000-8000-000000000009', 'new@example.com', '{\"full_name\": \"New\"}')",
        )
        .unwrap();
    assert_eq!(
        value(&plain, "staging", "SELECT full_name FROM public.profiles WHERE id = 'a0000000-0000-4000-8000-000000000009'"),
        "New"
    );
}

#[test]
fn a_supabase_snapshot_restores_into_a_supabase_project_without_duplicate_profiles() {
    let src = supabase_project();
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    ws.backup(&[]);
    let target = cluster();
    load_supabase(&target, "fresh", false);
    ws.restore("latest", &url(&target, "fresh"), &[]).ok();
    assert_same_sums(
        &project_sums(&src, "proj"),
        &project_sums(&target, "fresh"),
        "restore into a Supabase project",
    );
    // auth.users rows went in without the on_auth_user_created trigger
    // adding a second profile each.
    assert_eq!(
        value(&target, "fresh", "SELECT count(*) FROM public.profiles"),
        "3"
    );
    assert_eq!(policies(&src, "proj"), policies(&target, "fresh"));
    assert_eq!(triggers(&src, "proj"), triggers(&target, "fresh"));
    // Sequences and identities continue after the restored rows.
    assert_eq!(
        value(
            &target,
            "fresh",
            "INSERT INTO public.projects (owner_id, name) VALUES ('a0000000-0000-4000-8000-000000000001', 'gamma') RETURNING id"
        ),
        "7"
    );
}

#[test]
fn verify_restore_test_of_a_supabase_snapshot_passes_with_auth_users_critical() {
    let src = supabase_project();
    let ws = Workspace::new(
        &url(&src, "proj"),
        "profile = \"supabase\"\nverify = { critical_tables = [\"auth.users\", \"storage.objects\", \"public.projects\"] }",
    );
    ws.backup(&[]);
    let r = ws.run(&["--json", "verify", "--restore-test"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
}

/// The drift `migrations check` reported for `object`, if any.
fn drift_of<'a>(report: &'a serde_json::Value, object: &str) -> Option<&'a serde_json::Value> {
    report["drifts"]
        .as_array()
        .expect("drifts")
        .iter()
        .find(|d| d["object"] == object)
}

#[test]
fn migrations_check_passes_when_the_migrations_build_the_live_schema_and_reports_drift() {
    let src = supabase_project();
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    let dir = ws.path("supabase/migrations");
    fs::create_dir_all(&dir).unwrap();
    // The project was made by exactly this migration (schema, trigger on
    // auth.users, policies, seed rows).
    fs::write(dir.join("20240101000000_project.sql"), SUPABASE_PROJECT).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let r = ws.run(&["--json", "migrations", "check", "main", "--dir", dir_arg]);
    r.ok();
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["migrations"],
        serde_json::json!(["20240101000000_project.sql"])
    );
    assert!(drift_of(&v, "TABLE public.projects").is_none(), "{v}");

    // A column added by hand, a table made by hand, a migration never applied.
    src.run_sql_in(
        "proj",
        "ALTER TABLE public.projects ADD COLUMN archived boolean NOT NULL DEFAULT false; \
         CREATE TABLE public.scratchpad (note text);",
    )
    .unwrap();
    fs::write(
        dir.join("20240201000000_labels.sql"),
        "CREATE TABLE public.labels (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         project_id bigint NOT NULL REFERENCES public.projects (id), name text NOT NULL);\n",
    )
    .unwrap();
    let r = ws.run(&["--json", "migrations", "check", "main", "--dir", dir_arg]);
    r.code(19);
    let v = r.json();
    assert_eq!(v["ok"], false, "{v}");
    let projects = drift_of(&v, "TABLE public.projects").expect("the hand-added column");
    assert_eq!(projects["kind"], "different", "{v}");
    assert!(
        projects["detail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("+ archived boolean")),
        "{v}"
    );
    assert_eq!(
        drift_of(&v, "TABLE public.labels").expect("labels")["kind"],
        "missing",
        "{v}"
    );
    assert_eq!(
        drift_of(&v, "TABLE public.scratchpad").expect("scratchpad")["kind"],
        "extra",
        "{v}"
    );
    // The plain report names them too.
    let r = ws.run(&["migrations", "check", "main", "--dir", dir_arg]);
    r.code(19);
    for needle in [
        "TABLE public.projects: different",
        "TABLE public.labels: missing",
        "DRIFT",
    ] {
        assert!(r.stdout.contains(needle), "{needle}: {}", r.stdout);
    }
}

#[test]
fn a_supabase_snapshot_restores_over_its_own_project_with_clean() {
    // Disaster recovery in place: users deleted and added, rows changed after
    // the snapshot; `restore --clean` into the same project must bring back
    // exactly the snapshot's rows, auth and storage included.
    let src = supabase_project();
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    ws.backup(&[]);
    let want = project_sums(&src, "proj");
    let (want_policies, want_triggers) = (policies(&src, "proj"), triggers(&src, "proj"));
    src.run_sql_in(
        "proj",
        "DELETE FROM auth.users WHERE id = 'a0000000-0000-4000-8000-000000000002'; \
         INSERT INTO auth.users (id, email, raw_user_meta_data) \
           VALUES ('a0000000-0000-4000-8000-000000000009', 'late@example.com', '{\"full_name\": \"Late\"}'); \
         UPDATE public.tasks SET title = 'changed'; \
         DELETE FROM storage.objects;",
    )
    .unwrap();
    let r = ws.restore("latest", &url(&src, "proj"), &["--clean"]);
    r.ok();
    assert_same_sums(
        &want,
        &project_sums(&src, "proj"),
        "restore --clean over the project",
    );
    assert_eq!(
        value(&src, "proj", "SELECT count(*) FROM public.profiles"),
        "3"
    );
    assert_eq!(triggers(&src, "proj"), want_triggers);
    assert_eq!(policies(&src, "proj"), want_policies);
    assert_eq!(want_triggers.len(), 1);
    assert_eq!(want_policies.len(), 7);
}

/// Makes `role` on `c` own the user's objects of `db` (what `postgres`, no
/// superuser on Supabase, owns there): tables, their sequences, the trigger
/// function, the public schema's default privileges.
fn own_project_as(c: &ScratchCluster, db: &str, role: &str) {
    c.run_sql_in(
        db,
        &format!(
            "ALTER TABLE public.profiles OWNER TO {role}; ALTER TABLE public.projects OWNER TO {role}; \
             ALTER TABLE public.tasks OWNER TO {role}; ALTER FUNCTION public.handle_new_user() OWNER TO {role}; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM postgres, anon, authenticated, service_role; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON FUNCTIONS FROM postgres, anon, authenticated, service_role; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM postgres, anon, authenticated, service_role; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;"
        ),
    )
    .unwrap();
}

#[test]
fn a_supabase_snapshot_restores_into_a_supabase_project_as_its_non_superuser_owner() {
    // On Supabase the restoring role (`postgres`) owns the database but is no
    // superuser: the platform tables' foreign keys (auth.identities ->
    // auth.users, auth.refresh_tokens -> auth.sessions -> auth.users) stay
    // on while their rows load, so the rows must go in in key order.
    let src = supabase_project();
    src.run_sql("CREATE ROLE proj_owner NOLOGIN").unwrap();
    own_project_as(&src, "proj", "proj_owner");
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    ws.backup(&[]);
    let target = cluster();
    load_supabase(&target, "fresh", false);
    target.create_login_role("proj_owner").unwrap();
    target
        .run_sql_in(
            "fresh",
            "ALTER DATABASE fresh OWNER TO proj_owner; \
             GRANT USAGE ON SCHEMA auth, storage, extensions TO proj_owner; \
             GRANT ALL ON ALL TABLES IN SCHEMA auth, storage TO proj_owner; \
             GRANT ALL ON ALL SEQUENCES IN SCHEMA auth, storage TO proj_owner; \
             GRANT supabase_storage_admin TO proj_owner;",
        )
        .unwrap();
    assert_eq!(
        value(
            &target,
            "postgres",
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'proj_owner'"
        ),
        "f"
    );
    let r = ws.restore("latest", &target.url_for("proj_owner", "fresh"), &[]);
    r.ok();
    assert_same_sums(
        &project_sums(&src, "proj"),
        &project_sums(&target, "fresh"),
        "restore into a Supabase project by its non-superuser owner",
    );
    assert_eq!(
        value(&target, "fresh", "SELECT count(*) FROM public.profiles"),
        "3"
    );
    assert_eq!(policies(&src, "proj"), policies(&target, "fresh"));
    assert_eq!(triggers(&src, "proj"), triggers(&target, "fresh"));
}

/// A PL/pgSQL function whose body holds lines a dump's own `SET` and `--`
/// lines look like, at column 0.
const TUNE_FUNCTION: &str =
    "CREATE FUNCTION public.tune() RETURNS void LANGUAGE plpgsql AS $body$\n\
BEGIN\n\
SET LOCAL work_mem = '64MB';\n\
-- the batch job's memory\n\
PERFORM 1;\n\
END\n\
$body$;\n";

#[test]
fn migrations_check_finds_drift_inside_a_function_body() {
    let src = cluster();
    src.create_database("app").unwrap();
    src.run_sql_in("app", TUNE_FUNCTION).unwrap();
    let ws = Workspace::new(&url(&src, "app"), "");
    let dir = ws.path("supabase/migrations");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("20240101000000_tune.sql"), TUNE_FUNCTION).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let r = ws.run(&["--json", "migrations", "check", "main", "--dir", dir_arg]);
    r.ok();
    assert_eq!(r.json()["ok"], true, "{}", r.stdout);
    // Changed by hand on the live database, on a body line starting with SET.
    src.run_sql_in(
        "app",
        &TUNE_FUNCTION
            .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
            .replace("'64MB'", "'4GB'"),
    )
    .unwrap();
    let r = ws.run(&["--json", "migrations", "check", "main", "--dir", dir_arg]);
    r.code(19);
    let v = r.json();
    let f = drift_of(&v, "FUNCTION public.tune()").expect("the changed body");
    assert_eq!(f["kind"], "different", "{v}");
    assert_eq!(
        f["detail"],
        serde_json::json!([
            "+ SET LOCAL work_mem = '4GB';",
            "- SET LOCAL work_mem = '64MB';"
        ]),
        "{v}"
    );
}

/// Every privilege the platform roles hold on tables of `public`, `auth`
/// and `storage` (the ACL lists, exploded).
fn platform_grants(c: &ScratchCluster, db: &str) -> Vec<String> {
    rows(
        c,
        db,
        "SELECT c.oid::regclass::text, g.rolname, a.privilege_type FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a \
         JOIN pg_roles g ON g.oid = a.grantee \
         WHERE n.nspname IN ('public', 'auth', 'storage') \
           AND g.rolname IN ('anon', 'authenticated', 'service_role') ORDER BY 1, 2, 3",
    )
}

#[test]
#[ignore = "known defect, not fixed yet: into a Supabase-like target (1) grants users added on platform tables \
            (GRANT SELECT ON auth.users TO service_role) are lost, as the ACL entries of auth/storage are skipped \
            (selection.rs, data-only schemas), and (2) a REVOKE on a user table is lost, as the target's default \
            privileges grant everything to anon/authenticated/service_role and pg_dump's ACL entry only adds grants; \
            into plain PostgreSQL the lists already match"]
fn grants_to_platform_roles_survive_a_restore_into_both_kinds_of_target() {
    let src = supabase_project();
    src.run_sql_in(
        "proj",
        "GRANT SELECT ON auth.users TO service_role; \
         REVOKE DELETE, TRUNCATE ON public.tasks FROM anon;",
    )
    .unwrap();
    let want = platform_grants(&src, "proj");
    assert!(
        want.contains(&"auth.users|service_role|SELECT".to_string()),
        "{want:?}"
    );
    let ws = Workspace::new(&url(&src, "proj"), "profile = \"supabase\"");
    ws.backup(&[]);
    let plain = cluster();
    ws.restore("latest", &url(&plain, "staging"), &[]).ok();
    assert_eq!(
        platform_grants(&plain, "staging"),
        want,
        "into plain PostgreSQL"
    );
    let target = cluster();
    load_supabase(&target, "fresh", false);
    ws.restore("latest", &url(&target, "fresh"), &[]).ok();
    assert_eq!(
        platform_grants(&target, "fresh"),
        want,
        "into a Supabase project"
    );
    assert_eq!(
        value(&target, "fresh", "SELECT has_table_privilege('service_role', 'auth.users', 'SELECT')::text || has_table_privilege('anon', 'public.tasks', 'DELETE')::text"),
        "truefalse"
    );
}
