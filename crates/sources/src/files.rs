//! The files source, filesystem side: which paths are selected, what
//! metadata is read, and how it is applied on restore.
//!
//! Selection: a pattern without `/` matches an entry's name anywhere
//! (`*.log`, `node_modules`); a pattern with `/` matches the whole absolute
//! path (`/srv/app/**/cache`). Excludes win over includes; with includes,
//! a file is kept only when it matches one (directories are always walked).
//!
//! Fidelity: besides mode, owner and mtime, entries carry their extended
//! attributes (POSIX ACLs are the `system.posix_acl_*` ones), the hardlink
//! identity (device, inode, link count) and whether a file is sparse.
//! Restored files are written under a temporary name ([`TEMP_PREFIX`]) in
//! their directory and renamed into place once complete.

use glob::{MatchOptions, Pattern};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors of the files source.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A glob that does not parse.
    #[error("invalid pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// I/O on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Restore would overwrite something.
    #[error("{0} already exists: restore refuses to overwrite (use --force to replace it)")]
    Exists(PathBuf),
}

/// Result of files operations.
pub type Result<T> = std::result::Result<T, FilesError>;

/// Attach a path to an I/O error.
pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Include/exclude patterns.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    includes: Vec<Pattern>,
    excludes: Vec<Pattern>,
}

const OPTS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn compile(patterns: &[String]) -> Result<Vec<Pattern>> {
    patterns
        .iter()
        .map(|p| {
            Pattern::new(p).map_err(|e| FilesError::Pattern {
                pattern: p.clone(),
                message: e.msg.to_string(),
            })
        })
        .collect()
}

impl Selection {
    /// Compile include and exclude globs.
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Self> {
        Ok(Selection {
            includes: compile(includes)?,
            excludes: compile(excludes)?,
        })
    }

    fn matches(p: &Pattern, path: &Path) -> bool {
        if p.as_str().contains('/') {
            p.matches_path_with(path, OPTS)
        } else {
            path.file_name()
                .is_some_and(|n| p.matches_with(&n.to_string_lossy(), OPTS))
        }
    }

    /// Whether `path` is excluded (and, for a directory, everything below it).
    pub fn excluded(&self, path: &Path) -> bool {
        self.excludes.iter().any(|p| Self::matches(p, path))
    }

    /// Whether a file at `path` is kept.
    pub fn keeps_file(&self, path: &Path) -> bool {
        !self.excluded(path)
            && (self.includes.is_empty() || self.includes.iter().any(|p| Self::matches(p, path)))
    }

    /// Whether includes are in force (then directories left empty are dropped).
    pub fn has_includes(&self) -> bool {
        !self.includes.is_empty()
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Socket, FIFO, device: skipped with a warning.
    Other,
}

/// Metadata of one entry, read with `lstat`.
#[derive(Debug, Clone)]
pub struct EntryMeta {
    /// Kind.
    pub kind: EntryKind,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    /// mtime, ns since the epoch.
    pub mtime_ns: i64,
    /// ctime, ns since the epoch (change detection only).
    pub ctime_ns: i64,
    /// Inode (change detection only).
    pub inode: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size.
    pub size: u64,
    /// Device (hardlink identity, with `inode`).
    pub dev: u64,
    /// Hard link count.
    pub nlink: u64,
    /// Whether fewer bytes are allocated than the size (the file has holes).
    pub sparse: bool,
}

impl EntryMeta {
    /// Whether `after` (taken once a file was read) shows the file changed
    /// while it was read: size, mtime or ctime differ.
    pub fn changed(&self, after: &EntryMeta) -> bool {
        self.size != after.size
            || self.mtime_ns != after.mtime_ns
            || self.ctime_ns != after.ctime_ns
    }
}

fn meta_of(m: &fs::Metadata) -> EntryMeta {
    let ft = m.file_type();
    let kind = if ft.is_file() {
        EntryKind::File
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    };
    EntryMeta {
        kind,
        mode: m.mode() & 0o7777,
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        inode: m.ino(),
        uid: m.uid(),
        gid: m.gid(),
        size: m.len(),
        dev: m.dev(),
        nlink: m.nlink(),
        sparse: ft.is_file() && m.blocks().saturating_mul(512) < m.len(),
    }
}

/// `fstat` an open file (the same inode the walk `lstat`ed).
pub fn file_meta(file: &fs::File, path: &Path) -> Result<EntryMeta> {
    Ok(meta_of(&file.metadata().map_err(io_err(path))?))
}

/// `lstat` a path.
pub fn entry_meta(path: &Path) -> Result<EntryMeta> {
    Ok(meta_of(&fs::symlink_metadata(path).map_err(io_err(path))?))
}

/// Extended attributes of an entry (not following symlinks), sorted by
/// name. A filesystem without xattr support has none; names that are not
/// UTF-8 cannot be stored and are an error.
pub fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut out = Vec::new();
    for name in names {
        let Some(value) = xattr::get(path, &name).map_err(io_err(path))? else {
            continue;
        };
        let name = name.into_string().map_err(|n| FilesError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(format!(
                "extended attribute name {n:?} is not UTF-8 and cannot be stored"
            )),
        })?;
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}

