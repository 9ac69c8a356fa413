//! `lifeboat.toml`: the repository and the sources to back up.
//!
//! Secrets are never written inline on a command line: a value of the form
//! `env:NAME` reads an environment variable and `file:PATH` reads a file
//! (first line), see [`resolve_secret`]. Relative paths are relative to the
//! config file's directory.

use crate::error::{EngineError, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the repository is and how to open it.
    #[serde(default)]
    pub repository: RepositoryConfig,
    /// What to back up.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Other repositories by name (`[repositories.offsite]`), targets of
    /// `copy`; same keys as `[repository]`.
    #[serde(default)]
    pub repositories: std::collections::BTreeMap<String, RepositoryConfig>,
    /// `[prune]`.
    #[serde(default)]
    pub prune: PruneConfig,
    /// Directory of the config file (set on load).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[prune]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// Repack packs with more than this percent of unreferenced bytes
    /// (default 10; 100 never repacks).
    pub repack_threshold: Option<f64>,
}

/// `[repository]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// A local path or `s3://bucket/prefix`.
    pub url: Option<String>,
    /// File holding the passphrase.
    pub password_file: Option<String>,
    /// `env:NAME` or `file:PATH` holding the passphrase.
    pub password: Option<String>,
    /// An exported raw key file.
    pub key_file: Option<String>,
    /// S3: endpoint URL of an S3-compatible store (default: AWS, or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// S3: region (default: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// S3: path-style requests (default: on with an `endpoint`, off for AWS).
    pub path_style: Option<bool>,
    /// S3: access key id, `env:NAME` or `file:PATH` (default: the AWS
    /// environment variables, profile file or instance metadata).
    pub access_key_id: Option<String>,
    /// S3: secret access key, `env:NAME` or `file:PATH` only.
    pub secret_access_key: Option<String>,
    /// S3: requests in flight at most (default 16).
    pub max_requests: Option<usize>,
    /// Keep a local cache of a remote repository's index files, snapshots
    /// and tree packs (default true; FORMAT.md §20).
    pub cache: Option<bool>,
}

/// Kinds of sources.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Paths on disk.
    Files,
    /// A PostgreSQL database.
    Postgres,
    /// A ClickHouse server, over its HTTP interface.
    Clickhouse,
    /// A program whose standard output is stored as a file.
    Command,
}

/// `verify = { ... }` of a source.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Tables that must exist and be non-empty after a test restore.
    #[serde(default)]
    pub critical_tables: Vec<String>,
    /// SQL queries that must return `true` (or `t`) after a test restore.
    #[serde(default)]
    pub assertions: Vec<String>,
}

/// `[[source]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name, used on the command line.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
    // --- files ---
    /// Paths to back up (files).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Include globs (files).
    #[serde(default)]
    pub include: Vec<String>,
    /// Exclude globs (files).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Capture the process environment (files), redacted.
    #[serde(default)]
    pub env: bool,
    /// Redact secrets in `.env` files and the environment capture (default true).
    #[serde(default = "yes")]
    pub redact: bool,
    /// Extra name fragments that mark a secret.
    #[serde(default)]
    pub redact_names: Vec<String>,
    /// Variable names never redacted.
    #[serde(default)]
    pub keep_names: Vec<String>,
    // --- postgres ---
    /// Connection URL, usually `env:DATABASE_URL`.
    pub url: Option<String>,
    /// PGDATA for physical backups (later).
    pub pgdata: Option<String>,
    /// `supabase` for Supabase schema/role rules.
    pub profile: Option<String>,
    /// Directory with pg_dump/pg_restore of the right version.
    pub bin_dir: Option<String>,
    /// Default: schema only.
    #[serde(default)]
    pub schema_only: bool,
    /// Default: data only.
    #[serde(default)]
    pub data_only: bool,
    /// Default table patterns.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Default schema patterns.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Tables to leave out.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Schemas to leave out.
    #[serde(default)]
    pub exclude_schemas: Vec<String>,
    /// Capture roles and tablespaces with pg_dumpall (default true).
    #[serde(default = "yes")]
    pub globals: bool,
    /// Keep role passwords in the globals (default false).
    #[serde(default)]
    pub role_passwords: bool,
    /// Seconds a logical backup waits for a lock (its catalog queries, and each
    /// table `pg_dump` locks) before failing (default 30).
    pub lock_wait_timeout: Option<u64>,
    /// Supabase profile: keep the auth schema with its data (users,
    /// identities, sessions); unset means yes ([`SourceConfig::keeps_auth_data`]).
    pub keep_auth_data: Option<bool>,
    /// Supabase profile: keep the storage schema with its data (bucket and
    /// object metadata); unset means yes ([`SourceConfig::keeps_storage_data`]).
    pub keep_storage_data: Option<bool>,
    // --- command ---
    /// Program and arguments (command), run without a shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// Name of the file the output is stored as (command; default `<name>.out`).
    pub file: Option<String>,
    /// Seconds the program may run before it is killed (command; default 300).
    pub timeout: Option<u64>,
    /// Variables of lifeboat's environment passed to the program (command).
    #[serde(default)]
    pub pass_env: Vec<String>,
    // --- clickhouse ---
    /// ClickHouse databases (all but the system ones when empty).
    #[serde(default)]
    pub databases: Vec<String>,
    /// ClickHouse user (default `default`); a literal, `env:NAME` or `file:PATH`.
    pub user: Option<String>,
    /// ClickHouse password: `env:NAME` or `file:PATH`, never inline.
    pub password: Option<String>,
    // --- common ---
    /// Cron schedules per job kind, the job timeout and the verify job's
    /// read share (`run-due`, the daemon; [`crate::schedule`]).
    pub schedule: Option<crate::schedule::ScheduleConfig>,
    /// Retention policy applied by `forget` (docs/RETENTION.md).
    pub retention: Option<crate::retention::Policy>,
    /// Run `forget` with this source's retention, then `prune`, after each
    /// successful backup of it (as `backup --forget` does).
    #[serde(default)]
    pub forget_after_backup: bool,
    /// Copy each new snapshot of this source to these `[repositories]`
    /// after a successful backup (as `copy --to NAME` does).
    #[serde(default)]
    pub copy_to: Vec<String>,
    /// Verification settings.
    #[serde(default)]
    pub verify: VerifyConfig,
}

