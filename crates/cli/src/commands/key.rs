//! `init` and `key add|list|remove|passwd|export`.

use super::Context;
use crate::args::{KeyAddArgs, KeyCommand};
use crate::output;
use anyhow::Result;
use lifeboat_engine::keys::{self, KeyInfo, NewKey};
use lifeboat_engine::types::Id;
use std::process::ExitCode;

pub async fn init(ctx: &Context) -> Result<ExitCode> {
    let r = keys::init(&ctx.engine).await?;
    if ctx.global.json {
        output::json(&serde_json::to_value(&r).expect("json"));
    } else {
        crate::outln!(
            "created lifeboat repository {} at {}",
            &r.id[..8],
            r.repository
        );
        crate::outln!(
            "keep the password safe: without it (or an exported key) the data cannot be read"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn new_key(a: KeyAddArgs) -> NewKey {
    NewKey {
        password_file: a.new_password_file,
        label: a.label,
    }
}

pub async fn run(ctx: &Context, cmd: KeyCommand) -> Result<ExitCode> {
    match cmd {
        KeyCommand::Add(a) => {
            let id = keys::add(&ctx.engine, &new_key(a)).await?;
            print_id(ctx, "added key", &id);
        }
        KeyCommand::Passwd(a) => {
            let id = keys::passwd(&ctx.engine, &new_key(a)).await?;
            print_id(ctx, "changed password; new key", &id);
        }
        KeyCommand::List => print_keys(ctx, &keys::list(&ctx.engine).await?),
        KeyCommand::Remove { id } => {
            let id = keys::remove(&ctx.engine, &id).await?;
            print_id(ctx, "removed key", &id);
        }
        KeyCommand::Export { output: path } => {
            keys::export(&ctx.engine, &path).await?;
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
/// as unusable with the reason.
fn print_keys(ctx: &Context, keys: &[KeyInfo]) {
    if ctx.global.json {
        output::json(&serde_json::to_value(keys).expect("json"));
        return;
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
        let cur = if k.current { "*" } else { "" };
        let label = match &k.problem {
            Some(why) => format!("unreadable: {why}"),
            None => k.label.clone(),
        };
        crate::outln!(
            "{cur:<2}{:<10} {:<28} {:<16} {:<10} {label}",
            k.id.short(),
            k.created,
            k.host,
            k.user,
        );
    }
}

fn print_id(ctx: &Context, what: &str, id: &Id) {
    if ctx.global.json {
        output::json(&serde_json::json!({"result": what, "id": id}));
    } else {
        crate::outln!("{what} {}", id.short());
    }
}