/// A directory's entry names, sorted by bytes.
pub fn list_dir(path: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = fs::read_dir(path)
        .map_err(io_err(path))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(io_err(path))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// A symlink's target bytes.
pub fn read_link(path: &Path) -> Result<Vec<u8>> {
    Ok(fs::read_link(path)
        .map_err(io_err(path))?
        .as_os_str()
        .as_bytes()
        .to_vec())
}

/// Whether we run as root, so owners can be restored (the owner of
/// `/proc/self` is the effective uid).
pub fn can_chown() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Metadata to apply on restore.
#[derive(Debug, Clone)]
pub struct RestoreMeta {
    /// Permission bits.
    pub mode: u32,
    /// mtime, ns.
    pub mtime_ns: i64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Extended attributes (name, value).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Apply owner, extended attributes, mode and mtime, in that order: chown
/// clears setuid bits and file capabilities; chmod after the ACL keeps the
/// ACL mask and the group bits in agreement, as they were at backup.
pub fn apply_meta(path: &Path, kind: EntryKind, m: &RestoreMeta, chown: bool) -> Result<()> {
    if chown {
        std::os::unix::fs::lchown(path, Some(m.uid), Some(m.gid)).map_err(io_err(path))?;
    }
    for (name, value) in &m.xattrs {
        // Like owners, the privileged namespaces (file capabilities, SELinux
        // labels, trusted.*) are restored only as root; a user restoring a
        // server's backup gets its files, not an EPERM on every one.
        if !chown && is_privileged_xattr(name) {
            continue;
        }
        xattr::set(path, name, value).map_err(|e| FilesError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(
                e.kind(),
                format!("setting extended attribute {name}: {e} (restore onto a filesystem that supports it, as root for trusted.* and security.*)"),
            ),
        })?;
    }
    let t = filetime::FileTime::from_unix_time(
        m.mtime_ns.div_euclid(1_000_000_000),
        m.mtime_ns.rem_euclid(1_000_000_000) as u32,
    );
    if kind == EntryKind::Symlink {
        filetime::set_symlink_file_times(path, t, t).map_err(io_err(path))?;
    } else {
        // Through a descriptor opened without following a symlink: if the
        // entry was swapped for a symlink since it was made (a target other
        // users can write to), chmod and utimes must not land on whatever
        // it points to (as root, anywhere). O_NONBLOCK: a FIFO swapped in
        // must not hang the restore.
        use std::os::unix::fs::OpenOptionsExt;
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err(path))?;
        let ft = f.metadata().map_err(io_err(path))?.file_type();
        let expected = match kind {
            EntryKind::Dir => ft.is_dir(),
            _ => ft.is_file(),
        };
        if !expected {
            return Err(FilesError::Io {
                path: path.to_path_buf(),
                source: io::Error::other(
                    "the entry was replaced by another kind of file while restoring; refusing to change its metadata",
                ),
            });
        }
        f.set_permissions(fs::Permissions::from_mode(m.mode))
            .map_err(io_err(path))?;
        filetime::set_file_handle_times(&f, Some(t), Some(t)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Extended attributes only root may set (`security.*`, `trusted.*`).
pub fn is_privileged_xattr(name: &str) -> bool {
    name.starts_with("security.") || name.starts_with("trusted.")
}

/// Create a directory (existing directories are fine).
pub fn create_dir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() && !path.is_symlink() =>
        {
            Ok(())
        }
        Err(e) => Err(FilesError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Name prefix of the temporary entries a restore writes before renaming
/// them into place; leftovers of a killed restore carry it.
pub const TEMP_PREFIX: &str = ".lifeboat-restore-";

/// The file a restore keeps in its target directory while it runs (it
/// shares [`TEMP_PREFIX`] but is never taken for a leftover).
pub const RESTORE_MARKER: &str = ".lifeboat-restore-in-progress";

fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(TEMP_PREFIX);
    b
}

/// A new empty file under a temporary name in `dir` (mode 0600).
pub fn temp_file_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    temp_builder().tempfile_in(dir).map_err(io_err(dir))
}

/// A symlink to `target` under a temporary name in `dir`.
pub fn temp_symlink_in(dir: &Path, target: &[u8]) -> Result<tempfile::TempPath> {
    temp_builder()
        .make_in(dir, |p| {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), p)
        })
        .map(|t| t.into_temp_path())
        .map_err(io_err(dir))
}

/// A hard link to `existing` under a temporary name in `dir`.
pub fn temp_hardlink_in(dir: &Path, existing: &Path) -> Result<tempfile::TempPath> {
    temp_builder()
        .make_in(dir, |p| fs::hard_link(existing, p))
        .map(|t| t.into_temp_path())
        .map_err(io_err(existing))
}

