//! Logical dumps: `pg_dump -Fc -Z0` of one database to stdout, and cluster globals
//! (roles, tablespaces) with `pg_dumpall --globals-only`.
//!
//! The archive is written uncompressed (`-Z0`) on purpose: the repository chunks
//! it with content-defined chunking and compresses each chunk, so unchanged tables
//! deduplicate between snapshots; a compressed stream would change throughout.
//!
//! # The `supabase` profile
//!
//! Reproduces the rules of `supabase db dump` (Supabase CLI,
//! `apps/cli-go/pkg/migration/dump.go` and `pkg/migration/scripts/dump_*.sh`, read
//! at commit 1d1e719 of github.com/supabase/cli); the lists below are ours, written
//! from those rules:
//! - schemas managed by the platform or owned by extensions are excluded
//!   ([`SUPABASE_INTERNAL_SCHEMAS`]);
//! - migration-history tables never carry data ([`SUPABASE_NO_DATA_TABLES`]);
//! - reserved roles are not created or altered when globals are restored
//!   ([`SUPABASE_RESERVED_ROLES`], [`filter_globals`]).
//!
//! The CLI makes two dumps (schema without internal schemas; data with `auth` and
//! `storage`). lifeboat keeps **one** archive per database so it stays a single
//! genuine pg_dump file. With `keep_auth_data` / `keep_storage_data` (the
//! default in a config: every backup a full recovery point), the `auth` /
//! `storage` schemas are therefore dumped *whole* (definitions and data): the
//! archive then restores into a plain PostgreSQL (restore tests, drills), and a
//! restore into a Supabase project, whose platform already owns those
//! definitions, selects only their data entries with
//! [`Profile::data_only_schemas`] (see `restore::RestoreOptions::data_only_schemas`).
//! Data-only entries alone would not be a restorable archive anywhere else,
//! which is why we do not dump them data-only.

use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::conn::PgTarget;
use super::ident::quote_literal;
use super::tools::ClientTools;

/// Schemas `supabase db dump` leaves out: platform-managed or extension-owned.
/// Source: `InternalSchemas` in supabase/cli `pkg/migration/dump.go`. `pg_*` and
/// `information_schema` are pg_dump's own exclusions already.
pub const SUPABASE_INTERNAL_SCHEMAS: &[&str] = &[
    // Initialised by the supabase/postgres image, owned by the postgres role.
    "_analytics",
    "_realtime",
    "_supavisor",
    "auth",
    "etl",
    "extensions",
    "pgbouncer",
    "realtime",
    "storage",
    "supabase_functions",
    "supabase_migrations",
    // Owned by extensions.
    "cron",
    "dbdev",
    "graphql",
    "graphql_public",
    "net",
    "pgmq",
    "pgsodium",
    "pgsodium_masks",
    "pgtle",
    "repack",
    "tiger",
    "tiger_data",
    "timescaledb_*",
    "_timescaledb_*",
    "topology",
    "vault",
];

/// Tables whose data is never dumped (platform migration history).
/// Source: `--exclude-table` flags of supabase/cli `scripts/dump_data.sh`.
pub const SUPABASE_NO_DATA_TABLES: &[&str] = &[
    "auth.schema_migrations",
    "storage.migrations",
    "supabase_functions.migrations",
];

/// Roles the platform owns; restoring globals must not create or alter them.
/// Regular expressions (anchored when used). Source: `reservedRoles` in
/// supabase/cli `pkg/migration/dump.go`.
pub const SUPABASE_RESERVED_ROLES: &[&str] = &[
    "anon",
    "authenticated",
    "authenticator",
    "cli_login_*",
    "dashboard_user",
    "pgbouncer",
    "postgres",
    "service_role",
    "supabase_*",
    "pgsodium_keyholder",
    "pgsodium_keyiduser",
    "pgsodium_keymaker",
    "pgtle_admin",
];

/// Role settings that may still be applied to reserved roles (supautils allows them).
/// Source: `allowedConfigs` in supabase/cli `pkg/migration/dump.go`.
pub const SUPABASE_ALLOWED_ROLE_SETTINGS: &[&str] = &[
    "pgaudit.*",
    "pgrst.*",
    "session_replication_role",
    "statement_timeout",
    "track_io_timing",
];

