//! Finding, creating and unlocking the repository from config, flags and environment.

use crate::config::{read_secret_file, resolve_secret, RepositoryConfig};
use crate::error::{EngineError, Result};
use lifeboat_repo::cache::{self, Cache};
use lifeboat_repo::{Credentials, KdfParams, KeyMeta, Repository};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::s3::{S3Options, S3Storage};
use lifeboat_storage::Storage;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where the repository is and how to unlock it, after merging flags,
/// environment and config (flags win, then environment, then config).
#[derive(Debug, Clone, Default)]
pub struct RepoSpec {
    /// Repository location.
    pub url: Option<String>,
    /// Passphrase file.
    pub password_file: Option<PathBuf>,
    /// Raw key file.
    pub key_file: Option<PathBuf>,
    /// Passphrase reference (`env:`/`file:`), from the config.
    pub password_ref: Option<String>,
    /// S3 options from the config's `[repository]` (endpoint, region, ...).
    pub s3: S3Spec,
    /// The master key once a passphrase unlocked it, so later opens in the
    /// same command (`forget --prune`, `backup --forget`) run no KDF again.
    pub unlocked: Unlocked,
    /// No local cache (`--no-cache`, or `cache = false` in the config).
    pub no_cache: bool,
}

/// The raw key (and the location it opened) of the first passphrase unlock;
/// shared by clones of the spec, wiped when the last one is dropped.
#[derive(Clone, Default)]
pub struct Unlocked(Arc<std::sync::Mutex<Option<RawKeyAt>>>);

/// A location and the raw key file bytes that open it.
type RawKeyAt = (String, Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map(|k| k.is_some()).unwrap_or(false);
        write!(f, "Unlocked({})", if held { "yes" } else { "no" })
    }
}

/// The `[repository]` settings of an `s3://` repository.
#[derive(Debug, Clone, Default)]
pub struct S3Spec {
    /// Endpoint URL of an S3-compatible store.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Path-style requests (default: on when an endpoint is given).
    pub path_style: Option<bool>,
    /// Access key id reference (`env:`/`file:` or the id itself).
    pub access_key_id: Option<String>,
    /// Secret access key reference (`env:`/`file:` only).
    pub secret_access_key: Option<String>,
    /// Requests in flight at most.
    pub max_requests: Option<usize>,
}

impl RepoSpec {
    /// Fill unset fields from the config's `[repository]` section.
    pub fn with_config(mut self, cfg: &RepositoryConfig, base: &crate::config::Config) -> Self {
        if self.url.is_none() {
            self.url = cfg.url.as_ref().map(|u| {
                if u.contains("://") {
                    u.clone()
                } else {
                    base.path(u).display().to_string()
                }
            });
        }
        // A secret from flags or the environment (LIFEBOAT_PASSWORD) wins over the config.
        if self.password_file.is_none() && self.key_file.is_none() && self.password_ref.is_none() {
            self.password_file = cfg.password_file.as_deref().map(|p| base.path(p));
            self.key_file = cfg.key_file.as_deref().map(|p| base.path(p));
            self.password_ref.clone_from(&cfg.password);
        }
        self.s3 = S3Spec {
            endpoint: cfg.endpoint.clone(),
            region: cfg.region.clone(),
            path_style: cfg.path_style,
            access_key_id: cfg.access_key_id.clone(),
            secret_access_key: cfg.secret_access_key.clone(),
            max_requests: cfg.max_requests,
        };
        if cfg.cache == Some(false) {
            self.no_cache = true;
        }
        self
    }

    fn s3_storage(&self, url: &str) -> Result<Arc<dyn Storage>> {
        let mut o = S3Options::from_url(url).map_err(|e| EngineError::Config(e.to_string()))?;
        let spec = &self.s3;
        o.endpoint = spec
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        o.region.clone_from(&spec.region);
        o.path_style = spec.path_style.unwrap_or(o.endpoint.is_some());
        o.max_requests = spec.max_requests.unwrap_or(0);
        match (&spec.access_key_id, &spec.secret_access_key) {
            (None, None) => {}
            (Some(id), Some(secret)) => {
                if !(secret.starts_with("env:") || secret.starts_with("file:")) {
                    return Err(EngineError::Config(
                        "[repository] secret_access_key must be a reference, env:NAME or file:PATH, never the secret in clear".into(),
                    ));
                }
                o.access_key_id = Some(resolve_secret(id)?);
                o.secret_access_key = Some(resolve_secret(secret)?);
            }
            _ => {
                return Err(EngineError::Config(
                    "[repository] needs both access_key_id and secret_access_key, or neither (then the AWS environment, profile or instance metadata is used)".into(),
                ))
            }
        }
        Ok(Arc::new(
            S3Storage::new(o).map_err(|e| EngineError::Config(e.to_string()))?,
        ))
    }