/// Rename a finished temporary entry to `path`. With `replace`, an existing
/// entry there is replaced (a directory is removed first); without, an
/// existing entry is an [`FilesError::Exists`] and is left untouched.
pub fn put_in_place(temp: tempfile::TempPath, path: &Path, replace: bool) -> Result<()> {
    let result = if replace {
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            remove_any(path)?;
        }
        temp.persist(path)
    } else {
        temp.persist_noclobber(path)
    };
    result.map_err(|e| match e.error.kind() {
        io::ErrorKind::AlreadyExists => FilesError::Exists(path.to_path_buf()),
        _ => FilesError::Io {
            path: path.to_path_buf(),
            source: e.error,
        },
    })
}

/// Remove the temporary entries a killed restore left in `dir`.
pub fn remove_temp_entries(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        if name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) && name != RESTORE_MARKER {
            let p = e.path();
            if !fs::symlink_metadata(&p).map_err(io_err(&p))?.is_dir() {
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}

/// `fsync` a directory, so the renames into it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

fn remove_any(path: &Path) -> Result<()> {
    let m = fs::symlink_metadata(path).map_err(io_err(path))?;
    if m.is_dir() {
        fs::remove_dir_all(path).map_err(io_err(path))
    } else {
        fs::remove_file(path).map_err(io_err(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_meta_does_not_follow_a_symlink_swapped_in_for_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"x").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
        let before = fs::metadata(&outside).unwrap();
        let swapped = dir.path().join("restored-dir");
        std::os::unix::fs::symlink(&outside, &swapped).unwrap();
        let m = RestoreMeta {
            mode: 0o4777,
            mtime_ns: 1_000_000_000,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
        };
        for kind in [EntryKind::Dir, EntryKind::File] {
            assert!(apply_meta(&swapped, kind, &m, false).is_err());
            let after = fs::metadata(&outside).unwrap();
            assert_eq!(after.mode() & 0o7777, 0o600, "mode followed the symlink");
            assert_eq!(after.mtime(), before.mtime(), "mtime followed the symlink");
        }
        // A directory swapped in for a file (or the reverse) is refused too.
        let d = dir.path().join("d");
        fs::create_dir(&d).unwrap();
        let dmode = fs::metadata(&d).unwrap().mode();
        assert!(apply_meta(&d, EntryKind::File, &m, false).is_err());
        assert_eq!(fs::metadata(&d).unwrap().mode(), dmode);
        // The ordinary case still works.
        let f = dir.path().join("f");
        fs::write(&f, b"y").unwrap();
        apply_meta(&f, EntryKind::File, &m, false).unwrap();
        let fm = fs::metadata(&f).unwrap();
        assert_eq!((fm.mode() & 0o7777, fm.mtime()), (0o4777, 1));
        apply_meta(&d, EntryKind::Dir, &RestoreMeta { mode: 0o700, ..m }, false).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn privileged_xattrs_are_set_only_when_restoring_as_root() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"y").unwrap();
        if xattr::set(&f, "user.probe", b"1").is_err() {
            eprintln!("SKIPPED: no user xattrs on the test filesystem");
            return;
        }
        let m = RestoreMeta {
            mode: 0o644,
            mtime_ns: 0,
            uid: 0,
            gid: 0,
            xattrs: vec![
                ("trusted.t".into(), b"t".to_vec()),
                ("user.u".into(), b"u".to_vec()),
            ],
        };
        apply_meta(&f, EntryKind::File, &m, false).unwrap();
        assert_eq!(
            xattr::get(&f, "user.u").unwrap().as_deref(),
            Some(&b"u"[..])
        );
        assert_eq!(xattr::get(&f, "trusted.t").unwrap(), None);
        assert!(is_privileged_xattr("security.capability"));
        assert!(is_privileged_xattr("security.selinux"));
        assert!(!is_privileged_xattr("system.posix_acl_access"));
        if can_chown() {
            apply_meta(&f, EntryKind::File, &m, true).unwrap();
            assert_eq!(
                xattr::get(&f, "trusted.t").unwrap().as_deref(),
                Some(&b"t"[..])
            );
        }
    }

    #[test]
    fn selection_by_name_and_by_path() {
        let s = Selection::new(
            &[],
            &[
                "*.log".into(),
                "/srv/app/cache".into(),
                "node_modules".into(),
            ],
        )
        .unwrap();
        assert!(s.excluded(Path::new("/x/y/app.log")));
        assert!(s.excluded(Path::new("/srv/app/cache")));
        assert!(!s.excluded(Path::new("/srv/other/cache")));
        assert!(s.excluded(Path::new("/a/node_modules")));
        assert!(s.keeps_file(Path::new("/a/b.txt")));
        let inc = Selection::new(&["*.toml".into()], &["secret.toml".into()]).unwrap();
        assert!(inc.keeps_file(Path::new("/a/config.toml")));
        assert!(!inc.keeps_file(Path::new("/a/secret.toml")));
        assert!(!inc.keeps_file(Path::new("/a/readme.md")));
        assert!(Selection::new(&["[".into()], &[]).is_err());
    }
}
