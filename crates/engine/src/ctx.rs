//! [`Ctx`]: what every use case needs, the config (if any) and where the
//! repository is and how to unlock it. The CLI builds one from its flags; a
//! daemon builds one from its config, with no command line in sight.

use crate::config::Config;
use crate::error::Result;
use crate::open::RepoSpec;
use std::path::PathBuf;

/// How the caller names the repository and its secret (flags or their
/// environment variables); unset fields come from the config.
#[derive(Debug, Clone, Default)]
pub struct RepoOptions {
    /// Config file (`lifeboat.toml`).
    pub config: Option<PathBuf>,
    /// Repository location.
    pub repo: Option<String>,
    /// Passphrase file.
    pub password_file: Option<PathBuf>,
    /// Raw key file.
    pub key_file: Option<PathBuf>,
    /// Do not use the local cache (`--no-cache`).
    pub no_cache: bool,
}

/// The context of a use case.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The loaded config, if any.
    pub config: Option<Config>,
    /// The repository and its secret, merged from options, environment and config.
    pub repo: RepoSpec,
}

impl Ctx {
    /// Load the config and merge: options win, then `LIFEBOAT_PASSWORD`
    /// (read from this process's environment, never from argv), then the config.
    pub fn new(opts: RepoOptions) -> Result<Self> {
        let config = opts.config.as_deref().map(Config::load).transpose()?;
        let mut repo = RepoSpec {
            url: opts.repo,
            password_file: opts.password_file,
            key_file: opts.key_file,
            password_ref: None,
            no_cache: opts.no_cache,
            ..RepoSpec::default()
        };
        if repo.password_file.is_none()
            && repo.key_file.is_none()
            && std::env::var_os("LIFEBOAT_PASSWORD").is_some()
        {
            repo.password_ref = Some("env:LIFEBOAT_PASSWORD".into());
        }
        if let Some(cfg) = &config {
            repo = repo.with_config(&cfg.repository, cfg);
        }
        Ok(Ctx { config, repo })
    }

    /// The configured `bin_dir` of a source, if any.
    pub fn source_bin_dir(&self, source: &str) -> Option<PathBuf> {
        let cfg = self.config.as_ref()?;
        let src = cfg.sources.iter().find(|s| s.name == source)?;
        src.bin_dir.as_deref().map(|d| cfg.path(d))
    }
}
