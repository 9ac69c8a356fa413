//! [`Cache`]: a local on-disk cache of a remote repository's immutable
//! metadata (docs/FORMAT.md §20): index files, snapshots and tree packs.
//!
//! Every cached object is named by the BLAKE3 of its bytes, so an entry is
//! checked on every read and never trusted: an index file or snapshot is
//! re-hashed against its name; a blob read from a cached tree pack is opened
//! (AEAD) and re-hashed against its id by the caller. An entry that fails is
//! discarded and fetched again from the repository. Entries are used only
//! for keys the repository lists now, and entries it no longer has are
//! removed ([`Cache::retain`]); tree packs are bounded in total size (oldest
//! first out). Writes are temp file + rename (files 0600, directories 0700)
//! and best effort: the cache never makes an operation fail.

use crate::id::Id;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Default bound of the cached tree packs (`data/`): 2 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// A cache directory for one repository (`<cache home>/lifeboat/<repo id>`).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

impl Cache {
    /// Open (creating, mode 0700) the cache of repository `repo_id` under
    /// `base` (`$XDG_CACHE_HOME/lifeboat` or `~/.cache/lifeboat`).
    pub fn open(base: &Path, repo_id: &str, max_bytes: u64) -> std::io::Result<Self> {
        let dir = base.join(repo_id);
        make_private_dir(base)?;
        make_private_dir(&dir)?;
        Ok(Cache { dir, max_bytes })
    }

    /// The directory of this repository's cache.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// A cached object named by the BLAKE3 of its bytes (`index/<id>`,
    /// `snapshots/<id>`), when present and intact; a damaged or truncated
    /// entry is removed.
    pub fn get_named(&self, key: &str, name: &Id) -> Option<Vec<u8>> {
        let bytes = fs::read(self.path(key)).ok()?;
        if Id::of_file(&bytes) == *name {
            return Some(bytes);
        }
        self.discard(key);
        None
    }

    /// `len` bytes at `offset` of a cached object (a blob in a tree pack),
    /// `None` when absent or too short (then discarded). The caller opens
    /// and re-hashes what it gets and calls [`Cache::discard`] on failure.
    pub fn read_range(&self, key: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
        let mut f = fs::File::open(self.path(key)).ok()?;
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        let ok = f.seek(SeekFrom::Start(offset)).is_ok() && f.read_exact(&mut buf).is_ok();
        if ok {
            return Some(buf);
        }
        self.discard(key);
        None
    }

    /// Store an object (best effort: a full or read-only disk only costs
    /// the next read a fetch).
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let path = self.path(key);
        let Some(parent) = path.parent() else { return };
        if make_private_dir(parent).is_err() {
            return;
        }
        let mut rnd = [0u8; 8];
        if getrandom::getrandom(&mut rnd).is_err() {
            return;
        }
        let temp = parent.join(format!(".tmp-{}", crate::id::to_hex(&rnd)));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut f| f.write_all(bytes));
        if written.is_err() || fs::rename(&temp, &path).is_err() {
            let _ = fs::remove_file(&temp);
        }
    }

    /// Remove one entry.
    pub fn discard(&self, key: &str) {
        let _ = fs::remove_file(self.path(key));
    }

    /// Remove the entries of `dir` (`index`, `snapshots`, `data`) whose key
    /// `keep` rejects: objects the repository no longer has (deleted by
    /// prune or forget). Leftover temp files go too.
    pub fn retain(&self, dir: &str, keep: impl Fn(&str) -> bool) {
        for (key, _, _) in self.entries(dir) {
            let name = key.rsplit('/').next().unwrap_or_default();
            if name.starts_with(".tmp-") || !keep(&key) {
                self.discard(&key);
            }
        }
    }

    /// Remove the oldest tree packs until the cached `data/` fits the bound.
    pub fn enforce_bound(&self) {
        let mut packs = self.entries(crate::layout::DATA);
        let mut total: u64 = packs.iter().map(|(_, size, _)| size).sum();
        if total <= self.max_bytes {
            return;
        }
        packs.sort_by_key(|(_, _, mtime)| *mtime);
        for (key, size, _) in packs {
            if total <= self.max_bytes {
                break;
            }
            self.discard(&key);
            total -= size;
        }
    }

    /// Every file under `dir` (one or two levels): key, size, mtime.
    fn entries(&self, dir: &str) -> Vec<(String, u64, SystemTime)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(self.path(&d)) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                let key = format!("{d}/{name}");
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(key),
                    Ok(m) => {
                        out.push((key, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
                    }
                    Err(_) => {}
                }
            }
        }
        out
    }
}

/// Create `dir` (and parents) if missing and make it 0700.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_truncated_entry_is_discarded_never_returned() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path(), "r", DEFAULT_MAX_BYTES).unwrap();
        let bytes = b"sealed index bytes".to_vec();
        let id = Id::of_file(&bytes);
        let key = format!("index/{id}");
        cache.put(&key, &bytes);
        assert_eq!(cache.get_named(&key, &id), Some(bytes.clone()));
        let mode = fs::metadata(cache.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::write(cache.path(&key), b"sealed index byteX").unwrap();
        assert_eq!(cache.get_named(&key, &id), None);
        assert!(!cache.path(&key).exists(), "damaged entry removed");
        cache.put("data/ab/p", b"0123");
        assert_eq!(cache.read_range("data/ab/p", 2, 2), Some(b"23".to_vec()));
        assert_eq!(cache.read_range("data/ab/p", 2, 4), None, "truncated");
        assert!(!cache.path("data/ab/p").exists());
    }

    #[test]
    fn retain_and_bound_remove_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path(), "r", 5).unwrap();
        cache.put("snapshots/a", b"1");
        cache.put("snapshots/b", b"2");
        cache.retain("snapshots", |k| k == "snapshots/a");
        assert!(cache.path("snapshots/a").exists());
        assert!(!cache.path("snapshots/b").exists());
        cache.put("data/00/old", b"1234");
        cache.put("data/01/new", b"1234");
        let old = fs::File::options()
            .write(true)
            .open(cache.path("data/00/old"))
            .unwrap();
        old.set_modified(SystemTime::UNIX_EPOCH).unwrap();
        cache.enforce_bound();
        assert!(!cache.path("data/00/old").exists());
        assert!(cache.path("data/01/new").exists());
    }
}