fn yes() -> bool {
    true
}

impl SourceConfig {
    /// Supabase profile: whether the auth data is kept (default true: every
    /// backup is a full recovery point; `keep_auth_data = false` opts out).
    pub fn keeps_auth_data(&self) -> bool {
        self.keep_auth_data.unwrap_or(true)
    }

    /// Supabase profile: whether the storage data is kept (default true;
    /// `keep_storage_data = false` opts out).
    pub fn keeps_storage_data(&self) -> bool {
        self.keep_storage_data.unwrap_or(true)
    }
}

impl Config {
    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            EngineError::Config(format!("cannot read config {}: {e}", path.display()))
        })?;
        let mut cfg: Config = toml::from_str(&text)
            .map_err(|e| EngineError::Config(format!("config {}: {e}", path.display())))?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for s in &self.sources {
            if !seen.insert(&s.name) {
                return Err(EngineError::Config(format!(
                    "source {:?} is defined twice",
                    s.name
                )));
            }
            match s.kind {
                SourceKind::Files if s.paths.is_empty() && !s.env => {
                    return Err(EngineError::Config(format!("source {:?}: a files source needs `paths` (or `env = true`)", s.name)))
                }
                SourceKind::Postgres if s.url.is_none() => {
                    return Err(EngineError::Config(format!(
                        "source {:?}: a postgres source needs `url` (e.g. url = \"env:DATABASE_URL\")",
                        s.name
                    )))
                }
                SourceKind::Command => validate_command(s)?,
                SourceKind::Clickhouse => validate_clickhouse(s)?,
                _ => {}
            }
            crate::schedule::Schedule::of(s)?;
        }
        Ok(())
    }

    /// A source by name.
    pub fn source(&self, name: &str) -> Result<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<_> = self.sources.iter().map(|s| s.name.as_str()).collect();
            EngineError::Config(format!(
                "no source named {name:?} in the config (sources: {})",
                names.join(", ")
            ))
        })
    }

    /// Resolve a path relative to the config file.
    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// A `clickhouse` source needs a `url`; its password comes from `env:` or `file:`.
fn validate_clickhouse(s: &SourceConfig) -> Result<()> {
    if s.url.is_none() {
        return Err(EngineError::Config(format!(
            "source {:?}: a clickhouse source needs `url` (e.g. url = \"http://127.0.0.1:8123\")",
            s.name
        )));
    }
    if let Some(p) = &s.password {
        if !p.starts_with("env:") && !p.starts_with("file:") {
            return Err(EngineError::Config(format!(
                "source {:?}: `password` must be `env:NAME` or `file:PATH`, not the password itself (config files end up in backups and logs)",
                s.name
            )));
        }
    }
    Ok(())
}

