//! The S3 backend (AWS S3 and S3-compatible stores: MinIO, R2, moto, ...).
//!
//! Built on the `object_store` crate (SigV4, retries with backoff and
//! jitter on 5xx / 429 / `SlowDown` / timeouts, connection pooling); TLS is
//! rustls on the ring provider. How the [`Storage`] contract maps onto S3:
//!
//! - A key `k` is the object `<prefix>/k` in the bucket.
//! - `put` is one `PutObject` (atomic per object on S3); objects of
//!   [`MULTIPART_THRESHOLD`] bytes or more go up as a multipart upload in
//!   [`PART_SIZE`] parts, aborted (parts deleted) when any part fails.
//!   `put` returns only after S3 acknowledged the whole object.
//! - `put_if_absent` is `PutObject` with `If-None-Match: *`: S3 answers 412
//!   (or 409 on a race in flight) to every writer but one; both are
//!   [`StorageError::AlreadyExists`].
//! - `last_modified` is S3's `Last-Modified` (the server's clock).
//! - `list_page` is `ListObjectsV2` of the prefix's "directory" with
//!   `start-after`, filtered to the plain string prefix; S3 lists in byte
//!   order, continuation tokens page past 1,000 keys. There is no rename.
//! - At most `max_requests` requests are in flight per storage.

use crate::{validate_key, ListPage, ObjectMeta, Result, Storage, StorageError};
use async_trait::async_trait;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::limit::LimitStore;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
    WriteMultipart,
};
use std::fmt;
use std::time::Duration;

/// Objects of this size or more are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 64 << 20;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 16 << 20;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Where an S3 storage lives and how to reach it.
#[derive(Clone, Default)]
pub struct S3Options {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`), may be empty.
    pub prefix: String,
    /// Endpoint URL for S3-compatible stores (`http://127.0.0.1:9000`);
    /// `None`: AWS (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region; `None`: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), needed by most
    /// S3-compatible stores; virtual-hosted style otherwise.
    pub path_style: bool,
    /// Explicit access key id; `None`: the AWS environment variables,
    /// profile file, or instance metadata.
    pub access_key_id: Option<String>,
    /// Explicit secret access key (with `access_key_id`).
    pub secret_access_key: Option<String>,
    /// Explicit session token (with `access_key_id`).
    pub session_token: Option<String>,
    /// Requests in flight at most (0: the default, 16).
    pub max_requests: usize,
    /// Retries of a failing request (`None`: 10).
    pub max_retries: Option<usize>,
    /// Timeout of one request (`None`: 120 s).
    pub request_timeout: Option<Duration>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field(
                "credentials",
                &self.access_key_id.as_ref().map(|_| "<explicit>"),
            )
            .finish()
    }
}

impl S3Options {
    /// Parse `s3://bucket/prefix` (the prefix may be empty).
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad_url(url, "it must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad_url(url, "the bucket name is missing"));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            validate_key(&prefix)
                .map_err(|_| bad_url(url, "the prefix must be [A-Za-z0-9._-] segments"))?;
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
            ..Self::default()
        })
    }
}

fn bad_url(url: &str, why: &str) -> StorageError {
    StorageError::Config(format!(
        "bad S3 repository URL {url:?}: {why} (use s3://bucket/prefix)"
    ))
}

/// A storage in an S3 bucket under a prefix.
pub struct S3Storage {
    store: LimitStore<AmazonS3>,
    opts: S3Options,
    /// The bucket answered a listing: a 404 means the object is absent.
    bucket_seen: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("opts", &self.opts)
            .finish()
    }
}

