//! [`Repository`]: open or create a repository and read and write its objects.
//!
//! Object layout (docs/FORMAT.md): `config`, `keys/<id>`, `data/<xx>/<id>`
//! (packs), `index/<id>`, `snapshots/<id>`, `verifications/<id>`.
//! Writers never modify or delete objects: backups are lock-free.

use crate::cache::Cache;
use crate::chunker::{FastCdc, FixedChunker};
use crate::config::{ConfigFile, RepoConfig};
use crate::crypto::{ad, Keys, MasterKey};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{max_blobs_in, Index};
use crate::keys::{KdfParams, KeyFile, KeyMeta, RawKeyFile};
use crate::layout;
use crate::lock::LockHealth;
use crate::snapshot::{decode_snapshot, Snapshot, SnapshotInfo};
use crate::tree::Tree;
use lifeboat_storage::{Storage, StorageError};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::runtime::Handle;
use zeroize::Zeroizing;

/// How to unlock a repository.
pub enum Credentials {
    /// A passphrase, tried against every key file (wiped after use).
    Password(Zeroizing<Vec<u8>>),
    /// The bytes of an exported raw key file (no KDF; wiped after use).
    RawKey(Zeroizing<Vec<u8>>),
}

/// An open repository.
pub struct Repository {
    storage: Arc<dyn Storage>,
    config: RepoConfig,
    master: MasterKey,
    keys: Arc<Keys>,
    key_in_use: Option<Id>,
    read_only: Option<String>,
    index: RwLock<Arc<Index>>,
    /// Keys of the index files the in-memory index was loaded from.
    index_files: Mutex<Vec<String>>,
    /// The backup lock this process holds, checked before writing a snapshot.
    held_lock: Mutex<Option<Arc<LockHealth>>>,
    /// Packs a prune has tombstoned: left out of the index this process
    /// loads (set by backups, which must not deduplicate against them).
    excluded_packs: Mutex<std::collections::HashSet<Id>>,
    /// Local cache of index files, snapshots and tree packs (remote
    /// repositories; FORMAT.md §20), when enabled.
    cache: OnceLock<Cache>,
    rt: Handle,
}

/// Path of a pack.
pub fn pack_key(id: &Id) -> String {
    layout::pack_key(id)
}

impl Repository {
    /// Create a repository at `storage`, protected by `password`.
    pub async fn init(
        storage: Arc<dyn Storage>,
        password: &[u8],
        kdf: KdfParams,
        meta: KeyMeta,
    ) -> Result<Arc<Self>> {
        if storage.stat(layout::CONFIG).await?.is_some() {
            return Err(Error::AlreadyInitialized(storage.location()));
        }
        let master = MasterKey::generate();
        let keys = Keys::derive(&master);
        let config = RepoConfig::new_default(meta.created.clone());
        let config_bytes = config.encode(&keys);
        let keyfile = KeyFile::create(&master, password, kdf, meta)?;
        let key_id = put_json_plain(&*storage, layout::KEYS, &keyfile).await?;
        // The config is written last: a repository without it does not exist yet.
        storage.put(layout::CONFIG, config_bytes).await?;
        Ok(Arc::new(Self::assemble(
            storage,
            config,
            master,
            Some(key_id),
        )))
    }

    fn assemble(
        storage: Arc<dyn Storage>,
        config: RepoConfig,
        master: MasterKey,
        key_in_use: Option<Id>,
    ) -> Self {
        let keys = Arc::new(Keys::derive(&master));
        let mut index = Index::default();
        index.finalize();
        Repository {
            storage,
            config,
            master,
            keys,
            key_in_use,
            read_only: None,
            index: RwLock::new(Arc::new(index)),
            index_files: Mutex::new(Vec::new()),
            held_lock: Mutex::new(None),
            excluded_packs: Mutex::new(std::collections::HashSet::new()),
            cache: OnceLock::new(),
            rt: Handle::current(),
        }
    }

