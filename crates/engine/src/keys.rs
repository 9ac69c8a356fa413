//! Key use cases: create the repository, and add, list, remove, change and
//! export the keys that open it.

use crate::config::read_secret_file;
use crate::ctx::Ctx;
use crate::error::{EngineError, Result};
use crate::open::key_meta;
use lifeboat_repo::{Id, KdfParams, KeyEntry};
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A new repository.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// Where it is.
    pub repository: String,
    /// Its id (hex).
    pub id: String,
    /// Its format version.
    pub version: u32,
}

/// Create a repository protected by the context's password.
pub async fn init(ctx: &Ctx) -> Result<InitReport> {
    let repo = ctx.repo.init().await?;
    Ok(InitReport {
        repository: repo.storage().location(),
        id: repo.config().id.clone(),
        version: repo.config().version,
    })
}

/// A new passphrase, read from a file.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// File holding the new passphrase.
    pub password_file: PathBuf,
    /// Label recorded in the key file.
    pub label: String,
}

fn new_password(k: &NewKey) -> Result<Zeroizing<String>> {
    let pw = Zeroizing::new(read_secret_file(&k.password_file)?);
    if pw.is_empty() {
        return Err(EngineError::Other(format!(
            "the new password file {} is empty",
            k.password_file.display()
        )));
    }
    Ok(pw)
}

/// Add a key for a new passphrase; returns its id.
pub async fn add(ctx: &Ctx, k: &NewKey) -> Result<Id> {
    let repo = ctx.repo.open_without_index().await?;
    let pw = new_password(k)?;
    Ok(repo
        .add_key(pw.as_bytes(), KdfParams::default(), key_meta(&k.label))
        .await?)
}

/// Change the passphrase the repository was opened with; returns the new key's id.
pub async fn passwd(ctx: &Ctx, k: &NewKey) -> Result<Id> {
    let repo = ctx.repo.open_without_index().await?;
    let pw = new_password(k)?;
    Ok(repo
        .change_password(pw.as_bytes(), KdfParams::default(), key_meta(&k.label))
        .await?)
}

/// One key file, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Its id.
    pub id: Id,
    /// The key this session opened the repository with.
    pub current: bool,
    /// Whether it can unlock the repository.
    pub usable: bool,
    /// Why not, when it cannot.
    pub problem: Option<String>,
    /// When it was made (blank when unreadable).
    pub created: String,
    /// Where.
    pub host: String,
    /// By whom.
    pub user: String,
    /// Its label.
    pub label: String,
}

/// Every key file; one that cannot unlock anything is listed with the reason.
pub async fn list(ctx: &Ctx) -> Result<Vec<KeyInfo>> {
    let repo = ctx.repo.open_without_index().await?;
    let current = repo.key_in_use();
    Ok(repo
        .list_keys()
        .await?
        .into_iter()
        .map(|k| key_info(k, current))
        .collect())
}

fn key_info(k: KeyEntry, current: Option<Id>) -> KeyInfo {
    let (created, host, user, label) = k.file.as_ref().map_or_else(Default::default, |f| {
        (
            f.created.clone(),
            f.host.clone(),
            f.user.clone(),
            f.label.clone(),
        )
    });
    KeyInfo {
        id: k.id,
        current: current == Some(k.id),
        usable: k.usable(),
        problem: k.problem,
        created,
        host,
        user,
        label,
    }
}

/// Remove the key whose id starts with `prefix`; returns its id.
pub async fn remove(ctx: &Ctx, prefix: &str) -> Result<Id> {
    let repo = ctx.repo.open_without_index().await?;
    let matching: Vec<Id> = repo
        .list_keys()
        .await?
        .iter()
        .map(|k| k.id)
        .filter(|k| k.to_string().starts_with(prefix))
        .collect();
    let target = match matching.as_slice() {
        [one] => *one,
        [] => {
            return Err(lifeboat_repo::Error::NotFound(format!(
                "no key matches {prefix:?} (see `lifeboat key list`)"
            ))
            .into())
        }
        _ => {
            return Err(EngineError::Other(format!(
                "{} keys match {prefix:?}: give more digits",
                matching.len()
            )))
        }
    };
    repo.remove_key(&target).await?;
    Ok(target)
}

/// Write the raw key to `path`, created 0600 and never overwritten.
pub async fn export(ctx: &Ctx, path: &Path) -> Result<()> {
    let repo = ctx.repo.open_without_index().await?;
    let mut f = create_private(path)?;
    let write = EngineError::io(format!("writing {}", path.display()));
    f.write_all(&repo.export_raw_key()).map_err(write)?;
    f.sync_all()
        .map_err(EngineError::io(format!("writing {}", path.display())))
}

/// Create `path` with mode 0600 from its first byte; an existing file is
/// refused (`target_not_empty`) and left alone.
pub(crate) fn create_private(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(EngineError::io(format!(
            "cannot create {} (it must not exist yet)",
            path.display()
        )))
}