impl S3Storage {
    /// Connect (lazily: no request is made until the first operation).
    pub fn new(opts: S3Options) -> Result<Self> {
        let store = builder(&opts).build().map_err(|e| {
            StorageError::Config(format!("S3 repository s3://{}: {e}", opts.bucket))
        })?;
        let limit = if opts.max_requests == 0 {
            16
        } else {
            opts.max_requests
        };
        Ok(Self {
            store: LimitStore::new(store, limit),
            opts,
            bucket_seen: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn path(&self, key: &str) -> Result<Path> {
        validate_key(key)?;
        Ok(Path::from(self.full(key)))
    }

    fn full(&self, key: &str) -> String {
        if self.opts.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.opts.prefix)
        }
    }

    fn strip<'a>(&self, full: &'a str) -> &'a str {
        if self.opts.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.opts.prefix)
                .and_then(|s| s.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    fn err(&self, op: &'static str, key: &str, e: object_store::Error) -> StorageError {
        map_error(&self.location(), op, key, e)
    }

    /// Whether a 404 for an object means the object is absent, not the
    /// bucket: a `HEAD` answers 404 without a body for both, so the bucket
    /// is checked once per storage by a listing (which names
    /// `NoSuchBucket`). `Err` is that clear error.
    async fn ensure_bucket(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.bucket_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dir = (!self.opts.prefix.is_empty()).then(|| Path::from(self.opts.prefix.as_str()));
        let mut stream = self.store.list(dir.as_ref());
        if let Some(Err(e)) = stream.next().await {
            return Err(self.err("list", "", e));
        }
        self.bucket_seen.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The error for an object that S3 did not find: `NotFound`, unless the
    /// bucket itself is missing (or unreachable).
    async fn not_found(&self, op: &'static str, key: &str, e: object_store::Error) -> StorageError {
        match self.ensure_bucket().await {
            Ok(()) => self.err(op, key, e),
            Err(bucket) => bucket,
        }
    }

    async fn put_multipart(&self, key: &str, path: &Path, data: Vec<u8>) -> Result<()> {
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| self.err("start upload of", key, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let data = bytes::Bytes::from(data);
        let mut at = 0;
        while at < data.len() {
            if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = w.abort().await;
                return Err(self.err("upload", key, e));
            }
            let end = (at + PART_SIZE).min(data.len());
            w.put(data.slice(at..end));
            at = end;
        }
        // finish() aborts the upload itself when a part or the completion fails.
        w.finish()
            .await
            .map(|_| ())
            .map_err(|e| self.err("upload", key, e))
    }

    /// The listing "directory" and a `start-after` bound that together
    /// cover every key with the plain string prefix `prefix`.
    fn list_bounds(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> (Option<Path>, Option<String>) {
        let after = start_after.map(|s| self.full(s));
        if prefix.is_empty() {
            let dir = (!self.opts.prefix.is_empty()).then(|| Path::from(self.opts.prefix.as_str()));
            return (dir, after);
        }
        let full = self.full(prefix);
        let (dir, below) = match full.rfind('/') {
            Some(i) if i + 1 == full.len() => (full[..i].to_string(), None),
            Some(i) => (full[..i].to_string(), Some(just_below(&full))),
            None if full.is_empty() => (String::new(), None),
            None => (String::new(), Some(just_below(&full))),
        };
        let offset = match (below, after) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let dir = (!dir.is_empty()).then(|| Path::from(dir));
        (dir, offset)
    }
}

/// A string that sorts just below `s` and above every string below `s`
/// made of key characters: `s` with its last byte decremented.
fn just_below(s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    let last = b.last_mut().expect("non-empty");
    *last -= 1;
    String::from_utf8_lossy(&b).into_owned()
}

fn builder(opts: &S3Options) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(&opts.bucket);
    let region = opts
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    b = b.with_region(region);
    let mut client = ClientOptions::new()
        .with_timeout(opts.request_timeout.unwrap_or(Duration::from_secs(120)))
        .with_connect_timeout(Duration::from_secs(10));
    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    if let Some(ep) = &endpoint {
        b = b.with_endpoint(ep);
        if ep.starts_with("http://") {
            client = client.with_allow_http(true);
        }
    }
    b = b.with_virtual_hosted_style_request(!opts.path_style);
    if let Some(id) = &opts.access_key_id {
        b = b
            .with_access_key_id(id)
            .with_secret_access_key(opts.secret_access_key.clone().unwrap_or_default());
        if let Some(t) = &opts.session_token {
            b = b.with_token(t);
        }
    } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        if let Some(p) = crate::aws_profile::from_profile_file() {
            b = b
                .with_access_key_id(p.access_key_id)
                .with_secret_access_key(p.secret_access_key);
            if let Some(t) = p.session_token {
                b = b.with_token(t);
            }
        }
    }
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            base: 2.0,
        },
        max_retries: opts.max_retries.unwrap_or(10),
        retry_timeout: Duration::from_secs(180),
    };
    b.with_client_options(client).with_retry(retry)
}

/// Map an object_store error onto the storage error the caller matches on,
/// with a one-line message naming the fix where the cause is known.
fn map_error(location: &str, op: &'static str, key: &str, e: object_store::Error) -> StorageError {
    use object_store::Error as E;
    let text = one_line(&e);
    let key_s = key.to_string();
    let loc = location.to_string();
    if text.contains("NoSuchBucket") {
        return StorageError::Remote {
            location: loc,
            message: "the bucket does not exist: create it, or fix the bucket name / endpoint in the repository URL".into(),
        };
    }
    if text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || matches!(e, E::Unauthenticated { .. })
    {
        return StorageError::Remote {
            location: loc,
            message: "the S3 credentials were refused (InvalidAccessKeyId / SignatureDoesNotMatch): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the profile, or access_key_id / secret_access_key in [repository]".into(),
        };
    }
    if let Some(why) = unreachable(&text) {
        return StorageError::Remote {
            location: loc,
            message: format!(
                "cannot reach the S3 endpoint to {op} {key_s} ({why}, still failing after retries): check that the server is up and that the endpoint (endpoint in [repository] or AWS_ENDPOINT_URL) is right, then run the command again; nothing was recorded as written that S3 did not acknowledge"
            ),
        };
    }
    match e {
        E::NotFound { .. } => StorageError::NotFound {
            key: key_s,
            location: loc,
        },
        E::AlreadyExists { .. } | E::Precondition { .. } => StorageError::AlreadyExists {
            key: key_s,
            location: loc,
        },
        // A 403 (a HEAD carries no body to say why): the credentials, or
        // what they are allowed on this bucket.
        E::PermissionDenied { .. } => StorageError::Remote {
            location: loc,
            message: format!(
                "S3 refused to {op} {key_s} (403 Forbidden): the credentials are wrong or not allowed on this bucket; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the profile, or access_key_id / secret_access_key in [repository], and the bucket policy"
            ),
        },
        other => StorageError::Io {
            op,
            key: key_s,
            location: loc,
            source: std::io::Error::other(one_line(&other)),
        },
    }
}

