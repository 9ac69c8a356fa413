//! Backup of a `command` source: run a program, store its standard output as
//! one file in the snapshot, write the snapshot only if the program succeeded.
//!
//! The output streams from the program through [`RedactingReader`] (the
//! `.env` redaction, line by line) into the content chunker, so memory stays
//! flat whatever the output size. The root tree holds one file, named by the
//! source's `file` (default `<source>.out`), mode 0600; a restore brings it
//! back like a files snapshot ([`crate::restore_files`]). When the program
//! fails, times out or cannot start, the backup fails with its exit status and
//! the end of its stderr, and no snapshot is written (blobs already stored
//! are unreferenced and reclaimed by prune, as after any failed backup).

use crate::backup_files::BackupOutcome;
use crate::config::{Config, SourceConfig};
use crate::error::{EngineError, Result};
use crate::meta::{to_value, CommandMeta};
use crate::progress::Progress;
use crate::store::{seal_snapshot, snapshot_time, store_stream, store_tree, stream_node};
use lifeboat_repo::{BlobWriter, Repository, Snapshot, SnapshotKind, SnapshotStats, Tree};
use lifeboat_sources::command::{CommandSpec, RedactingReader, RunningCommand};
use lifeboat_sources::env::Redactor;
use std::sync::Arc;
use std::time::Duration;

/// The snapshot kind of a command source.
pub const KIND_COMMAND: SnapshotKind = SnapshotKind::Command;

/// Seconds a command may run when the config sets no `timeout`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// What to run and how to store it.
#[derive(Debug, Clone)]
pub struct CommandBackup {
    /// Source name recorded in the snapshot.
    pub source: String,
    /// The program, its environment and timeout.
    pub spec: CommandSpec,
    /// Name of the stored file.
    pub file: String,
    /// Secret redaction of the output.
    pub redactor: Redactor,
    /// Snapshot time (RFC 3339) instead of now.
    pub time: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

impl CommandBackup {
    /// The request for a configured `command` source: `pass_env` variables
    /// are read from lifeboat's environment (each must be set), the program
    /// runs in the config file's directory.
    pub fn from_config(
        cfg: &Config,
        src: &SourceConfig,
        redact: bool,
        time: Option<String>,
        tags: Vec<String>,
    ) -> Result<Self> {
        let env = src
            .pass_env
            .iter()
            .map(|name| {
                std::env::var(name).map(|v| (name.clone(), v)).map_err(|_| {
                    EngineError::Config(format!(
                        "source {:?}: `pass_env` names {name}, which is not set in lifeboat's environment",
                        src.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CommandBackup {
            source: src.name.clone(),
            spec: CommandSpec {
                argv: src.command.clone(),
                env,
                dir: Some(cfg.base_dir.clone()),
                timeout: Duration::from_secs(src.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            },
            file: src
                .file
                .clone()
                .unwrap_or_else(|| format!("{}.out", src.name)),
            redactor: Redactor::new(redact && src.redact, &src.redact_names, &src.keep_names),
            time,
            tags,
        })
    }
}

/// Run the command and store its output.
pub async fn backup_command(
    repo: Arc<Repository>,
    req: CommandBackup,
    progress: Arc<Progress>,
) -> Result<BackupOutcome> {
    repo.ensure_writable()?;
    let started = std::time::Instant::now();
    let time = snapshot_time(req.time.as_deref())?;
    let mtime = time
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_nanosecond() as i64)
        .unwrap_or(0);
    let parent = repo
        .snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| s.source == req.source && s.kind == KIND_COMMAND);
    let writer = BlobWriter::new(repo.clone());
    let (writer, tree, meta) = tokio::task::spawn_blocking({
        let repo = repo.clone();
        let req = req.clone();
        move || -> Result<_> {
            progress.set_phase("running command");
            let (content, meta) = run_and_store(&repo, &writer, &req, &progress)?;
            let mut tree = Tree::default();
            tree.nodes
                .push(stream_node(&req.file, content, meta.bytes, mtime));
            let tree = store_tree(&writer, tree)?;
            Ok((writer, tree, meta))
        }
    })
    .await
    .expect("backup thread panicked")?;
    let snap = Snapshot {
        version: lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        time,
        host: crate::open::hostname(),
        user: std::env::var("USER").unwrap_or_default(),
        source: req.source,
        kind: KIND_COMMAND,
        paths: vec![req.file],
        tags: req.tags,
        tree,
        parent: parent.map(|(id, _)| id),
        stats: SnapshotStats {
            files: 1,
            bytes: meta.bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        },
        meta: to_value(&meta),
    };
    let (id, snapshot) = seal_snapshot(&repo, writer, snap).await?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings: Vec::new(),
    })
}

/// Start the program, stream its redacted stdout into content blobs, and
/// judge its exit status only once the output has ended.
fn run_and_store(
    repo: &Repository,
    writer: &BlobWriter,
    req: &CommandBackup,
    progress: &Progress,
) -> Result<(Vec<lifeboat_repo::Id>, CommandMeta)> {
    let mut cmd = RunningCommand::spawn(&req.spec)?;
    let stdout = cmd.stdout().expect("stdout is piped");
    let mut reader = RedactingReader::new(stdout, req.redactor.clone());
    let chunker = repo.cdc_chunker();
    // On an error here `cmd` is dropped, which kills its process group; an
    // output cut off at the timeout is reported as the timeout.
    let (content, bytes) = match store_stream(writer, &chunker, &mut reader, progress) {
        Ok(stored) => stored,
        Err(e) => {
            drop(reader);
            if cmd.timed_out() {
                cmd.finish()?;
            }
            return Err(e);
        }
    };
    let redacted_values = reader.redacted() as u64;
    drop(reader);
    cmd.finish()?;
    Ok((
        content,
        CommandMeta {
            command: req.spec.argv.clone(),
            file: req.file.clone(),
            bytes,
            redacted: req.redactor.enabled(),
            redacted_values,
        },
    ))
}
