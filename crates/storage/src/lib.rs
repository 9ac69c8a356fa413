//! Bytes at keys: the storage layer under the lifeboat repository.
//!
//! [`Storage`] is the one trait every backend implements (local filesystem,
//! S3). It knows nothing about repositories: keys are plain
//! `/`-separated relative paths and values are opaque bytes.
//!
//! - [`local::LocalStorage`]: a directory; writes are atomic and durable
//!   (randomly named temp file, fsync, rename or link, fsync of the
//!   directory), files 0600, dirs 0700.
//! - [`s3::S3Storage`] (feature `s3`, on by default): a bucket and prefix
//!   on AWS S3 or an S3-compatible store.
//! - [`conformance`]: the test suite every backend must pass.
//!
//! Errors are a small public enum, [`StorageError`], that callers can match
//! on (`NotFound`, `NoSpace`, ...), each carrying the key and location.

#[cfg(feature = "s3")]
mod aws_profile;
pub mod conformance;
pub mod local;
#[cfg(feature = "s3")]
pub mod moto;
#[cfg(feature = "s3")]
pub mod s3;

use async_trait::async_trait;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Result type of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;

/// Errors a storage backend reports; callers match on the variant.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key does not exist.
    #[error("{key}: not found in {location}")]
    NotFound {
        /// Key that was asked for.
        key: String,
        /// Where the storage lives.
        location: String,
    },
    /// The device or bucket has no room left.
    #[error("{location}: no space left while writing {key}; free space or move the repository, nothing was overwritten")]
    NoSpace {
        /// Key being written.
        key: String,
        /// Where the storage lives.
        location: String,
    },
    /// The operating system refused access.
    #[error("{location}: permission denied for {key}")]
    PermissionDenied {
        /// Key being accessed.
        key: String,
        /// Where the storage lives.
        location: String,
    },
    /// A key that is not a clean relative path.
    #[error("invalid storage key {0:?}: keys are relative paths of [A-Za-z0-9._-] segments")]
    InvalidKey(String),
    /// [`Storage::put_if_absent`] lost: an object already exists at the key.
    #[error("{key}: already exists in {location}")]
    AlreadyExists {
        /// Key that was written.
        key: String,
        /// Where the storage lives.
        location: String,
    },
    /// A requested byte range lies outside the object.
    #[error("{key}: range {offset}+{len} is beyond the object's end ({size} bytes): the object is truncated")]
    ShortRead {
        /// Key read.
        key: String,
        /// Start of the range.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Actual object size.
        size: u64,
    },
    /// The storage's location or options are wrong (bad URL, bad option).
    #[error("{0}")]
    Config(String),
    /// The remote store refused every request for a known cause (missing
    /// bucket, refused credentials); the message names the fix.
    #[error("{location}: {message}")]
    Remote {
        /// Where the storage lives.
        location: String,
        /// What is wrong and how to fix it, one line.
        message: String,
    },
    /// Any other I/O failure, with the operation and key.
    #[error("{op} {key} in {location}: {source}")]
    Io {
        /// What was being done (read, write, list, ...).
        op: &'static str,
        /// Key concerned.
        key: String,
        /// Where the storage lives.
        location: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Age after which a temp file left by an interrupted write is removed by
/// [`Storage::remove_stale_temp`] (24 hours). A temp file's mtime moves with
/// every write to it and a `put` writes its whole object at once, then
/// fsyncs and renames it, so a temp file untouched for a day belongs to a
/// writer that died; this age is far above any single write's duration.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// One object as listed or stat'ed: its key, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key, relative to the storage root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written, by the storage's clock (file
    /// mtime locally, `Last-Modified` on S3).
    pub last_modified: SystemTime,
}

/// One page of a listing, see [`Storage::list_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects in ascending key order (byte order).
    pub objects: Vec<ObjectMeta>,
    /// Pass as `start_after` to get the next page; `None` when this was the last.
    pub next: Option<String>,
}

/// A place that stores bytes at keys.
///
/// The contract, which every backend (local directory, S3) meets and the
/// [`conformance`] suite checks; it assumes no POSIX semantics such as rename:
///
/// - **Keys** are validated with [`validate_key`].
/// - **`put` is an atomic replace-or-create per key**: a reader of that key
///   sees the previous object, no object, or the whole new one, never a
///   mixture or a prefix; the object is durable when `put` returns. There is
///   no atomicity across keys.
/// - **`put_if_absent`** creates the object only if the key is free: of
///   several concurrent writers of one key (threads, processes, machines)
///   exactly one succeeds and the object is exactly its bytes; the others
///   get [`StorageError::AlreadyExists`] and change nothing. (A local
///   directory on a filesystem without hard links may show an empty object
///   at the key while the winner writes, see [`local`].)
/// - **Prefixes are plain string prefixes** of the key, not directories:
///   `list("data/a")` lists `data/a1/..` and `data/ab`, and `list("")`
///   lists everything. Listings are in ascending byte order of the key.
/// - **Listing is consistent per object**: a listed object was complete
///   when listed (a write in progress is never listed), but a listing
///   racing writers may or may not include objects written during it.
/// - **`last_modified`** is the storage's own clock, for age decisions
///   (stale locks, leftovers) that must not trust a writer's clock.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Human-readable location, used in messages (`/var/backups/x`, `s3://b/p`).
    fn location(&self) -> String;
    /// Store `data` at `key`, replacing any existing object, atomically and durably.
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<()>;
    /// Store `data` at `key` only if no object exists there, atomically and
    /// durably; [`StorageError::AlreadyExists`] when one does (or another
    /// writer won the race).
    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<()>;
    /// Read a whole object.
    async fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Read `len` bytes at `offset`; a short object is [`StorageError::ShortRead`].
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Size and modification time of an object, or `None` when it does not exist.
    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>>;
    /// At most `limit` (at least 1) objects whose key starts with `prefix`
    /// and sorts after `start_after`, in key order.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage>;
    /// All objects whose key starts with `prefix` (a plain string prefix), in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_page(prefix, cursor.as_deref(), 1000).await?;
            out.extend(page.objects);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }
    /// Remove an object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Remove leftovers of interrupted writes (a local backend's temp files)
    /// last written more than `older_than` ago; returns how many. Backends
    /// without such leftovers do nothing.
    async fn remove_stale_temp(&self, older_than: Duration) -> Result<usize> {
        let _ = older_than;
        Ok(0)
    }
}

/// Check that a key is a clean relative path: non-empty `/`-separated
/// segments of ASCII letters, digits, `.`, `_` and `-`, none of them `.` or `..`.
pub fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_key;

    #[test]
    fn keys_must_be_clean_relative_paths() {
        for good in ["config", "data/ab/abcdef", "keys/k-1.json"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in ["", "/abs", "a//b", "../x", "a/./b", "a b", "a/", "ü"] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }
}
