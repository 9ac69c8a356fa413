//! [`BlobWriter`]: the bounded, parallel pipeline that stores new blobs.
//!
//! ```text
//! add() [caller threads: hash + dedup]
//!   -> bounded queue -> N workers [compress + seal] -> pack builder (one per kind)
//!   -> bounded queue -> uploader [put pack; every 64 packs, put an index file]
//! finish(): flush packs, upload, write the last index file.
//! ```
//! Memory is bounded whatever the data size: about `2 x workers` chunks,
//! two packs being filled, and sealed packs waiting for or in upload of at
//! most two packs' size in bytes ([`InFlight`]: a worker closing a pack
//! waits for room before it takes the pack out). A pack also closes at
//! [`MAX_PACK_BLOBS`] blobs and an index file is written every
//! [`PACKS_PER_INDEX`] packs or [`BLOBS_PER_INDEX`] blobs, so no index file
//! (read whole when loading) grows with the repository.
//! Blobs already in the repository (or already queued) are skipped, which is
//! what makes a second backup of unchanged data nearly free.
//!
//! `add` blocks and must be called from blocking threads (not a runtime
//! worker): the uploader drives async storage with `Handle::block_on`.

use crate::compress::Compressor;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{encode_index_file, Index, PackRecord};
use crate::pack::{BlobKind, PackBuilder};
use crate::repository::{pack_key, Repository};
use lifeboat_storage::StorageError;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Packs per index file written during a long backup.
pub const PACKS_PER_INDEX: usize = 64;

/// An index file is also written once this many blobs are pending.
pub const BLOBS_PER_INDEX: usize = 1 << 16;

/// A pack closes at this many blobs even below its target size.
pub const MAX_PACK_BLOBS: usize = 1 << 16;

/// Bytes of sealed packs queued for or in upload, bounded by a budget.
struct InFlight {
    bytes: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

impl InFlight {
    /// Wait until `n` more bytes fit (always when nothing is in flight), then take them.
    fn acquire(&self, n: usize) {
        let mut bytes = self.bytes.lock().expect("in-flight lock");
        while *bytes > 0 && *bytes + n > self.limit {
            bytes = self.freed.wait(bytes).expect("in-flight lock");
        }
        *bytes += n;
    }

    fn release(&self, n: usize) {
        let mut bytes = self.bytes.lock().expect("in-flight lock");
        *bytes = bytes.saturating_sub(n);
        self.freed.notify_all();
    }
}

struct Job {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
}

/// Figures of what a writer stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Blobs passed to `add`.
    pub blobs: u64,
    /// Of those, new to the repository.
    pub new_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub new_bytes: u64,
    /// Bytes new blobs take in packs.
    pub stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
    /// Index files written.
    pub index_files: u64,
}

#[derive(Default)]
struct Counters {
    blobs: AtomicU64,
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    packs: AtomicU64,
    index_files: AtomicU64,
}

struct Shared {
    repo: Arc<Repository>,
    index: Arc<Index>,
    queued: Mutex<HashSet<Id>>,
    packers: Mutex<[PackBuilder; 2]>,
    in_flight: InFlight,
    error: Mutex<Option<Error>>,
    counters: Counters,
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().expect("error lock");
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn failed(&self) -> bool {
        self.error.lock().expect("error lock").is_some()
    }
}

/// Stores blobs into new packs; see the module docs.
pub struct BlobWriter {
    shared: Arc<Shared>,
    jobs: Option<SyncSender<Job>>,
    uploads: Option<SyncSender<(Id, Vec<u8>, PackRecord)>>,
    workers: Vec<JoinHandle<()>>,
    uploader: Option<JoinHandle<Vec<PackRecord>>>,
}

impl BlobWriter {
    /// Start a writer with one worker per core, plus one.
    pub fn new(repo: Arc<Repository>) -> Self {
        // One more than the cores, so a worker waiting on the pack lock or
        // the upload queue does not leave a core idle.
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
        Self::with_workers(repo, n)
    }