/// Why the endpoint could not be reached at all, when that is the error.
fn unreachable(text: &str) -> Option<&'static str> {
    if text.contains("Connection refused") {
        Some("connection refused")
    } else if text.contains("dns error") {
        Some("the host name does not resolve")
    } else if text.contains("(Connect)") {
        Some("cannot connect")
    } else {
        None
    }
}

/// An error and its sources on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}

fn meta(full_key: &str, m: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: full_key.to_string(),
        size: m.size,
        last_modified: m.last_modified.into(),
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn location(&self) -> String {
        if self.opts.prefix.is_empty() {
            format!("s3://{}", self.opts.bucket)
        } else {
            format!("s3://{}/{}", self.opts.bucket, self.opts.prefix)
        }
    }

    async fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        let path = self.path(key)?;
        if data.len() >= MULTIPART_THRESHOLD {
            return self.put_multipart(key, &path, data).await;
        }
        self.store
            .put(&path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| self.err("write", key, e))
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<()> {
        let path = self.path(key)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(data), opts)
            .await
            .map(|_| ())
            .map_err(|e| self.err("create", key, e))
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let r = match self.store.get(&path).await {
            Ok(r) => r,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(self.not_found("read", key, e).await)
            }
            Err(e) => return Err(self.err("read", key, e)),
        };
        let b = r.bytes().await.map_err(|e| self.err("read", key, e))?;
        Ok(b.to_vec())
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let end = offset.saturating_add(len);
        if len > 0 {
            // One request when the range is there (the common case); only a
            // failed or short read asks for the size, to say why.
            if let Ok(b) = self.store.get_range(&path, offset..end).await {
                if b.len() as u64 == len {
                    return Ok(b.to_vec());
                }
            }
        }
        let size = match self.stat(key).await? {
            Some(m) => m.size,
            None => {
                return Err(StorageError::NotFound {
                    key: key.into(),
                    location: self.location(),
                })
            }
        };
        if end > size {
            return Err(StorageError::ShortRead {
                key: key.into(),
                offset,
                len,
                size,
            });
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let b = self
            .store
            .get_range(&path, offset..end)
            .await
            .map_err(|e| self.err("read", key, e))?;
        if b.len() as u64 != len {
            return Err(StorageError::ShortRead {
                key: key.into(),
                offset,
                len,
                size: offset + b.len() as u64,
            });
        }
        Ok(b.to_vec())
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(m) => Ok(Some(meta(key, &m))),
            Err(object_store::Error::NotFound { source, .. })
                if !source.to_string().contains("NoSuchBucket") =>
            {
                self.ensure_bucket().await?;
                Ok(None)
            }
            Err(e) => Err(self.err("stat", key, e)),
        }
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let limit = limit.max(1);
        let mut objects = self
            .list_inner(prefix, start_after, Some(limit + 1))
            .await?;
        let next = if objects.len() > limit {
            objects.truncate(limit);
            objects.last().map(|m| m.key.clone())
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.list_inner(prefix, None, None).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { source, .. })
                if !source.to_string().contains("NoSuchBucket") =>
            {
                Ok(())
            }
            Err(e) => Err(self.err("delete", key, e)),
        }
    }
}

impl S3Storage {
    /// Objects with the plain string prefix after `start_after`, at most `max`.
    async fn list_inner(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: Option<usize>,
    ) -> Result<Vec<ObjectMeta>> {
        let (dir, offset) = self.list_bounds(prefix, start_after);
        let mut stream = match &offset {
            Some(o) => self
                .store
                .list_with_offset(dir.as_ref(), &Path::from(o.as_str())),
            None => self.store.list(dir.as_ref()),
        };
        let full_prefix = if prefix.is_empty() {
            String::new()
        } else {
            self.full(prefix)
        };
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let m = item.map_err(|e| self.err("list", prefix, e))?;
            let full = m.location.as_ref();
            if !full.starts_with(&full_prefix) {
                if full > full_prefix.as_str() {
                    break; // sorted: nothing further has the prefix
                }
                continue;
            }
            out.push(meta(self.strip(full), &m));
            if max.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
        Ok(out)
    }
}
