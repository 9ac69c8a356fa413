//! Restore of a physical snapshot into an empty data directory.
//!
//! Refuses a target (or a tablespace location) that exists and is not an
//! empty directory before anything is written. Restores the data directory
//! through the files restore (atomic per file, owners kept as root), each
//! tablespace into its location (or the one `--tablespace-map OLD=NEW`
//! names) with `pg_tblspc/<oid>` pointing at it and `tablespace_map`
//! rewritten to match, hands the directory to the data directory's owner
//! with mode 0700 (PostgreSQL refuses anything wider), and turns archiving
//! off in `postgresql.auto.conf` so the restored cluster never archives
//! into the source's WAL archive. The snapshot carries the WAL from start to
//! stop with `backup_label`, so the server reaches consistency by itself on
//! its first start (as after `pg_basebackup -X fetch`).

use super::physical::{PhysicalMeta, TABLESPACES_DIR};
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use crate::restore_files::{self, RestoreSummary};
use lifeboat_repo::{Id, Repository, Snapshot};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to restore where.
#[derive(Debug, Clone, Default)]
pub struct PgPhysicalRestore {
    /// The new data directory (absent or empty).
    pub to: PathBuf,
    /// Tablespace locations to move: old location -> new location.
    pub tablespace_map: Vec<(String, String)>,
}

/// Refuse `dir` unless it is absent or an empty directory.
pub fn require_empty(dir: &Path, what: &str) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(EngineError::TargetNotEmpty(format!(
                "{what} {} is not empty: a physical restore writes a whole data directory, so it needs an empty or new directory; nothing was written",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(EngineError::TargetNotEmpty(format!(
                "{what} {} exists and is not a directory; nothing was written",
                dir.display()
            )))
        }
        Err(e) => Err(EngineError::Io {
            context: format!("reading {}", dir.display()),
            source: e,
        }),
    }
}

/// Parse `OLD=NEW` tablespace mappings.
pub fn parse_tablespace_map(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|m| match m.split_once('=') {
            Some((old, new)) if !old.is_empty() && new.starts_with('/') => {
                Ok((old.to_string(), new.to_string()))
            }
            _ => Err(EngineError::Config(format!(
                "--tablespace-map {m:?}: expected OLD=NEW with NEW an absolute path"
            ))),
        })
        .collect()
}

impl PgPhysicalRestore {
    /// Where the tablespace at `old` goes.
    fn location(&self, old: &str) -> String {
        self.tablespace_map
            .iter()
            .find(|(o, _)| o == old)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| old.to_string())
    }

    /// Check every target before anything is written.
    pub fn check(&self, meta: &PhysicalMeta) -> Result<()> {
        for (old, _) in &self.tablespace_map {
            if !meta.tablespaces.iter().any(|t| &t.location == old) {
                return Err(EngineError::Config(format!(
                    "--tablespace-map {old}=...: the snapshot has no tablespace at {old} (it has: {})",
                    meta.tablespaces
                        .iter()
                        .map(|t| t.location.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        require_empty(&self.to, "restore target")?;
        for t in &meta.tablespaces {
            let new = self.location(&t.location);
            require_empty(Path::new(&new), &format!("tablespace {} location", t.oid))?;
        }
        Ok(())
    }
}

/// Restore a physical snapshot.
pub async fn restore_physical(
    repo: &Arc<Repository>,
    id: &Id,
    snap: &Snapshot,
    req: &PgPhysicalRestore,
    progress: Arc<Progress>,
) -> Result<RestoreSummary> {
    let meta = PhysicalMeta::of(snap)?;
    req.check(&meta)?;
    let root = repo.load_tree(&snap.tree).await?;
    let data: Vec<String> = root
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| n != TABLESPACES_DIR)
        .collect();
    let mut total = RestoreSummary::default();
    let plan = restore_files::plan(repo, id, snap, &req.to, &data).await?;
    add(
        &mut total,
        restore_files::execute(repo, plan, false, progress.clone()).await?,
    );
    for t in &meta.tablespaces {
        let new = PathBuf::from(req.location(&t.location));
        let base = format!("{TABLESPACES_DIR}/{}", t.oid);
        let node = restore_files::find_node(repo, root.clone(), &base).await?;
        let children = match node.subtree {
            Some(sub) => repo.load_tree(&sub).await?.nodes,
            None => Vec::new(),
        };
        let paths: Vec<String> = children
            .iter()
            .map(|c| format!("{base}/{}", c.name))
            .collect();
        if !paths.is_empty() {
            let plan = restore_files::plan(repo, id, snap, &new, &paths).await?;
            add(
                &mut total,
                restore_files::execute(repo, plan, false, progress.clone()).await?,
            );
        } else {
            std::fs::create_dir_all(&new)
                .map_err(EngineError::io(format!("creating {}", new.display())))?;
        }
        hand_over(&new, &meta)?;
        relink(&req.to, &t.oid, &new)?;
    }
    if !meta.tablespaces.is_empty() {
        rewrite_tablespace_map(&req.to, req)?;
    }
    archiving_off(&req.to, &meta)?;
    hand_over(&req.to, &meta)?;
    Ok(total)
}

fn add(total: &mut RestoreSummary, s: RestoreSummary) {
    total.files += s.files;
    total.dirs += s.dirs;
    total.symlinks += s.symlinks;
    total.bytes += s.bytes;
}

/// Mode 0700 and, as root, the data directory's owner.
fn hand_over(dir: &Path, meta: &PhysicalMeta) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
        EngineError::io(format!("setting the mode of {}", dir.display())),
    )?;
    if lifeboat_sources::files::can_chown() {
        std::os::unix::fs::chown(dir, Some(meta.pgdata_uid), Some(meta.pgdata_gid)).map_err(
            EngineError::io(format!("handing {} to its owner", dir.display())),
        )?;
    }
    Ok(())
}

/// Point `pg_tblspc/<oid>` at `new`.
fn relink(to: &Path, oid: &str, new: &Path) -> Result<()> {
    let link = to.join("pg_tblspc").join(oid);
    match std::fs::remove_file(&link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(EngineError::io(format!("replacing {}", link.display()))(e))
        }
        _ => {}
    }
    std::os::unix::fs::symlink(new, &link)
        .map_err(EngineError::io(format!("linking {}", link.display())))
}

/// `tablespace_map` lines are `<oid> <location>`: apply the mapping.
fn rewrite_tablespace_map(to: &Path, req: &PgPhysicalRestore) -> Result<()> {
    let path = to.join("tablespace_map");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let mapped: String = text
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((oid, loc)) => format!("{oid} {}\n", req.location(loc)),
            None => format!("{l}\n"),
        })
        .collect();
    if mapped != text {
        std::fs::write(&path, mapped)
            .map_err(EngineError::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// Append `archive_mode = 'off'` to `postgresql.auto.conf` (which wins over
/// `postgresql.conf`), so the restored cluster does not archive into the
/// source's archive.
fn archiving_off(to: &Path, meta: &PhysicalMeta) -> Result<()> {
    use std::io::Write;
    let path = to.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(EngineError::io(format!("opening {}", path.display())))?;
    f.write_all(
        b"\n# lifeboat restore: the restored cluster must not archive into the source's archive\narchive_mode = 'off'\n",
    )
    .and_then(|()| f.sync_all())
    .map_err(EngineError::io(format!("writing {}", path.display())))?;
    if lifeboat_sources::files::can_chown() {
        std::os::unix::fs::chown(&path, Some(meta.pgdata_uid), Some(meta.pgdata_gid)).map_err(
            EngineError::io(format!("handing {} to its owner", path.display())),
        )?;
    }
    Ok(())
}