    /// Start a writer with `workers` compression threads.
    pub fn with_workers(repo: Arc<Repository>, workers: usize) -> Self {
        let pack_size = repo.config().pack_size as usize;
        let shared = Arc::new(Shared {
            index: repo.index(),
            repo,
            queued: Mutex::new(HashSet::new()),
            packers: Mutex::new([new_pack(pack_size), new_pack(pack_size)]),
            in_flight: InFlight {
                bytes: Mutex::new(0),
                freed: Condvar::new(),
                limit: 2 * pack_size,
            },
            error: Mutex::new(None),
            counters: Counters::default(),
        });
        let (job_tx, job_rx) = sync_channel::<Job>(2 * workers);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (up_tx, up_rx) = sync_channel(2);
        let workers = (0..workers)
            .map(|i| {
                let (shared, rx, up) = (shared.clone(), job_rx.clone(), up_tx.clone());
                std::thread::Builder::new()
                    .name(format!("lifeboat-seal-{i}"))
                    .spawn(move || worker(&shared, &rx, &up))
                    .expect("spawn worker thread")
            })
            .collect();
        let up_shared = shared.clone();
        let uploader = std::thread::Builder::new()
            .name("lifeboat-upload".into())
            .spawn(move || uploader(&up_shared, up_rx))
            .expect("spawn upload thread");
        BlobWriter {
            shared,
            jobs: Some(job_tx),
            uploads: Some(up_tx),
            workers,
            uploader: Some(uploader),
        }
    }

    /// The repository written to.
    pub fn repo(&self) -> &Arc<Repository> {
        &self.shared.repo
    }

    /// Store `data` unless the repository already has it; returns its id.
    pub fn add(&self, kind: BlobKind, data: Vec<u8>) -> Result<Id> {
        let id = self.shared.repo.keys().blob_id(&data);
        self.add_with_id(kind, id, data)?;
        Ok(id)
    }

    /// Like [`BlobWriter::add`] when the caller already computed the id.
    pub fn add_with_id(&self, kind: BlobKind, id: Id, data: Vec<u8>) -> Result<()> {
        let c = &self.shared.counters;
        c.blobs.fetch_add(1, Ordering::Relaxed);
        if self.shared.index.contains(&id)
            || !self.shared.queued.lock().expect("queued lock").insert(id)
        {
            return self.check();
        }
        // A repository with features this build cannot write (ro-compatible)
        // is refused here and again before each pack and index is stored,
        // whatever the caller checked.
        self.shared.repo.ensure_writable()?;
        c.new_blobs.fetch_add(1, Ordering::Relaxed);
        c.new_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let jobs = self.jobs.as_ref().expect("writer is open");
        if jobs.send(Job { kind, id, data }).is_err() {
            return Err(self.take_error());
        }
        self.check()
    }

    fn check(&self) -> Result<()> {
        if self.shared.failed() {
            Err(self.take_error())
        } else {
            Ok(())
        }
    }

    /// The error that stopped the pipeline, as the same kind (a full disk
    /// stays a full disk for the exit code); the original stays for `finish`.
    fn take_error(&self) -> Error {
        let slot = self.shared.error.lock().expect("error lock");
        match &*slot {
            Some(Error::Storage(StorageError::NoSpace { key, location })) => {
                Error::Storage(StorageError::NoSpace {
                    key: key.clone(),
                    location: location.clone(),
                })
            }
            Some(Error::Corrupt(m)) => Error::Corrupt(m.clone()),
            Some(e) => Error::Invalid(format!("backup aborted: {e}")),
            None => Error::Invalid("backup aborted: writer threads stopped".into()),
        }
    }

