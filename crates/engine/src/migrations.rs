//! `migrations check`: do a project's migrations (e.g. `supabase/migrations/*.sql`)
//! build the schema its live database has?
//!
//! The migrations are applied in name order to a scratch PostgreSQL (a
//! private [`ScratchCluster`] of the live server's major version, gone when
//! the check ends) prepared like the platform the source runs on (for the
//! `supabase` profile: the reserved roles, the extensions in their schemas,
//! the platform schemas' definitions copied from the live database); then
//! both schemas are read as objects and compared ([`schema_diff`]): every
//! object missing from the live database, extra in it, or different is a
//! [`Drift`]. The platform's own schemas are not compared (their definitions
//! are the platform's), nor are owners, privileges and publications.

use crate::backup::{pg_source_target, profile};
use crate::error::{EngineError, Result};
use crate::postgres::tools_for;
use crate::Ctx;
use lifeboat_sources::postgres::dump::Profile;
use lifeboat_sources::postgres::platform::{copy_platform, platform_dependencies};
use lifeboat_sources::postgres::psql::{self, OneShot};
use lifeboat_sources::postgres::schema_diff::{diff_objects, schema_objects};
pub use lifeboat_sources::postgres::schema_diff::{Drift, DriftKind};
use lifeboat_sources::postgres::{ClientTools, PgTarget, ScratchCluster};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to check.
#[derive(Debug, Clone)]
pub struct MigrationsCheckRequest {
    /// The `postgres` source whose live database is compared.
    pub source: String,
    /// Directory of `*.sql` migrations, applied in name order.
    pub dir: PathBuf,
}

/// What the check found.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationsCheckReport {
    /// No drift.
    pub ok: bool,
    /// Source checked.
    pub source: String,
    /// Migration files applied, in order.
    pub migrations: Vec<String>,
    /// Objects compared (union of both sides).
    pub objects: usize,
    /// Every difference.
    pub drifts: Vec<Drift>,
}

/// Run the check.
pub async fn check(ctx: &Ctx, req: MigrationsCheckRequest) -> Result<MigrationsCheckReport> {
    let config = ctx.config.as_ref().ok_or_else(|| {
        EngineError::Config("migrations check needs a config file naming the source".into())
    })?;
    let src = config.source(&req.source)?;
    let live = pg_source_target(src)?;
    let profile = profile(src)?;
    let bin_dir = ctx.source_bin_dir(&src.name);
    let files = migration_files(&req.dir)?;
    tokio::task::spawn_blocking(move || check_blocking(req, live, profile, bin_dir, files))
        .await
        .expect("migrations check thread panicked")
}

fn check_blocking(
    req: MigrationsCheckRequest,
    live: PgTarget,
    profile: Profile,
    bin_dir: Option<PathBuf>,
    files: Vec<PathBuf>,
) -> Result<MigrationsCheckReport> {
    let (tools, _) = tools_for(&live, bin_dir.as_deref())?;
    let cluster = ScratchCluster::start(&tools.bin_dir)?;
    cluster.create_database("migrations")?;
    let scratch = cluster.target().with_database("migrations");
    if let Some(deps) = platform_dependencies(
        &mut OneShot {
            tools: &tools,
            target: &live,
        },
        &profile,
    )? {
        copy_platform(&tools, &live, &tools, &scratch, &deps)?;
    }
    for f in &files {
        apply_migration(&tools, &scratch, f)?;
    }
    let excluded = profile.excluded_schemas_all();
    let expected = schema_objects(&tools, &scratch, &excluded)?;
    let actual = schema_objects(&tools, &live, &excluded)?;
    drop(cluster);
    let drifts = diff_objects(&expected, &actual);
    let objects = expected
        .keys()
        .chain(actual.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Ok(MigrationsCheckReport {
        ok: drifts.is_empty(),
        source: req.source,
        migrations: files.iter().map(|f| display_name(f)).collect(),
        objects,
        drifts,
    })
}

/// The `*.sql` files of `dir`, sorted by name.
fn migration_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(EngineError::io(format!(
        "reading the migrations directory {}",
        dir.display()
    )))?;
    let mut files = Vec::new();
    for e in entries {
        let path = e
            .map_err(EngineError::io(format!("reading {}", dir.display())))?
            .path();
        if path.extension().is_some_and(|x| x == "sql") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(EngineError::Config(format!(
            "no *.sql migrations in {}: pass --dir with the migrations directory (e.g. supabase/migrations)",
            dir.display()
        )));
    }
    Ok(files)
}

fn apply_migration(tools: &ClientTools, scratch: &PgTarget, file: &Path) -> Result<()> {
    let sql = std::fs::read_to_string(file)
        .map_err(EngineError::io(format!("reading {}", file.display())))?;
    psql::run_sql(tools, scratch, &sql).map_err(|e| {
        EngineError::Other(format!(
            "migration {} does not apply to a fresh database: {e}; fix the migration (nothing was compared)",
            display_name(file)
        ))
    })?;
    Ok(())
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