    /// The storage backend for the location.
    pub fn storage(&self) -> Result<Arc<dyn Storage>> {
        let url = self.url.as_deref().ok_or_else(|| {
            EngineError::Config("no repository given: use --repo, LIFEBOAT_REPOSITORY or [repository] url in the config".into())
        })?;
        if url.starts_with("s3://") {
            return self.s3_storage(url);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            if scheme != "file" {
                return Err(EngineError::Config(format!(
                    "repository URL scheme {scheme}:// is not supported; use a local path or s3://bucket/prefix"
                )));
            }
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        Ok(Arc::new(LocalStorage::new(path)))
    }

    fn credentials(&self) -> Result<Credentials> {
        if let Some(k) = &self.key_file {
            let bytes = std::fs::read(k).map_err(|e| {
                EngineError::Config(format!("cannot read key file {}: {e}", k.display()))
            })?;
            return Ok(Credentials::RawKey(Zeroizing::new(bytes)));
        }
        let pw = self.password()?;
        Ok(Credentials::Password(Zeroizing::new(
            pw.as_bytes().to_vec(),
        )))
    }

    /// The passphrase from the password file or reference (wiped when dropped).
    pub fn password(&self) -> Result<Zeroizing<String>> {
        let pw = Zeroizing::new(if let Some(f) = &self.password_file {
            read_secret_file(f)?
        } else if let Some(r) = &self.password_ref {
            resolve_secret(r)?
        } else {
            return Err(EngineError::Config(
                "no password given: use --password-file, LIFEBOAT_PASSWORD_FILE, LIFEBOAT_KEY_FILE, or password_file in the config".into(),
            ));
        });
        if pw.is_empty() {
            return Err(EngineError::Config(
                "the password is empty; refusing to use an empty password".into(),
            ));
        }
        Ok(pw)
    }

    /// Open and unlock, with the index loaded.
    pub async fn open(&self) -> Result<Arc<Repository>> {
        let repo = self.open_without_index().await?;
        repo.load_index().await?;
        Ok(repo)
    }

    /// Open and unlock without loading the index (key management, listing).
    /// After a passphrase unlocked it once, the master key is reused (one
    /// KDF per command).
    pub async fn open_without_index(&self) -> Result<Arc<Repository>> {
        let storage = self.storage()?;
        let location = storage.location();
        let cached = self
            .unlocked
            .0
            .lock()
            .expect("unlocked key")
            .as_ref()
            .filter(|(at, _)| *at == location)
            .map(|(_, raw)| raw.clone());
        if let Some(raw) = cached {
            let repo = Repository::open(storage, Credentials::RawKey(raw)).await?;
            return Ok(self.with_cache(repo));
        }
        let creds = self.credentials()?;
        let by_password = matches!(creds, Credentials::Password(_));
        let repo = Repository::open(storage, creds).await?;
        if by_password {
            *self.unlocked.0.lock().expect("unlocked key") =
                Some((location, repo.export_raw_key()));
        }
        Ok(self.with_cache(repo))
    }

    /// Attach the local cache of a remote repository (unless disabled).
    fn with_cache(&self, repo: Arc<Repository>) -> Arc<Repository> {
        if let Some(cache) = self.cache(&repo.config().id) {
            repo.use_cache(cache);
        }
        repo
    }

    /// The local cache of a remote (S3) repository, unless disabled: under
    /// `$XDG_CACHE_HOME/lifeboat/<repository id>` (else `~/.cache/...`).
    /// A cache that cannot be created is simply not used.
    fn cache(&self, repo_id: &str) -> Option<Cache> {
        let remote = self.url.as_deref().is_some_and(|u| u.starts_with("s3://"));
        if !remote || self.no_cache {
            return None;
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Cache::open(&base.join("lifeboat"), repo_id, cache::DEFAULT_MAX_BYTES).ok()
    }

    /// Create a repository.
    pub async fn init(&self) -> Result<Arc<Repository>> {
        let storage = self.storage()?;
        let pw = self.password()?;
        Ok(Repository::init(
            storage,
            pw.as_bytes(),
            KdfParams::default(),
            key_meta("initial key"),
        )
        .await?)
    }
}

/// Who/where/when for a new key file.
pub fn key_meta(label: &str) -> KeyMeta {
    KeyMeta {
        created: now_rfc3339(),
        host: hostname(),
        user: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "root".into()),
        label: label.into(),
    }
}

/// The current time, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_open_in_the_same_command_runs_no_kdf() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pass");
        std::fs::write(&pw, "correct horse\n").unwrap();
        let spec = RepoSpec {
            url: Some(dir.path().join("repo").display().to_string()),
            password_file: Some(pw.clone()),
            ..RepoSpec::default()
        };
        spec.init().await.unwrap();
        spec.open_without_index().await.unwrap();
        // Without the passphrase only the key unlocked above can open it.
        std::fs::remove_file(&pw).unwrap();
        let again = spec.clone().open().await.unwrap();
        assert_eq!(again.key_in_use(), None, "opened by the cached raw key");
        // Another location does not get this repository's key.
        let other = RepoSpec {
            url: Some(dir.path().join("other").display().to_string()),
            ..spec.clone()
        };
        assert!(other.open_without_index().await.is_err());
    }
}