    /// Flush everything, write the index, and return the figures.
    /// After this returns Ok, every blob added is durable and indexed.
    pub fn finish(mut self) -> Result<WriteStats> {
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            w.join().expect("worker thread panicked");
        }
        let up = self.uploads.take().expect("open");
        let rest = std::mem::take(&mut *self.shared.packers.lock().expect("packers lock"));
        for builder in rest {
            if !builder.is_empty() {
                let taken = builder.len();
                self.shared.in_flight.acquire(taken);
                match seal_pack(&self.shared.repo, builder) {
                    Ok(pack) => {
                        let _ = up.send(pack);
                    }
                    Err(e) => {
                        // Nothing reaches the uploader: give the room back.
                        self.shared.in_flight.release(taken);
                        self.shared.fail(e);
                    }
                }
            }
        }
        drop(up);
        let records = self
            .uploader
            .take()
            .expect("open")
            .join()
            .expect("upload thread panicked");
        if let Some(e) = self.shared.error.lock().expect("error lock").take() {
            return Err(e);
        }
        if !records.is_empty() {
            write_index(&self.shared, &records)?;
        }
        let c = &self.shared.counters;
        Ok(WriteStats {
            blobs: c.blobs.load(Ordering::Relaxed),
            new_blobs: c.new_blobs.load(Ordering::Relaxed),
            new_bytes: c.new_bytes.load(Ordering::Relaxed),
            stored_bytes: c.stored_bytes.load(Ordering::Relaxed),
            packs: c.packs.load(Ordering::Relaxed),
            index_files: c.index_files.load(Ordering::Relaxed),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Abandoned without finish (an error upstream): stop the threads.
        // Packs already written stay unreferenced until prune removes them.
        drop(self.jobs.take());
        drop(self.uploads.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(u) = self.uploader.take() {
            let _ = u.join();
        }
    }
}

fn worker(
    shared: &Shared,
    jobs: &Mutex<Receiver<Job>>,
    uploads: &SyncSender<(Id, Vec<u8>, PackRecord)>,
) {
    let repo = &shared.repo;
    let mut compressor = Compressor::new(repo.config().compression_level);
    let pack_size = repo.config().pack_size as usize;
    loop {
        let job = match jobs.lock().expect("jobs lock").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if shared.failed() {
            continue;
        }
        let (sealed, compressed) = seal_blob(repo.keys(), &mut compressor, &job.id, &job.data);
        shared
            .counters
            .stored_bytes
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        let full = {
            let mut packers = shared.packers.lock().expect("packers lock");
            let builder = &mut packers[job.kind as usize];
            // Close the pack before a blob would take it past the target
            // size, so a pack's buffer never has to grow; wait for upload
            // room first, so a closed pack is never held waiting.
            let full = (!builder.is_empty()
                && (builder.len() + sealed.len() > pack_size || builder.blobs() >= MAX_PACK_BLOBS))
                .then(|| {
                    shared.in_flight.acquire(builder.len());
                    std::mem::replace(builder, new_pack(pack_size))
                });
            if let Err(e) = builder.add(job.kind, job.id, compressed, &sealed, job.data.len()) {
                shared.fail(e);
            }
            full
        };
        if let Some(builder) = full {
            let taken = builder.len();
            match seal_pack(repo, builder) {
                Ok(pack) => {
                    if uploads.send(pack).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // Nothing reaches the uploader: give the room back.
                    shared.in_flight.release(taken);
                    shared.fail(e);
                }
            }
        }
    }
}

/// An empty pack with room for `pack_size` bytes of blobs and its trailer.
fn new_pack(pack_size: usize) -> PackBuilder {
    PackBuilder::with_capacity(pack_size + (1 << 20))
}

/// Compress when it pays, then seal.
fn seal_blob(keys: &Keys, compressor: &mut Compressor, id: &Id, data: &[u8]) -> (Vec<u8>, bool) {
    let ad = crate::crypto::ad::blob(id);
    match compressor.compress(data) {
        Some(z) => (keys.seal(&ad, &z), true),
        None => (keys.seal(&ad, data), false),
    }
}

fn seal_pack(repo: &Repository, builder: PackBuilder) -> Result<(Id, Vec<u8>, PackRecord)> {
    let (id, bytes, blobs) = builder.finish(repo.keys())?;
    let record = PackRecord {
        id,
        size: bytes.len() as u64,
        blobs,
    };
    Ok((id, bytes, record))
}

fn uploader(shared: &Shared, rx: Receiver<(Id, Vec<u8>, PackRecord)>) -> Vec<PackRecord> {
    let mut pending = Vec::new();
    let mut pending_blobs = 0;
    for (id, bytes, record) in rx {
        let taken = blob_bytes(&record);
        let tree = record.blobs.iter().all(|b| b.kind == BlobKind::Tree);
        let stored = upload_pack(shared, &id, bytes, tree);
        shared.in_flight.release(taken);
        if !stored {
            continue;
        }
        pending_blobs += record.blobs.len();
        pending.push(record);
        if pending.len() >= PACKS_PER_INDEX || pending_blobs >= BLOBS_PER_INDEX {
            match write_index(shared, &pending) {
                Ok(()) => {
                    pending.clear();
                    pending_blobs = 0;
                }
                Err(e) => shared.fail(e),
            }
        }
    }
    pending
}

/// The blob bytes of a pack (what [`InFlight::acquire`] took for it).
fn blob_bytes(record: &PackRecord) -> usize {
    record
        .blobs
        .last()
        .map_or(0, |b| b.offset as usize + b.len as usize)
}

/// Store one pack unless the pipeline already failed; whether it was
/// stored. A tree pack also goes into the local cache, if any.
fn upload_pack(shared: &Shared, id: &Id, bytes: Vec<u8>, tree: bool) -> bool {
    if shared.failed() {
        return false;
    }
    let repo = &shared.repo;
    if let Err(e) = repo.ensure_writable() {
        shared.fail(e);
        return false;
    }
    let key = pack_key(id);
    let cached = repo.cache().filter(|_| tree).map(|c| (c, bytes.clone()));
    if let Err(e) = repo.runtime().block_on(repo.storage().put(&key, bytes)) {
        shared.fail(e.into());
        return false;
    }
    if let Some((cache, bytes)) = cached {
        cache.put(&key, &bytes);
    }
    shared.counters.packs.fetch_add(1, Ordering::Relaxed);
    true
}

fn write_index(shared: &Shared, records: &[PackRecord]) -> Result<()> {
    let repo = &shared.repo;
    repo.ensure_writable()?;
    repo.ensure_lock_held()?;
    let (name, bytes) = encode_index_file(repo.keys(), records)?;
    let key = crate::layout::index_key(&name.to_string());
    let cached = repo.cache().map(|c| (c, bytes.clone()));
    repo.runtime().block_on(repo.storage().put(&key, bytes))?;
    if let Some((cache, bytes)) = cached {
        cache.put(&key, &bytes);
    }
    shared.counters.index_files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sealed packs waiting for or in upload never exceed the byte budget
    /// (here two packs), however many workers close packs at once.
    #[test]
    fn packs_in_flight_stay_within_the_byte_budget() {
        let pack = 4;
        let budget = InFlight {
            bytes: Mutex::new(0),
            freed: Condvar::new(),
            limit: 2 * pack,
        };
        let most = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        budget.acquire(pack);
                        let now = *budget.bytes.lock().unwrap();
                        most.fetch_max(now as u64, Ordering::Relaxed);
                        budget.release(pack);
                    }
                });
            }
        });
        assert!(most.load(Ordering::Relaxed) <= 2 * pack as u64);
        assert_eq!(*budget.bytes.lock().unwrap(), 0);
        // One pack larger than the budget still goes when nothing else is in flight.
        budget.acquire(10 * pack);
        budget.release(10 * pack);
    }
}
