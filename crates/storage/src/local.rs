//! The local filesystem backend.
//!
//! Objects are files under a root directory. A write goes to a temp file in
//! the target directory, is fsynced, renamed into place (`put`) or
//! hard-linked to the final name (`put_if_absent`: `link()` fails with
//! `EEXIST` when the name is taken, so exactly one writer wins), and the
//! directory is fsynced, so a crash leaves either the old state or the new
//! object, never a torn one. Files are created 0600 and directories 0700.
//! On a filesystem without hard links (FAT/exFAT, some FUSE/SMB mounts),
//! `put_if_absent` claims the name with an empty `O_EXCL` file and renames
//! the temp file over it: still exactly one winner, but a reader (or a
//! writer killed in between) may see an empty object at the key.
//!
//! Temp files are named `.tmp-<32 random hex>` (random, not pid-based, so
//! two containers that both run lifeboat as PID 1 on one repository never
//! share a name), are created with `O_EXCL`, and a writer only ever removes
//! the temp file it created itself. `list` ignores them. Leftovers of a
//! killed writer are removed by [`Storage::remove_stale_temp`] once their
//! mtime is older than the given age (see [`crate::STALE_TEMP_AGE`]).

use crate::{validate_key, ListPage, ObjectMeta, Result, Storage, StorageError};
use async_trait::async_trait;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A storage rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

/// Prefix of temp files; they are never objects.
const TEMP_PREFIX: &str = ".tmp-";

impl LocalStorage {
    /// Use `root` as the storage directory (it need not exist yet). A
    /// relative path is made absolute against the current directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
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

    /// The directory of `key`, created (0700) if missing.
    fn prepare_dir(&self, key: &str) -> Result<(PathBuf, PathBuf)> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .expect("keys are relative, so a parent exists")
            .to_path_buf();
        self.create_dirs(&dir)
            .map_err(|e| self.io_err("create directory for", key, e))?;
        Ok((path, dir))
    }

    fn put_blocking(&self, key: &str, data: &[u8]) -> Result<()> {
        let (path, dir) = self.prepare_dir(key)?;
        let tmp = TempFile::write(&dir, data).map_err(|e| self.io_err("write", key, e))?;
        fs::rename(tmp.path(), &path)
            .and_then(|()| {
                tmp.disarm();
                sync_dir(&dir)
            })
            .map_err(|e| self.io_err("write", key, e))
    }

    fn put_if_absent_blocking(&self, key: &str, data: &[u8]) -> Result<()> {
        let (path, dir) = self.prepare_dir(key)?;
        let tmp = TempFile::write(&dir, data).map_err(|e| self.io_err("write", key, e))?;
        // link() never replaces: of several writers exactly one creates the name.
        let linked = match link_no_replace(tmp.path(), &path) {
            // FAT/exFAT (USB disks), some FUSE and SMB mounts have no hard links.
            Err(e) if no_hard_links(&e) => claim_then_rename(tmp.path(), &path),
            other => other,
        };
        drop(tmp);
        match linked {
            Ok(()) => sync_dir(&dir).map_err(|e| self.io_err("sync", key, e)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StorageError::AlreadyExists {
                    key: key.to_string(),
                    location: self.location(),
                })
            }
            Err(e) => Err(self.io_err("write", key, e)),
        }
    }

    /// Remove `.tmp-*` files under the root whose mtime is older than `older_than`.
    fn remove_stale_temp_blocking(&self, older_than: Duration) -> Result<usize> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0;
        self.remove_stale_in(&self.root, cutoff, &mut removed)
            .map_err(|e| self.io_err("clean temp files in", "", e))?;
        Ok(removed)
    }

    fn remove_stale_in(
        &self,
        dir: &Path,
        cutoff: SystemTime,
        removed: &mut usize,
    ) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                self.remove_stale_in(&entry.path(), cutoff, removed)?;
            } else if ft.is_file() && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let modified = match entry.metadata() {
                    Ok(m) => m.modified()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if modified < cutoff {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => *removed += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
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

    /// Every object whose key starts with `prefix` (a plain string prefix), sorted.
    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        // Walk the deepest directory the prefix names in full; the rest of
        // the prefix (a partial name) is a filter.
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let dir = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_part)?
        };
        self.walk(&dir, &mut out)
            .map_err(|e| self.io_err("list", prefix, e))?;
        out.retain(|m| m.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn list_page_blocking(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let limit = limit.max(1);
        let mut objects: Vec<ObjectMeta> = self
            .list_blocking(prefix)?
            .into_iter()
            .filter(|m| start_after.is_none_or(|after| m.key.as_str() > after))
            .take(limit + 1)
            .collect();
        let next = if objects.len() > limit {
            objects.truncate(limit);
            objects.last().map(|m| m.key.clone())
        } else {
            None
        };
        Ok(ListPage { objects, next })
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
            if name.to_string_lossy().starts_with(TEMP_PREFIX) {
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
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    // Deleted between readdir and stat: not listed.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                out.push(ObjectMeta {
                    key: rel,
                    size: meta.len(),
                    last_modified: meta.modified()?,
                });
            }
        }
        Ok(())
    }
}

