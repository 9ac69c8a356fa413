//! What a platform-profile dump presupposes, and preparing a target for it.
//!
//! A `supabase` profile dump leaves the platform's own schemas out (see
//! [`super::dump`]) yet depends on them: extensions live in `extensions`,
//! objects are owned by and granted to the platform's reserved roles. At
//! backup time [`platform_dependencies`] records those facts
//! ([`PlatformDeps`], stored in the snapshot's metadata); at restore time
//! [`has_platform`] tells a Supabase-like target (the platform's schemas and
//! roles already there) from plain PostgreSQL, and [`prepare_plain`] creates
//! what the dump presupposes on plain PostgreSQL.
//!
//! The catalog questions are the functions of this module, so they can move
//! onto another SQL client without touching their callers.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::dump::{is_reserved_role, Profile};
use super::error::Result;
use super::ident::{quote_ident, quote_literal};
use super::psql::{OneShot, Sql};
use super::tools::ClientTools;
use super::PgTarget;

/// One extension and the schema it is installed in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtensionPlacement {
    /// Extension name (`pgcrypto`).
    pub name: String,
    /// Schema holding its objects (`extensions`).
    pub schema: String,
}

/// The platform facts a profile dump depends on. Stored in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlatformDeps {
    /// Platform schemas the dump references without carrying their
    /// definitions (extension schemas the profile excludes), sorted.
    pub schemas: Vec<String>,
    /// Platform schemas whose definitions and data the dump carries
    /// (`auth`, `storage` when kept): a Supabase-like target already owns
    /// their definitions, so only their data and what users attached are restored.
    pub data_schemas: Vec<String>,
    /// Every extension of the database, with its schema.
    pub extensions: Vec<ExtensionPlacement>,
    /// Reserved platform roles present on the source (objects in the dump
    /// are owned by or granted to them).
    pub roles: Vec<String>,
}

/// Schemas a Supabase-like target has, all of which must exist to count as one.
const PLATFORM_MARKERS: &[&str] = &["auth", "storage", "extensions"];

/// The [`PlatformDeps`] of `profile` on the database `db` is connected to;
/// `None` for [`Profile::Plain`].
pub fn platform_dependencies(db: &mut dyn Sql, profile: &Profile) -> Result<Option<PlatformDeps>> {
    if *profile == Profile::Plain {
        return Ok(None);
    }
    let excluded = profile.excluded_schemas();
    let extensions: Vec<ExtensionPlacement> = db
        .rows(
            "SELECT e.extname, n.nspname FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1;",
        )?
        .into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            Some(ExtensionPlacement {
                name: it.next()?,
                schema: it.next()?,
            })
        })
        .collect();
    let schemas: BTreeSet<String> = extensions
        .iter()
        .filter(|x| excluded.contains(&x.schema.as_str()))
        .map(|x| x.schema.clone())
        .collect();
    let roles = db
        .rows("SELECT rolname FROM pg_roles ORDER BY 1;")?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .filter(|r| is_reserved_role(r))
        .collect();
    Ok(Some(PlatformDeps {
        schemas: schemas.into_iter().collect(),
        data_schemas: profile.data_only_schemas(),
        extensions,
        roles,
    }))
}

/// Whether the target database already holds the platform (its `auth`,
/// `storage` and `extensions` schemas): a Supabase project, not plain PostgreSQL.
pub fn has_platform(tools: &ClientTools, target: &PgTarget) -> Result<bool> {
    let list: Vec<String> = PLATFORM_MARKERS.iter().map(|s| quote_literal(s)).collect();
    let sql = format!(
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ({});",
        list.join(", ")
    );
    let rows = OneShot { tools, target }.rows(&sql)?;
    let n = rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default();
    Ok(n == PLATFORM_MARKERS.len().to_string())
}

/// Prepares plain PostgreSQL for a platform dump: the reserved roles it
/// references as NOLOGIN roles (cluster-wide, only those missing), and the
/// platform schemas holding its extensions (owned by `schema_owner`, or the
/// connecting user), so its `CREATE EXTENSION ... WITH SCHEMA` lines succeed.
/// The extensions themselves are created by the dump.
pub fn prepare_plain(
    tools: &ClientTools,
    target: &PgTarget,
    deps: &PlatformDeps,
    schema_owner: Option<&str>,
) -> Result<()> {
    let mut sql = String::new();
    for role in &deps.roles {
        sql.push_str(&format!(
            "DO $lifeboat$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) \
             THEN CREATE ROLE {id} NOLOGIN; END IF; END $lifeboat$;\n",
            lit = quote_literal(role),
            id = quote_ident(role)
        ));
    }
    for schema in &deps.schemas {
        sql.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ));
        if let Some(owner) = schema_owner {
            sql.push_str(&format!(" AUTHORIZATION {}", quote_ident(owner)));
        }
        sql.push_str(";\n");
    }
    if sql.is_empty() {
        return Ok(());
    }
    OneShot { tools, target }.rows(&sql)?;
    Ok(())
}