/// Which platform rules to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Profile {
    /// Plain PostgreSQL: dump everything the user can see.
    #[default]
    Plain,
    /// Supabase: leave out platform schemas and reserved roles.
    Supabase {
        /// Keep the `auth` schema (users, identities, sessions...).
        keep_auth_data: bool,
        /// Keep the `storage` schema (bucket and object metadata).
        keep_storage_data: bool,
    },
}

impl Profile {
    /// Schemas this profile excludes from the dump (pg_dump patterns).
    pub fn excluded_schemas(&self) -> Vec<&'static str> {
        match self {
            Profile::Plain => Vec::new(),
            Profile::Supabase {
                keep_auth_data,
                keep_storage_data,
            } => SUPABASE_INTERNAL_SCHEMAS
                .iter()
                .copied()
                .filter(|s| !(*keep_auth_data && *s == "auth"))
                .filter(|s| !(*keep_storage_data && *s == "storage"))
                .collect(),
        }
    }

    /// Every platform schema of this profile (pg_dump patterns), kept or
    /// not: what a schema comparison leaves to the platform.
    pub fn excluded_schemas_all(&self) -> Vec<&'static str> {
        match self {
            Profile::Plain => Vec::new(),
            Profile::Supabase { .. } => SUPABASE_INTERNAL_SCHEMAS.to_vec(),
        }
    }

    /// Tables whose data this profile never dumps.
    pub fn excluded_table_data(&self) -> Vec<&'static str> {
        match self {
            Profile::Plain => Vec::new(),
            Profile::Supabase { .. } => SUPABASE_NO_DATA_TABLES.to_vec(),
        }
    }

    /// What this profile was told to leave out, each as a sentence naming
    /// the setting that opts back in (`backup` prints them).
    pub fn opt_out_notes(&self) -> Vec<String> {
        let Profile::Supabase {
            keep_auth_data,
            keep_storage_data,
        } = self
        else {
            return Vec::new();
        };
        let mut v = Vec::new();
        if !keep_auth_data {
            v.push("auth data (users, identities, sessions) left out because keep_auth_data = false: a restore brings back no user accounts; remove the setting to keep them".to_string());
        }
        if !keep_storage_data {
            v.push("storage data (bucket and object metadata) left out because keep_storage_data = false; remove the setting to keep it".to_string());
        }
        v
    }

    /// Schemas present in the archive whose definitions the target platform owns:
    /// when restoring into such a platform, restore only their data.
    pub fn data_only_schemas(&self) -> Vec<String> {
        match self {
            Profile::Plain => Vec::new(),
            Profile::Supabase {
                keep_auth_data,
                keep_storage_data,
            } => {
                let mut v = Vec::new();
                if *keep_auth_data {
                    v.push("auth".to_string());
                }
                if *keep_storage_data {
                    v.push("storage".to_string());
                }
                v
            }
        }
    }
}

/// What to put in a logical dump. Stored in snapshot metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DumpOptions {
    /// Definitions only (`--schema-only`).
    pub schema_only: bool,
    /// Data only (`--data-only`).
    pub data_only: bool,
    /// Only these tables (pg_dump patterns, `--table=` each).
    pub tables: Vec<String>,
    /// Only these schemas (`--schema=` each).
    pub schemas: Vec<String>,
    /// Leave out these tables (`--exclude-table=`).
    pub exclude_tables: Vec<String>,
    /// Leave out these schemas (`--exclude-schema=`).
    pub exclude_schemas: Vec<String>,
    /// Keep these tables' definitions but not their data (`--exclude-table-data=`).
    pub exclude_table_data: Vec<String>,
    /// Platform rules.
    pub profile: Profile,
}

/// How one pg_dump run is tied to the rest of the backup (not stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpRun {
    /// An exported snapshot to dump in (`--snapshot`), so what the backup
    /// records about the database describes exactly what was dumped.
    pub snapshot: Option<String>,
    /// How long to wait for each table's lock before failing
    /// (`--lock-wait-timeout`), instead of queueing behind an exclusive lock forever.
    pub lock_wait_timeout: Option<std::time::Duration>,
}

/// The `pg_dump -Fc -Z0` command for `target`'s database, writing the archive to
/// stdout (piped) and messages to stderr (piped). The database name, like every
/// connection detail, travels in the environment.
pub fn dump_command(tools: &ClientTools, target: &PgTarget, opts: &DumpOptions) -> Command {
    dump_command_for(tools, target, opts, &DumpRun::default())
}