/// A temp file this process created (`O_EXCL`, random name) and filled;
/// removed on drop unless [`TempFile::disarm`]ed after it was renamed away.
/// Only ever removes its own file, never another writer's.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    /// Create `dir/.tmp-<random>`, write `data` and fsync it.
    fn write(dir: &Path, data: &[u8]) -> io::Result<TempFile> {
        let mut f = loop {
            let path = dir.join(temp_name());
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => break (f, TempFile { path: Some(path) }),
                // Someone else's file (a 2^-128 chance): pick another name, never touch it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        f.0.write_all(data)?;
        f.0.sync_all()?;
        Ok(f.1)
    }

    fn path(&self) -> &Path {
        self.path.as_deref().expect("armed temp file")
    }

    /// The file was renamed to its final name: nothing to remove.
    fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// `link(tmp, path)`, where `EEXIST` is a loss only if `path` is not already
/// our file: over NFS a retransmitted `LINK` whose first reply was lost
/// answers `EEXIST` although the first one created the name. The temp file
/// has a random name nobody else links to, so a link count above 1 means
/// the name is ours (the check that `open(2)` documents for NFS lock files).
fn link_no_replace(tmp: &Path, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match fs::hard_link(tmp, path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let ours = fs::metadata(tmp).is_ok_and(|m| m.nlink() > 1);
            if ours {
                Ok(())
            } else {
                Err(e)
            }
        }
        other => other,
    }
}

/// `link()` failed because the filesystem has no hard links (`EPERM` on
/// FAT/exFAT, `ENOTSUP`/`EOPNOTSUPP` on some FUSE and SMB mounts).
fn no_hard_links(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || e.raw_os_error() == Some(1) // EPERM
        || e.raw_os_error() == Some(95) // EOPNOTSUPP / ENOTSUP on Linux
}

/// `put_if_absent` without hard links: claim the name with an empty
/// `O_EXCL` file (exactly one writer creates it), then rename the complete
/// temp file over the claim. A reader may see the empty claim for a moment
/// (and a writer killed in between leaves it behind), never a partial object.
fn claim_then_rename(tmp: &Path, path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    fs::rename(tmp, path)
}

/// `.tmp-` and 128 random bits in hex.
fn temp_name() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the OS random number generator works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{TEMP_PREFIX}{hex}")
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

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<()> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.put_if_absent_blocking(&key, &data)).await
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                key: key.clone(),
                size: m.len(),
                last_modified: m.modified().map_err(|e| this.io_err("stat", &key, e))?,
            })),
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

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        let start_after = start_after.map(str::to_string);
        blocking(move || this.list_page_blocking(&prefix, start_after.as_deref(), limit)).await
    }

    async fn remove_stale_temp(&self, older_than: Duration) -> Result<usize> {
        let this = self.clone();
        blocking(move || this.remove_stale_temp_blocking(older_than)).await
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

    #[test]
    fn a_link_whose_reply_was_lost_is_a_win_and_another_file_is_a_loss() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".tmp-x");
        let path = dir.path().join("obj");
        fs::write(&tmp, b"mine").unwrap();
        // First LINK went through, its reply was lost; the retry sees EEXIST.
        fs::hard_link(&tmp, &path).unwrap();
        link_no_replace(&tmp, &path).unwrap();
        // Another writer's object at the name: a loss.
        let other = dir.path().join("other");
        fs::write(&other, b"theirs").unwrap();
        let tmp2 = dir.path().join(".tmp-y");
        fs::write(&tmp2, b"mine").unwrap();
        let e = link_no_replace(&tmp2, &other).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&other).unwrap(), b"theirs");
    }

    #[test]
    fn without_hard_links_the_first_claim_wins_and_the_loser_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        let (a, b) = (dir.path().join(".tmp-a"), dir.path().join(".tmp-b"));
        fs::write(&a, b"first").unwrap();
        fs::write(&b, b"second").unwrap();
        claim_then_rename(&a, &path).unwrap();
        let e = claim_then_rename(&b, &path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert!(!a.exists() && b.exists());
        assert!(no_hard_links(&io::Error::from_raw_os_error(1)));
        assert!(no_hard_links(&io::Error::from_raw_os_error(95)));
        assert!(!no_hard_links(&io::Error::from_raw_os_error(28))); // ENOSPC
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