    /// Read the config (refusing unknown versions and incompatible
    /// features) without unlocking.
    pub async fn read_config(storage: &dyn Storage) -> Result<ConfigFile> {
        let bytes = match storage.get(layout::CONFIG).await {
            Ok(b) => b,
            Err(StorageError::NotFound { .. }) => {
                return Err(Error::NotARepository(storage.location()))
            }
            Err(e) => return Err(e.into()),
        };
        RepoConfig::parse(&bytes, &storage.location())
    }

    /// Open and unlock the repository.
    pub async fn open(storage: Arc<dyn Storage>, creds: Credentials) -> Result<Arc<Self>> {
        let file = Self::read_config(&*storage).await?;
        let config = file.config.clone();
        let (master, key_in_use) = match creds {
            Credentials::RawKey(bytes) => {
                let (repo_id, master) = RawKeyFile::parse(&bytes)?;
                if repo_id != config.id {
                    return Err(Error::WrongKey(storage.location()));
                }
                (master, None)
            }
            Credentials::Password(pw) => {
                let (id, master) = Self::unlock_with_password(&*storage, &pw, &file).await?;
                (master, Some(id))
            }
        };
        let mut repo = Self::assemble(storage, config, master, key_in_use);
        repo.read_only = file.read_only.clone();
        file.check_mac(&repo.keys).map_err(|_| match key_in_use {
            None => Error::WrongKey(repo.storage.location()),
            Some(_) => Error::Corrupt(
                "config: MAC mismatch, the repository config was altered or damaged".into(),
            ),
        })?;
        Ok(Arc::new(repo))
    }

    /// The first key file that opens with `pw` and whose master key checks
    /// the config's MAC. A key file that opens but wraps another master key
    /// (another repository's key with the same passphrase, copied or planted
    /// here) is skipped, so it cannot lock the right key out.
    async fn unlock_with_password(
        storage: &dyn Storage,
        pw: &[u8],
        config: &ConfigFile,
    ) -> Result<(Id, MasterKey)> {
        let keyfiles = storage.list(&layout::prefix(layout::KEYS)).await?;
        // Key files are plaintext: one that is unreadable or malformed is
        // skipped so it cannot lock the others out. One of a version this
        // build does not know is remembered: if no key opens, that (not a
        // wrong password) is the likely reason.
        let mut unsupported = None;
        let mut other_master = None;
        for meta in keyfiles {
            let Ok(bytes) = storage.get(&meta.key).await else {
                continue;
            };
            let kf = match KeyFile::parse(&meta.key, &bytes) {
                Ok(kf) => kf,
                Err(e @ Error::Unsupported(_)) => {
                    unsupported = Some(e);
                    continue;
                }
                Err(_) => continue,
            };
            let pw = Zeroizing::new(pw.to_vec());
            let unlocked = tokio::task::spawn_blocking(move || kf.unlock(&pw))
                .await
                .expect("KDF thread panicked");
            if let Ok(Some(master)) = unlocked {
                if config.check_mac(&Keys::derive(&master)).is_err() {
                    other_master = Some(meta.key);
                    continue;
                }
                let id = meta
                    .key
                    .trim_start_matches(&layout::prefix(layout::KEYS))
                    .parse()
                    .unwrap_or_default();
                return Ok((id, master));
            }
        }
        if let Some(key) = other_master {
            return Err(Error::Corrupt(format!(
                "config: MAC mismatch, the repository config was altered or damaged (or {key} belongs to another repository); no key file's master key matches it"
            )));
        }
        Err(unsupported.unwrap_or_else(|| Error::WrongPassword(storage.location())))
    }

    /// Refuse writing when the config has features this build cannot write.
    pub fn ensure_writable(&self) -> Result<()> {
        match &self.read_only {
            Some(why) => Err(Error::Unsupported(format!("refusing to write: {why}"))),
            None => Ok(()),
        }
    }

    /// Use a local cache for index files, snapshots and tree packs from
    /// now on (set once; FORMAT.md §20).
    pub fn use_cache(&self, cache: Cache) {
        let _ = self.cache.set(cache);
    }

