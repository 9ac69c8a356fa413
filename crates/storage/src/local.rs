//! The local filesystem backend.
//!
//! Objects are files under a root directory. A write goes to a uniquely named
//! temp file in the target directory, is fsynced, renamed into place, and the
//! directory is fsynced, so a crash leaves either the old state or the new
//! object, never a torn one. Files are created 0600 and directories 0700.
//! Temp files start with `.tmp-` and are ignored by `list`.

use crate::{validate_key, ObjectMeta, Result, Storage, StorageError};
use async_trait::async_trait;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A storage rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalStorage {
    /// Use `root` as the storage directory (it need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn io_err(&self, op: &'static str, key: &str, e: io::Error) -> StorageError {
        let location = self.location();
        let key = key.to_string();
        match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound { key, location },
            io::ErrorKind::PermissionDenied => StorageError::PermissionDenied { key, location },
            io::ErrorKind::StorageFull => StorageError::NoSpace { key, location },
            _ if e.raw_os_error() == Some(libc::ENOSPC)
                || e.raw_os_error() == Some(libc::EDQUOT) =>
            {
                StorageError::NoSpace { key, location }
            }
            _ => StorageError::Io {
                op,
                key,
                location,
                source: e,
            },
        }
    }

    /// Create `dir` and missing parents with mode 0700, fsyncing each parent
    /// whose entry list changed, so a new directory survives a crash.
    fn create_dirs(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.create_dirs(parent)?;
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {
                if let Some(parent) = dir.parent() {
                    sync_dir(parent)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn put_blocking(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .expect("keys are relative, so a parent exists");
        self.create_dirs(dir)
            .map_err(|e| self.io_err("create directory for", key, e))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(self.io_err("write", key, e));
        }
        Ok(())
    }

    fn get_range_blocking(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let mut f = File::open(&path).map_err(|e| self.io_err("read", key, e))?;
        let size = f.metadata().map_err(|e| self.io_err("stat", key, e))?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(StorageError::ShortRead {
                key: key.to_string(),
                offset,
                len,
                size,
            });
        }
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| self.io_err("seek", key, e))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf)
            .map_err(|e| self.io_err("read", key, e))?;
        Ok(buf)
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let start = prefix.trim_end_matches('/');
        let dir = if start.is_empty() {
            self.root.clone()
        } else {
            self.path(start)?
        };
        self.walk(&dir, &mut out)
            .map_err(|e| self.io_err("list", prefix, e))?;
        out.retain(|m| m.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn walk(&self, dir: &Path, out: &mut Vec<ObjectMeta>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let ft = entry.file_type()?;
            if ft.is_dir() {
                self.walk(&entry.path(), out)?;
            } else if ft.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(&self.root)
                    .expect("walk stays under root")
                    .to_string_lossy()
                    .into_owned();
                out.push(ObjectMeta {
                    key: rel,
                    size: entry.metadata()?.len(),
                });
            }
        }
        Ok(())
    }
}

/// fsync a directory so renames and new entries in it are durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Run blocking file I/O off the async runtime. If the runtime is shutting
/// down (the task is cancelled), that is an I/O error, not a panic.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StorageError::Io {
            op: "run",
            key: String::new(),
            location: "local storage".into(),
            source: io::Error::other(format!("storage task cancelled: {e}")),
        }),
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.put_blocking(&key, &data)).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || fs::read(&path).map_err(|e| this.io_err("read", &key, e))).await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.get_range_blocking(&key, offset, len)).await
    }

    async fn stat(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(this.io_err("stat", &key, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        blocking(move || this.list_blocking(&prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().expect("has parent"))
                .map_err(|e| this.io_err("sync", &key, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(this.io_err("delete", &key, e)),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn local_storage_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path().join("repo"));
        crate::conformance::run_all(&s).await;
    }

    #[tokio::test]
    async fn files_are_private_and_no_temp_files_remain() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path().join("repo"));
        s.put("data/ab/obj", b"x".to_vec()).await.unwrap();
        let f = dir.path().join("repo/data/ab/obj");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let d = dir.path().join("repo/data/ab");
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("obj")]);
    }
}