/// What the platform already has in the target: triggers and policies on
/// the tables of `schemas`, as `schema.table name` (pg_restore's TOC tag of
/// both is `table name`), and publications, as `PUBLICATION name`
/// (Supabase's `supabase_realtime`). A restore must not create them again.
pub fn existing_attachments(
    tools: &ClientTools,
    target: &PgTarget,
    schemas: &[String],
) -> Result<BTreeSet<String>> {
    if schemas.is_empty() {
        return Ok(BTreeSet::new());
    }
    let list: Vec<String> = schemas.iter().map(|s| quote_literal(s)).collect();
    let sql = format!(
        "SELECT n.nspname || '.' || c.relname || ' ' || t.tgname FROM pg_trigger t \
           JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE NOT t.tgisinternal AND n.nspname IN ({l});
         SELECT schemaname || '.' || tablename || ' ' || policyname FROM pg_policies \
           WHERE schemaname IN ({l});
         SELECT 'PUBLICATION ' || pubname FROM pg_publication;",
        l = list.join(", ")
    );
    Ok(OneShot { tools, target }
        .rows(&sql)?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect())
}

/// Empties `tables` (schema, name; one `TRUNCATE`, so tables referencing
/// each other go together) before `restore --clean` loads the snapshot's rows
/// into platform tables it does not drop and recreate (Supabase's `auth`,
/// `storage`). A table outside `tables` that references one of them stops
/// it, with PostgreSQL's error naming both: nothing is emptied then.
pub fn truncate_for_reload(
    tools: &ClientTools,
    target: &PgTarget,
    tables: &[(String, String)],
) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = tables
        .iter()
        .map(|(s, n)| format!("{}.{}", quote_ident(s), quote_ident(n)))
        .collect();
    let sql = format!("TRUNCATE TABLE {} RESTRICT;", list.join(", "));
    OneShot { tools, target }.rows(&sql)?;
    Ok(())
}

/// The platform schemas present on `target` that an extension does not
/// create (`auth`, `storage`, `realtime`, ...): what a scratch database needs
/// copied before migrations written for the platform apply.
pub fn platform_schemas_present(
    tools: &ClientTools,
    target: &PgTarget,
    deps: &PlatformDeps,
) -> Result<Vec<String>> {
    let rows = OneShot { tools, target }.rows("SELECT nspname FROM pg_namespace ORDER BY 1;")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .filter(|s| super::dump::SUPABASE_INTERNAL_SCHEMAS.contains(&s.as_str()))
        .filter(|s| !deps.extensions.iter().any(|x| &x.schema == s))
        .collect())
}

/// Makes `scratch` look like the platform of `live`: the reserved roles, the
/// extensions in their schemas, and the definitions of the platform schemas
/// (`pg_dump --schema-only` of `live`, without owners, privileges, and the
/// triggers and policies users attached, which their migrations create).
pub fn copy_platform(
    live_tools: &ClientTools,
    live: &PgTarget,
    tools: &ClientTools,
    scratch: &PgTarget,
    deps: &PlatformDeps,
) -> Result<()> {
    prepare_plain(tools, scratch, deps, None)?;
    let mut sql = String::new();
    for x in deps.extensions.iter().filter(|x| x.name != "plpgsql") {
        sql.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};\n",
            quote_ident(&x.name),
            quote_ident(&x.schema)
        ));
    }
    if !sql.is_empty() {
        OneShot {
            tools,
            target: scratch,
        }
        .rows(&sql)?;
    }
    let schemas = platform_schemas_present(live_tools, live, deps)?;
    if schemas.is_empty() {
        return Ok(());
    }
    let mut cmd = crate::process::command(&live_tools.pg_dump);
    cmd.args([
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-password",
    ]);
    for s in &schemas {
        cmd.arg(format!("--schema={s}"));
    }
    live.apply_env(&mut cmd);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    let out = super::child::output_of(cmd, "pg_dump", live, None)?;
    let sql =
        super::schema_diff::without_types(&String::from_utf8_lossy(&out), &["TRIGGER", "POLICY"]);
    // A pg_dump script holds psql meta-commands (`\restrict` since 15.14,
    // 16.10, 17.6): only psql runs it, never the client's simple query.
    super::psql::run_sql(tools, scratch, &sql)?;
    Ok(())
}