/// A `command` source needs a program, and its `file` must be one plain name.
fn validate_command(s: &SourceConfig) -> Result<()> {
    if s.command.first().is_none_or(|p| p.is_empty()) {
        return Err(EngineError::Config(format!(
            "source {:?}: a command source needs `command = [\"program\", \"arg\", ...]` (no shell: write [\"sh\", \"-c\", \"...\"] for one)",
            s.name
        )));
    }
    if let Some(f) = &s.file {
        let plain = !f.is_empty() && f != "." && f != ".." && !f.contains(['/', '\0']);
        if !plain {
            return Err(EngineError::Config(format!(
                "source {:?}: `file = {f:?}` must be a single file name (no `/`)",
                s.name
            )));
        }
    }
    if s.timeout == Some(0) {
        return Err(EngineError::Config(format!(
            "source {:?}: `timeout` is in seconds and must be at least 1",
            s.name
        )));
    }
    Ok(())
}

/// Resolve `env:NAME`, `file:PATH` or a literal value.
pub fn resolve_secret(value: &str) -> Result<String> {
    if let Some(name) = value.strip_prefix("env:") {
        std::env::var(name).map_err(|_| {
            EngineError::Config(format!(
                "environment variable {name} is not set (referenced as env:{name})"
            ))
        })
    } else if let Some(path) = value.strip_prefix("file:") {
        read_secret_file(Path::new(path))
    } else {
        Ok(value.to_string())
    }
}

/// The first line of a secret file, without its line ending.
pub fn read_secret_file(path: &Path) -> Result<String> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        EngineError::Config(format!("cannot read secret file {}: {e}", path.display()))
    })?);
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prune_section_sets_the_repack_threshold() {
        let cfg: Config = toml::from_str("[prune]\nrepack_threshold = 25.5\n").unwrap();
        assert_eq!(cfg.prune.repack_threshold, Some(25.5));
        assert_eq!(Config::default().prune.repack_threshold, None);
        assert!(toml::from_str::<Config>("[prune]\nrepack = 1\n").is_err());
    }

    #[test]
    fn parses_the_design_example() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lifeboat.toml");
        std::fs::write(
            &p,
            r#"
[repository]
url = "/var/backups/lifeboat"
password_file = "/etc/lifeboat/pass"

[[source]]
name = "main"
kind = "postgres"
url = "env:DATABASE_URL"
pgdata = "/var/lib/postgresql/15/main"
profile = "supabase"
schedule = { logical = "0 2 * * *", physical = "0 3 * * 0" }
retention = { daily = 7, weekly = 4, monthly = 12, pitr_days = 7 }
verify = { critical_tables = ["public.projects", "public.users"] }

[[source]]
name = "analytics"
kind = "clickhouse"
url = "http://127.0.0.1:8123"
databases = ["default"]
retention = { daily = 30 }

[[source]]
name = "config"
kind = "files"
paths = ["supabase/config.toml", "supabase/migrations", "package.json"]
"#,
        )
        .unwrap();
        let cfg = Config::load(&p).unwrap();
        assert_eq!(cfg.sources.len(), 3);
        let main = cfg.source("main").unwrap().retention.clone().unwrap();
        assert_eq!((main.daily, main.weekly, main.monthly), (7, 4, 12));
        assert_eq!(main.pitr_days, Some(7));
        assert_eq!(cfg.source("main").unwrap().verify.critical_tables.len(), 2);
        assert_eq!(
            cfg.path("supabase/config.toml"),
            dir.path().join("supabase/config.toml")
        );
        assert!(cfg
            .source("nope")
            .unwrap_err()
            .to_string()
            .contains("main, analytics, config"));
    }

    #[test]
    fn supabase_sources_keep_auth_and_storage_data_unless_told_not_to() {
        let parse = |extra: &str| -> SourceConfig {
            toml::from_str(&format!(
                "name = \"main\"\nkind = \"postgres\"\nurl = \"env:X\"\nprofile = \"supabase\"\n{extra}"
            ))
            .unwrap()
        };
        let default = parse("");
        assert!(default.keeps_auth_data() && default.keeps_storage_data());
        let out = parse("keep_auth_data = false\nkeep_storage_data = false");
        assert!(!out.keeps_auth_data() && !out.keeps_storage_data());
    }

    #[test]
    fn secrets_resolve_from_env_and_files() {
        std::env::set_var("LIFEBOAT_TEST_SECRET_X", "s3cr3t");
        assert_eq!(
            resolve_secret("env:LIFEBOAT_TEST_SECRET_X").unwrap(),
            "s3cr3t"
        );
        assert!(resolve_secret("env:LIFEBOAT_TEST_UNSET_Y")
            .unwrap_err()
            .to_string()
            .contains("not set"));
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "pw\nignored\n").unwrap();
        assert_eq!(
            resolve_secret(&format!("file:{}", f.path().display())).unwrap(),
            "pw"
        );
    }
}