    /// The local cache, when enabled.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.get()
    }

    /// Read an object named by the BLAKE3 of its bytes, from the cache when
    /// an intact copy is there, else from storage (then cached when it
    /// matches its name; a mismatch is returned as read, for the caller to
    /// report as damage).
    async fn get_named(&self, key: &str, name: &Id) -> Result<Vec<u8>> {
        let cache = self.cache.get();
        if let Some(bytes) = cache.and_then(|c| c.get_named(key, name)) {
            return Ok(bytes);
        }
        let bytes = self.storage.get(key).await?;
        if let Some(c) = cache {
            if Id::of_file(&bytes) == *name {
                c.put(key, &bytes);
            }
        }
        Ok(bytes)
    }

    /// The storage underneath.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The repository config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The working keys.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// The tokio runtime the repository was opened on.
    pub fn runtime(&self) -> &Handle {
        &self.rt
    }

    /// The content-defined chunker of this repository.
    pub fn cdc_chunker(&self) -> FastCdc {
        let c = self.config.chunker;
        FastCdc::new(
            c.min as usize,
            c.avg as usize,
            c.max as usize,
            &self.keys.chunker_seed,
        )
    }

    /// The fixed-size chunker of this repository.
    pub fn fixed_chunker(&self) -> FixedChunker {
        FixedChunker::new(self.config.fixed_chunk_size as usize)
    }

    /// Load every index file; a damaged one is an error naming it.
    pub async fn load_index(&self) -> Result<()> {
        let (index, problems) = self.load_index_lenient().await?;
        if let Some((_, e)) = problems.into_iter().next() {
            // The in-memory index was not replaced, so it does not reflect
            // the files just listed: forget them, or a later miss would not
            // reload (after a transient read error, or once the file is
            // repaired) and call present data missing.
            self.index_files.lock().expect("index files").clear();
            if let Error::Unsupported(_) = e {
                return Err(e);
            }
            return Err(Error::Corrupt(format!(
                "{e}; run `lifeboat verify` to see what it affects"
            )));
        }
        *self.index.write().expect("index lock") = Arc::new(index);
        Ok(())
    }

    /// Load every readable index file and return the damaged ones separately (for verify).
    pub async fn load_index_lenient(&self) -> Result<(Index, Vec<(String, Error)>)> {
        let mut index = Index::default();
        let mut problems = Vec::new();
        let listed = self.storage.list(&layout::prefix(layout::INDEX)).await?;
        *self.index_files.lock().expect("index files") =
            listed.iter().map(|m| m.key.clone()).collect();
        // Sized once from the files' sizes (an upper bound): no doubling while loading.
        index.reserve(max_blobs_in(listed.iter().map(|m| m.size).sum()));
        for meta in listed {
            let name: Option<Id> = meta
                .key
                .trim_start_matches(&layout::prefix(layout::INDEX))
                .parse()
                .ok();
            let result = match name {
                None => Err(Error::Corrupt(format!(
                    "{}: not an index file name",
                    meta.key
                ))),
                Some(name) => match self.get_named(&meta.key, &name).await {
                    Ok(bytes) => index.add_index_file(&self.keys, &name, bytes),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                problems.push((meta.key, e));
            }
        }
        index.drop_packs(&self.excluded_packs.lock().expect("excluded packs"));
        index.finalize();
        if let Some(cache) = self.cache.get() {
            let files: std::collections::HashSet<String> = self
                .index_files
                .lock()
                .expect("index files")
                .iter()
                .cloned()
                .collect();
            cache.retain(layout::INDEX, |k| files.contains(k));
            let packs: std::collections::HashSet<String> =
                index.packs().iter().map(|p| pack_key(&p.id)).collect();
            cache.retain(layout::DATA, |k| packs.contains(k));
            cache.enforce_bound();
        }
        Ok((index, problems))
    }

    /// Reload the index if index files were added or removed since it was
    /// loaded (a backup finished meanwhile); returns whether it reloaded.
    /// Readers call this on an index miss before calling anything missing.
    pub async fn refresh_index(&self) -> Result<bool> {
        if !self.index_files_changed().await? {
            return Ok(false);
        }
        self.load_index().await?;
        Ok(true)
    }

    /// Whether the index files in storage differ from the ones loaded.
    pub async fn index_files_changed(&self) -> Result<bool> {
        let now: Vec<String> = self
            .storage
            .list(&layout::prefix(layout::INDEX))
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        Ok(*self.index_files.lock().expect("index files") != now)
    }

    /// Leave these packs out of every index loaded from now on (a backup
    /// sets the tombstoned packs before loading the index, FORMAT.md §18).
    pub fn exclude_packs(&self, packs: std::collections::HashSet<Id>) {
        *self.excluded_packs.lock().expect("excluded packs") = packs;
    }

    /// Rewrite the config with `feature` in `ro_compatible` unless it is
    /// there: builds that do not know it stop writing (prune's step 0).
    pub async fn add_ro_compatible_feature(&self, feature: &str) -> Result<()> {
        self.ensure_writable()?;
        if self
            .config
            .features
            .ro_compatible
            .iter()
            .any(|f| f == feature)
        {
            return Ok(());
        }
        let mut cfg = self.config.clone();
        cfg.features.ro_compatible.push(feature.to_string());
        self.storage
            .put(layout::CONFIG, cfg.encode(&self.keys))
            .await?;
        Ok(())
    }

    /// Replace the in-memory index (after a check loaded it leniently).
    pub fn set_index(&self, index: Index) {
        *self.index.write().expect("index lock") = Arc::new(index);
    }

    /// The current in-memory index.
    pub fn index(&self) -> Arc<Index> {
        self.index.read().expect("index lock").clone()
    }

    /// Read, open, decompress and check one blob.
    pub async fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let mut loc = self.index().lookup(id);
        if loc.is_none() && self.refresh_index().await? {
            loc = self.index().lookup(id);
        }
        let loc = loc.ok_or_else(|| {
            Error::Corrupt(format!(
                "blob {id} is not in the index (missing data); run `lifeboat verify`"
            ))
        })?;
        let what = format!("blob {} in pack {}", id.short(), loc.pack.short());
        if let (Some(cache), crate::pack::BlobKind::Tree) = (self.cache.get(), loc.kind) {
            if let Some(data) = self.read_tree_blob_cached(cache, id, &loc, &what).await? {
                return Ok(data);
            }
        }
        let sealed = self
            .storage
            .get_range(
                &pack_key(&loc.pack),
                u64::from(loc.offset),
                u64::from(loc.len),
            )
            .await?;
        self.open_blob(id, loc.compressed, loc.raw_len, &sealed, &what)
    }

    /// A tree blob from its pack in the cache; on a miss (or a damaged
    /// entry, discarded) the whole pack is fetched once and cached when it
    /// hashes to its name. `None`: read the blob from storage as usual (the
    /// pack is damaged there, which that read reports).
    async fn read_tree_blob_cached(
        &self,
        cache: &Cache,
        id: &Id,
        loc: &crate::index::BlobLocation,
        what: &str,
    ) -> Result<Option<Vec<u8>>> {
        let key = pack_key(&loc.pack);
        let (offset, len) = (u64::from(loc.offset), u64::from(loc.len));
        if let Some(sealed) = cache.read_range(&key, offset, len) {
            match self.open_blob(id, loc.compressed, loc.raw_len, &sealed, what) {
                Ok(data) => return Ok(Some(data)),
                Err(_) => cache.discard(&key),
            }
        }
        let pack = self.storage.get(&key).await?;
        if Id::of_file(&pack) != loc.pack {
            return Ok(None);
        }
        cache.put(&key, &pack);
        let range = usize::try_from(offset).unwrap_or(usize::MAX)
            ..usize::try_from(offset + len).unwrap_or(usize::MAX);
        match pack.get(range) {
            Some(sealed) => self
                .open_blob(id, loc.compressed, loc.raw_len, sealed, what)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Open a sealed blob and check it hashes to `id`.
    pub fn open_blob(
        &self,
        id: &Id,
        compressed: bool,
        raw_len: u32,
        sealed: &[u8],
        what: &str,
    ) -> Result<Vec<u8>> {
        let plain = self.keys.open(sealed, &ad::blob(id), what)?;
        let data = if compressed {
            crate::compress::decompress(&plain, raw_len as usize, what)?
        } else {
            plain
        };
        if self.keys.blob_id(&data) != *id {
            return Err(Error::Corrupt(format!(
                "{what}: content does not hash to its id"
            )));
        }
        Ok(data)
    }

    /// [`Repository::read_blob`] for blocking threads (not on a runtime worker).
    pub fn read_blob_blocking(&self, id: &Id) -> Result<Vec<u8>> {
        self.rt.block_on(self.read_blob(id))
    }

    /// Load a tree blob.
    /// (Blobs are addressed by content: a data blob with the same bytes as a
    /// tree serves as that tree, so the stored kind is not checked.)
    /// A directory split into a chain of parts (`next`) is returned whole.
    pub async fn load_tree(&self, id: &Id) -> Result<Tree> {
        let mut tree = self.load_tree_part(id).await?;
        let mut next = tree.next.take();
        while let Some(part_id) = next {
            let mut part = self.load_tree_part(&part_id).await?;
            tree.nodes.append(&mut part.nodes);
            next = part.next;
        }
        Ok(tree)
    }

    /// [`Repository::load_tree`] for blocking threads (not on a runtime worker).
    pub fn load_tree_blocking(&self, id: &Id) -> Result<Tree> {
        self.rt.block_on(self.load_tree(id))
    }

    async fn load_tree_part(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(id).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Corrupt(format!("tree {}: {e}", id.short())))
    }

    /// Seal and store a JSON object under `dir/<id>`; returns its id.
    /// The associated data binds it to `dir` (FORMAT.md, "Sealing").
    pub async fn put_sealed_json<T: Serialize>(&self, dir: &str, value: &T) -> Result<Id> {
        self.ensure_writable()?;
        let sealed = self.keys.seal(
            &ad::object(dir),
            &serde_json::to_vec(value).expect("serializable"),
        );
        let id = Id::of_file(&sealed);
        let key = layout::object_key(dir, &id);
        let cached = (dir == layout::SNAPSHOTS)
            .then(|| self.cache.get())
            .flatten()
            .map(|c| (c, sealed.clone()));
        self.storage.put(&key, sealed).await?;
        if let Some((cache, sealed)) = cached {
            cache.put(&key, &sealed);
        }
        Ok(id)
    }

    /// Load and check a sealed JSON object `dir/<id>`.
    pub async fn get_sealed_json<T: DeserializeOwned>(&self, dir: &str, id: &Id) -> Result<T> {
        let (key, plain) = self.get_sealed(dir, id).await?;
        serde_json::from_slice(&plain).map_err(|e| Error::Corrupt(format!("{key}: {e}")))
    }

    /// Load, check and open a sealed object `dir/<id>`: its plaintext.
    pub async fn get_sealed_plain(&self, dir: &str, id: &Id) -> Result<Vec<u8>> {
        Ok(self.get_sealed(dir, id).await?.1)
    }

    /// Load, check and open a sealed object `dir/<id>`: its key and plaintext.
    async fn get_sealed(&self, dir: &str, id: &Id) -> Result<(String, Vec<u8>)> {
        let key = layout::object_key(dir, id);
        let bytes = if dir == layout::SNAPSHOTS {
            self.get_named(&key, id).await?
        } else {
            self.storage.get(&key).await?
        };
        if Id::of_file(&bytes) != *id {
            return Err(Error::Corrupt(format!(
                "{key}: content does not match its name (damaged or truncated)"
            )));
        }
        let plain = self.keys.open(&bytes, &ad::object(dir), &key)?;
        Ok((key, plain))
    }

    /// Load a snapshot, refusing a version or kind this build does not know
    /// ([`Error::Unsupported`]) before using it.
    pub async fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let (key, plain) = self.get_sealed(layout::SNAPSHOTS, id).await?;
        decode_snapshot(&plain, &key)
    }

    /// Load a snapshot without its `meta`, checked like [`Repository::load_snapshot`].
    pub async fn load_snapshot_info(&self, id: &Id) -> Result<SnapshotInfo> {
        let (key, plain) = self.get_sealed(layout::SNAPSHOTS, id).await?;
        decode_snapshot(&plain, &key)
    }

    /// Ids of all objects in `dir`.
    pub async fn list_ids(&self, dir: &str) -> Result<Vec<Id>> {
        let prefix = layout::prefix(dir);
        Ok(self
            .storage
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|m| m.key[prefix.len()..].parse().ok())
            .collect())
    }

    /// Store a snapshot (call only after its data's index is written).
    /// With a backup lock held, fails if the lock was not kept fresh.
    pub async fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        self.ensure_lock_held()?;
        self.put_sealed_json(layout::SNAPSHOTS, snap).await
    }

    /// With a backup lock held, fail if it was not kept fresh: a prune may
    /// have taken this backup for dead and deleted packs it wrote or
    /// deduplicated against, so neither an index file (later backups would
    /// deduplicate against blobs in deleted packs) nor a snapshot may follow.
    pub fn ensure_lock_held(&self) -> Result<()> {
        let held = self.held_lock.lock().expect("held lock").clone();
        match held {
            Some(lock) => lock.ensure_held(),
            None => Ok(()),
        }
    }

    /// Register (or clear) the backup lock [`Repository::save_snapshot`] checks.
    pub fn set_held_lock(&self, lock: Option<Arc<LockHealth>>) {
        *self.held_lock.lock().expect("held lock") = lock;
    }

    /// Every readable snapshot, oldest first. Damaged snapshot files are
    /// left out (so one damaged file blocks neither backups nor restores of
    /// other snapshots); [`Repository::snapshots_checked`] names them.
    /// Listings skip each snapshot's `meta` ([`SnapshotInfo`]); load one
    /// snapshot whole with [`Repository::load_snapshot`].
    pub async fn snapshots(&self) -> Result<Vec<(Id, SnapshotInfo)>> {
        Ok(self.snapshots_checked().await?.0)
    }

    /// Every snapshot, oldest first, and separately the ones that could not
    /// be read (damaged, or [`Error::Unsupported`]: written by a newer lifeboat).
    pub async fn snapshots_checked(&self) -> Result<(Vec<(Id, SnapshotInfo)>, Vec<(Id, Error)>)> {
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        let ids = self.list_ids(layout::SNAPSHOTS).await?;
        if let Some(cache) = self.cache.get() {
            let listed: std::collections::HashSet<String> = ids
                .iter()
                .map(|id| layout::object_key(layout::SNAPSHOTS, id))
                .collect();
            cache.retain(layout::SNAPSHOTS, |k| listed.contains(k));
        }
        for id in ids {
            match self.load_snapshot_info(&id).await {
                Ok(snap) => out.push((id, snap)),
                Err(e @ (Error::Corrupt(_) | Error::Storage(_) | Error::Unsupported(_))) => {
                    damaged.push((id, e))
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((out, damaged))
    }

    /// Resolve `latest` or an id prefix, optionally among one source's snapshots.
    ///
    /// An id prefix loads only the snapshots whose id matches, so a damaged
    /// snapshot file does not stand in the way of restoring another one.
    /// `latest` refuses when any snapshot file cannot be read (it might be
    /// the newest); see [`Repository::find_snapshot_with`].
    pub async fn find_snapshot(&self, spec: &str, source: Option<&str>) -> Result<(Id, Snapshot)> {
        Ok(self.find_snapshot_with(spec, source, false).await?.0)
    }

    /// [`Repository::find_snapshot`]; with `skip_damaged`, `latest` is the
    /// newest readable snapshot and the unreadable ones are returned (to warn).
    pub async fn find_snapshot_with(
        &self,
        spec: &str,
        source: Option<&str>,
        skip_damaged: bool,
    ) -> Result<((Id, Snapshot), Vec<Id>)> {
        if spec == "latest" {
            let (all, damaged) = self.snapshots_checked().await?;
            if let (Some((id, e)), false) = (damaged.first(), skip_damaged) {
                let message = format!(
                    "snapshot {id} cannot be read ({e}){}, so `latest` cannot tell whether it is the newest; \
                     name a snapshot by id, or pass --skip-damaged to use the newest readable one; run `lifeboat verify`",
                    if damaged.len() > 1 {
                        format!(" and {} more", damaged.len() - 1)
                    } else {
                        String::new()
                    }
                );
                // Written by a newer lifeboat (exit 13), not damaged (exit 12).
                let all_newer = damaged
                    .iter()
                    .all(|(_, e)| matches!(e, Error::Unsupported(_)));
                return Err(if all_newer {
                    Error::Unsupported(message)
                } else {
                    Error::Corrupt(message)
                });
            }
            let (id, _) = all
                .into_iter()
                .rev()
                .find(|(_, s)| source.is_none_or(|src| s.source == src))
                .ok_or_else(|| {
                    Error::NotFound(match source {
                        Some(s) => format!("no snapshot of source {s:?} in the repository"),
                        None => "the repository has no snapshots yet".into(),
                    })
                })?;
            // The listing skips `meta`: load the chosen one whole.
            let latest = (id, self.load_snapshot(&id).await?);
            return Ok((latest, damaged.into_iter().map(|(id, _)| id).collect()));
        }
        let spec = spec.to_ascii_lowercase();
        let mut matching = Vec::new();
        for id in self.list_ids(layout::SNAPSHOTS).await? {
            if id.to_string().starts_with(&spec) {
                let snap = self.load_snapshot(&id).await?;
                if source.is_none_or(|src| snap.source == src) {
                    matching.push((id, snap));
                }
            }
        }
        match matching.len() {
            1 => Ok((matching.pop().expect("one"), Vec::new())),
            0 => Err(Error::NotFound(format!(
                "no snapshot matches {spec:?} (see `lifeboat snapshots`)"
            ))),
            n => Err(Error::Invalid(format!(
                "{n} snapshots match {spec:?}: give more digits"
            ))),
        }
    }

    /// Add a key file for `password`; returns its id.
    pub async fn add_key(&self, password: &[u8], kdf: KdfParams, meta: KeyMeta) -> Result<Id> {
        self.ensure_writable()?;
        let master = self.master.clone();
        let pw = Zeroizing::new(password.to_vec());
        let kf = tokio::task::spawn_blocking(move || KeyFile::create(&master, &pw, kdf, meta))
            .await
            .expect("KDF thread panicked")?;
        put_json_plain(&*self.storage, layout::KEYS, &kf).await
    }

    /// All key files, usable or not (sorted by creation, unreadable ones last).
    pub async fn list_keys(&self) -> Result<Vec<KeyEntry>> {
        let mut out = Vec::new();
        for meta in self.storage.list(&layout::prefix(layout::KEYS)).await? {
            let id = meta.key[layout::KEYS.len() + 1..]
                .parse()
                .unwrap_or_default();
            let parsed = match self.storage.get(&meta.key).await {
                Ok(bytes) => KeyFile::parse(&meta.key, &bytes),
                Err(e) => Err(e.into()),
            };
            let entry = match parsed {
                Ok(kf) => KeyEntry {
                    id,
                    problem: kf.check().err().map(|e| e.to_string()),
                    file: Some(kf),
                },
                Err(e) => KeyEntry {
                    id,
                    file: None,
                    problem: Some(e.to_string()),
                },
            };
            out.push(entry);
        }
        out.sort_by(|a, b| {
            let created = |k: &KeyEntry| k.file.as_ref().map(|f| f.created.clone());
            (created(a).is_none(), created(a))
                .cmp(&(created(b).is_none(), created(b)))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// The key file that unlocked this session (none with a raw key).
    pub fn key_in_use(&self) -> Option<Id> {
        self.key_in_use
    }

    /// Remove a key file. Refuses the key in use and the last key file that
    /// can unlock the repository (key files that cannot, such as unreadable
    /// ones or ones of an unknown version, do not count). A `key remove`
    /// running at the same time may remove the other usable key between the
    /// check and the delete: the check is repeated after the delete and the
    /// key put back when no usable key is left.
    pub async fn remove_key(&self, id: &Id) -> Result<()> {
        self.ensure_writable()?;
        let keys = self.list_keys().await?;
        if !keys.iter().any(|k| k.id == *id) {
            return Err(Error::NotFound(format!("no key {id}")));
        }
        if self.key_in_use == Some(*id) {
            return Err(Error::Invalid(
                "refusing to remove the key this session was opened with; open with another key first".into(),
            ));
        }
        if !keys.iter().any(|k| k.id != *id && k.usable()) {
            return Err(Error::Invalid(format!(
                "refusing to remove key {}: it is the last key file that can unlock the repository \
                 (the others are unusable); add a key with `lifeboat key add` first",
                id.short()
            )));
        }
        let name = layout::key_file_key(id);
        let bytes = self.storage.get(&name).await?;
        self.storage.delete(&name).await?;
        if !self.list_keys().await?.iter().any(KeyEntry::usable) {
            self.storage.put(&name, bytes).await?;
            return Err(Error::Invalid(format!(
                "refusing to remove key {}: another key was removed at the same time and no usable \
                 key would be left; key {} was put back",
                id.short(),
                id.short()
            )));
        }
        Ok(())
    }

    /// Change the passphrase of the key in use: add a key file for `password`,
    /// then delete the old one (the new key exists before the old one goes).
    /// Returns the new key's id.
    pub async fn change_password(
        &self,
        password: &[u8],
        kdf: KdfParams,
        meta: KeyMeta,
    ) -> Result<Id> {
        let Some(old) = self.key_in_use else {
            return Err(Error::Invalid("passwd changes the passphrase the repository was opened with; open it with a password, not a key file".into()));
        };
        let new = self.add_key(password, kdf, meta).await?;
        self.storage.delete(&layout::key_file_key(&old)).await?;
        Ok(new)
    }

    /// The raw key file that opens this repository without a passphrase.
    pub fn export_raw_key(&self) -> Zeroizing<Vec<u8>> {
        let raw = RawKeyFile::new(&self.config.id, &self.master);
        Zeroizing::new(serde_json::to_vec_pretty(&raw).expect("serializes"))
    }
}

/// One key file as listed by [`Repository::list_keys`].
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Its id (the name under `keys/`).
    pub id: Id,
    /// The parsed key file; `None` when it is not one this build reads.
    pub file: Option<KeyFile>,
    /// Why it can unlock nothing (unreadable, unknown version, invalid
    /// fields); `None` when it is usable.
    pub problem: Option<String>,
}

impl KeyEntry {
    /// Whether the key file can unlock the repository (given its passphrase).
    pub fn usable(&self) -> bool {
        self.problem.is_none()
    }
}

/// Store a plaintext JSON object named by its hash (key files).
async fn put_json_plain<T: Serialize>(storage: &dyn Storage, dir: &str, value: &T) -> Result<Id> {
    let bytes = serde_json::to_vec_pretty(value).expect("serializable");
    let id = Id::of_file(&bytes);
    storage.put(&layout::object_key(dir, &id), bytes).await?;
    Ok(id)
}
