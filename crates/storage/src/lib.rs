//! Bytes at keys: the storage layer under the lifeboat repository.
//!
//! [`Storage`] is the one trait every backend implements (local filesystem
//! now, S3 later). It knows nothing about repositories: keys are plain
//! `/`-separated relative paths and values are opaque bytes.
//!
//! - [`local::LocalStorage`]: a directory; writes are atomic and durable
//!   (temp file, fsync, rename, fsync of the directory), files 0600, dirs 0700.
//! - [`conformance`]: the test suite every backend must pass.
//!
//! Errors are a small public enum, [`StorageError`], that callers can match
//! on (`NotFound`, `NoSpace`, ...), each carrying the key and location.

pub mod conformance;
pub mod local;

use async_trait::async_trait;
use std::fmt;

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

/// One object as listed: its key and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key, relative to the storage root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A place that stores bytes at keys.
///
/// Every `put` is atomic (readers see the old object, no object, or the whole
/// new one) and durable when it returns. Keys are validated with
/// [`validate_key`].
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Human-readable location, used in messages (`/var/backups/x`, `s3://b/p`).
    fn location(&self) -> String;
    /// Store `data` at `key`, replacing any existing object, atomically and durably.
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<()>;
    /// Read a whole object.
    async fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Read `len` bytes at `offset`; a short object is [`StorageError::ShortRead`].
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Size of an object, or `None` when it does not exist.
    async fn stat(&self, key: &str) -> Result<Option<u64>>;
    /// All objects whose key starts with `prefix` (a directory such as `index/`), recursively.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// Remove an object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
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