/// [`dump_command`] in a snapshot and with a lock timeout.
pub fn dump_command_for(
    tools: &ClientTools,
    target: &PgTarget,
    opts: &DumpOptions,
    run: &DumpRun,
) -> Command {
    let mut cmd = crate::process::command(&tools.pg_dump);
    cmd.args(["--format=custom", "--compress=0", "--no-password"]);
    if let Some(id) = &run.snapshot {
        cmd.arg(format!("--snapshot={id}"));
    }
    if let Some(t) = run.lock_wait_timeout {
        cmd.arg(format!("--lock-wait-timeout={}", t.as_millis().max(1)));
    }
    if opts.schema_only {
        cmd.arg("--schema-only");
    }
    if opts.data_only {
        cmd.arg("--data-only");
    }
    for t in &opts.tables {
        cmd.arg(format!("--table={t}"));
    }
    for s in &opts.schemas {
        cmd.arg(format!("--schema={s}"));
    }
    for t in &opts.exclude_tables {
        cmd.arg(format!("--exclude-table={t}"));
    }
    for s in &opts.exclude_schemas {
        cmd.arg(format!("--exclude-schema={s}"));
    }
    for s in opts.profile.excluded_schemas() {
        cmd.arg(format!("--exclude-schema={s}"));
    }
    for t in &opts.exclude_table_data {
        cmd.arg(format!("--exclude-table-data={t}"));
    }
    for t in opts.profile.excluded_table_data() {
        cmd.arg(format!("--exclude-table-data={t}"));
    }
    target.apply_env(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The `pg_dumpall --globals-only` command (roles, memberships, role settings,
/// tablespaces) writing SQL to stdout. Role passwords are left out
/// (`--no-role-passwords`) unless `roles_with_passwords`; reading them needs a
/// superuser, which managed services (Supabase) do not give.
pub fn globals_command(
    tools: &ClientTools,
    target: &PgTarget,
    roles_with_passwords: bool,
) -> Command {
    let mut cmd = crate::process::command(&tools.pg_dumpall);
    cmd.args(["--globals-only", "--no-password"]);
    if !roles_with_passwords {
        cmd.arg("--no-role-passwords");
    }
    if let Some(db) = target.database() {
        // pg_dumpall ignores PGDATABASE; a connection string without secrets names it.
        cmd.arg(format!("--dbname=dbname={}", quote_literal(db)));
    }
    target.apply_env(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Applies the profile's rules to `pg_dumpall --globals-only` output.
///
/// For [`Profile::Supabase`] (after supabase/cli `scripts/dump_role.sh`), lines are
/// commented out rather than deleted, so the file still shows what was skipped:
/// `CREATE ROLE` / `ALTER ROLE` / `COMMENT ON ROLE` of reserved roles (except
/// `ALTER ROLE ... SET` of settings supautils allows), `GRANT ... TO` a reserved
/// role, and tablespaces (the CLI dumps roles only; the platform has none); the
/// superuser-only attributes `NOSUPERUSER` / `NOREPLICATION` are dropped.
/// [`Profile::Plain`] returns the input unchanged.
pub fn filter_globals(sql: &str, profile: &Profile) -> String {
    if *profile == Profile::Plain {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len());
    for line in sql.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        if supabase_skips(body) {
            out.push_str("-- ");
            out.push_str(body);
        } else {
            out.push_str(
                &body
                    .replace(" NOSUPERUSER", "")
                    .replace(" NOREPLICATION", ""),
            );
        }
        out.push_str(ending);
    }
    out
}

fn supabase_skips(line: &str) -> bool {
    for prefix in [
        "CREATE ROLE ",
        "ALTER ROLE ",
        "COMMENT ON ROLE ",
        "ALTER USER ",
    ] {
        if let Some(rest) = line.strip_prefix(prefix) {
            let (role, after) = leading_ident(rest);
            if !is_reserved_role(&role) {
                return false;
            }
            // Reserved roles may keep settings supautils allows.
            if prefix == "ALTER ROLE " {
                if let Some(setting) = after.trim_start().strip_prefix("SET ") {
                    let (name, _) = leading_ident(setting.trim_start());
                    return !SUPABASE_ALLOWED_ROLE_SETTINGS
                        .iter()
                        .any(|p| glob_match(p, &name));
                }
            }
            return true;
        }
    }
    if line.starts_with("CREATE TABLESPACE ") || line.starts_with("ALTER TABLESPACE ") {
        return true;
    }
    if line.starts_with("GRANT ") {
        if let Some(i) = line.find(" TO ") {
            let (grantee, _) = leading_ident(&line[i + 4..]);
            return is_reserved_role(&grantee);
        }
    }
    false
}

/// Whether `role` is reserved on Supabase.
pub fn is_reserved_role(role: &str) -> bool {
    SUPABASE_RESERVED_ROLES.iter().any(|p| glob_match(p, role))
}

/// Reads one (possibly double-quoted) identifier from the start of `s`; returns it
/// unquoted and the rest of `s`.
fn leading_ident(s: &str) -> (String, &str) {
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|(_, c)| *c) == Some('"') {
                    out.push('"');
                    chars.next();
                } else {
                    return (out, &rest[i + 1..]);
                }
            } else {
                out.push(c);
            }
        }
        (out, "")
    } else {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
            .unwrap_or(s.len());
        (s[..end].to_string(), &s[end..])
    }
}

