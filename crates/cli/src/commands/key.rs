//! `init` and `key add|list|remove|passwd|export`.

use super::Context;
use crate::args::{KeyAddArgs, KeyCommand};
use crate::output;
use anyhow::{bail, Context as _, Result};
use lifeboat_engine::config::read_secret_file;
use lifeboat_engine::open::key_meta;
use lifeboat_repo::{Id, KdfParams};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

pub async fn init(ctx: &Context) -> Result<ExitCode> {
    let repo = ctx.repo.init().await?;
    let location = repo.storage().location();
    if ctx.global.json {
        output::json(
            &serde_json::json!({"repository": location, "id": repo.config().id, "version": repo.config().version}),
        );
    } else {
        crate::outln!(
            "created lifeboat repository {} at {location}",
            &repo.config().id[..8]
        );
        crate::outln!(
            "keep the password safe: without it (or an exported key) the data cannot be read"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn new_password(a: &KeyAddArgs) -> Result<zeroize::Zeroizing<String>> {
    let pw = zeroize::Zeroizing::new(read_secret_file(&a.new_password_file)?);
    if pw.is_empty() {
        bail!(
            "the new password file {} is empty",
            a.new_password_file.display()
        );
    }
    Ok(pw)
}

/// Wrap the master key under the new passphrase of `a`.
async fn add_key(repo: &lifeboat_repo::Repository, a: &KeyAddArgs) -> Result<Id> {
    let pw = new_password(a)?;
    Ok(repo
        .add_key(pw.as_bytes(), KdfParams::default(), key_meta(&a.label))
        .await?)
}

pub async fn run(ctx: &Context, cmd: KeyCommand) -> Result<ExitCode> {
    let repo = ctx.repo.open_without_index().await?;
    match cmd {
        KeyCommand::Add(a) => {
            let id = add_key(&repo, &a).await?;
            print_id(ctx, "added key", &id);
        }
        KeyCommand::Passwd(a) => {
            let Some(old) = repo.key_in_use() else {
                bail!("passwd changes the passphrase the repository was opened with; open it with a password, not a key file");
            };
            let id = add_key(&repo, &a).await?;
            repo.storage().delete(&format!("keys/{old}")).await?;
            print_id(ctx, "changed password; new key", &id);
        }
        KeyCommand::List => list_keys(ctx, &repo).await?,
        KeyCommand::Remove { id } => {
            let keys = repo.list_keys().await?;
            let matching: Vec<Id> = keys
                .iter()
                .map(|k| k.id)
                .filter(|k| k.to_string().starts_with(&id))
                .collect();
            let target = match matching.as_slice() {
                [one] => *one,
                [] => {
                    return Err(lifeboat_repo::Error::NotFound(format!(
                        "no key matches {id:?} (see `lifeboat key list`)"
                    ))
                    .into())
                }
                _ => bail!("{} keys match {id:?}: give more digits", matching.len()),
            };
            repo.remove_key(&target).await?;
            print_id(ctx, "removed key", &target);
        }
        KeyCommand::Export { output: path } => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", path.display())
                })?;
            f.write_all(&repo.export_raw_key())?;
            f.sync_all()?;
            if ctx.global.json {
                output::json(&serde_json::json!({"exported": path}));
            } else {
                crate::outln!("wrote raw key to {} (mode 0600): it opens the repository without a password, guard it like the data", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `key list`: every key file; one that cannot unlock anything is listed
/// as unusable with the reason instead of failing the listing.
async fn list_keys(ctx: &Context, repo: &lifeboat_repo::Repository) -> Result<()> {
    let keys = repo.list_keys().await?;
    if ctx.global.json {
        let list: Vec<_> = keys
            .iter()
            .map(|k| {
                let [created, host, user, label] = key_meta_of(k);
                serde_json::json!({"id": k.id, "current": repo.key_in_use() == Some(k.id),
                    "usable": k.usable(), "problem": k.problem,
                    "created": created, "host": host, "user": user, "label": label})
            })
            .collect();
        output::json(&serde_json::Value::Array(list));
        return Ok(());
    }
    crate::outln!(
        "{:<2}{:<10} {:<28} {:<16} {:<10} label",
        "",
        "id",
        "created",
        "host",
        "user"
    );
    for k in keys {
        let cur = if repo.key_in_use() == Some(k.id) {
            "*"
        } else {
            ""
        };
        let [created, host, user, label] = key_meta_of(&k);
        let label = match &k.problem {
            Some(why) => format!("unreadable: {why}"),
            None => label.to_string(),
        };
        crate::outln!(
            "{cur:<2}{:<10} {created:<28} {host:<16} {user:<10} {label}",
            k.id.short(),
        );
    }
    Ok(())
}

/// Created, host, user and label of a key file (blank when unparsable).
fn key_meta_of(k: &lifeboat_repo::KeyEntry) -> [&str; 4] {
    k.file.as_ref().map_or(["", "", "", ""], |f| {
        [
            f.created.as_str(),
            f.host.as_str(),
            f.user.as_str(),
            f.label.as_str(),
        ]
    })
}

fn print_id(ctx: &Context, what: &str, id: &Id) {
    if ctx.global.json {
        output::json(&serde_json::json!({"result": what, "id": id}));
    } else {
        crate::outln!("{what} {}", id.short());
    }
}