/// `*` at the end of a pattern matches any suffix; otherwise exact match.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn fake_tools() -> ClientTools {
        ClientTools {
            bin_dir: "/x".into(),
            major: 15,
            version: "15.0".into(),
            pg_dump: "/x/pg_dump".into(),
            pg_restore: "/x/pg_restore".into(),
            pg_dumpall: "/x/pg_dumpall".into(),
            psql: "/x/psql".into(),
        }
    }

    #[test]
    fn dump_args_never_carry_the_connection() {
        let t = PgTarget::parse("postgres://u:secret@h:5432/app").unwrap();
        let opts = DumpOptions {
            tables: vec!["public.a".into(), "b".into()],
            exclude_table_data: vec!["logs".into()],
            profile: Profile::Supabase {
                keep_auth_data: true,
                keep_storage_data: false,
            },
            ..DumpOptions::default()
        };
        let a = args(&dump_command(&fake_tools(), &t, &opts));
        assert!(a.contains(&"--format=custom".to_string()));
        assert!(a.contains(&"--compress=0".to_string()));
        assert!(a.contains(&"--table=public.a".to_string()));
        assert!(a.contains(&"--table=b".to_string()));
        assert!(a.contains(&"--exclude-schema=storage".to_string()));
        assert!(!a.contains(&"--exclude-schema=auth".to_string()));
        assert!(a.contains(&"--exclude-table-data=auth.schema_migrations".to_string()));
        assert!(a
            .iter()
            .all(|x| !x.contains("secret") && !x.contains("app")));
    }

    #[test]
    fn supabase_globals_filter() {
        let sql = "CREATE ROLE anon;\nALTER ROLE anon WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;\n\
CREATE ROLE \"supabase_admin\";\nCREATE ROLE app_user;\nALTER ROLE app_user WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;\n\
ALTER ROLE authenticator SET statement_timeout TO '8s';\nALTER ROLE authenticator SET search_path TO 'x';\n\
GRANT anon TO app_user GRANTED BY postgres;\nGRANT app_user TO authenticator GRANTED BY postgres;\nCREATE TABLESPACE t OWNER postgres LOCATION '/x';\n";
        let out = filter_globals(
            sql,
            &Profile::Supabase {
                keep_auth_data: false,
                keep_storage_data: false,
            },
        );
        let live: Vec<&str> = out.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            live,
            vec![
                "CREATE ROLE app_user;",
                "ALTER ROLE app_user WITH INHERIT NOCREATEROLE NOCREATEDB LOGIN NOBYPASSRLS;",
                "ALTER ROLE authenticator SET statement_timeout TO '8s';",
                "GRANT anon TO app_user GRANTED BY postgres;",
            ]
        );
        assert_eq!(filter_globals(sql, &Profile::Plain), sql);
    }

    #[test]
    fn reserved_roles() {
        for r in [
            "anon",
            "postgres",
            "supabase_admin",
            "supabase_storage_admin",
            "cli_login_x",
            "pgsodium_keymaker",
        ] {
            assert!(is_reserved_role(r), "{r}");
        }
        for r in ["app_user", "anonymous", "postgres2"] {
            assert!(!is_reserved_role(r), "{r}");
        }
    }
}
