//! [`ContentReader`]: a file's or stream's content as `std::io::Read`,
//! fetching blobs ahead in parallel while keeping their order.
//!
//! At most `window` blobs are in flight or waiting, so memory stays bounded
//! (window x 8 MiB at worst). Each blob is checked against its id. Use from
//! blocking threads only (it drives async storage with `block_on`).

use crate::error::{Error, Result};
use crate::id::Id;
use crate::repository::Repository;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

type Fetched = (usize, Result<Vec<u8>>);
/// The fetch pool: where requests go and results come back.
/// Read-ahead threads: jobs out, results back, handles to join on drop.
struct Pool {
    jobs: Option<Sender<(usize, Id)>>,
    results: Receiver<Fetched>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Reads the concatenated content of a list of blobs.
pub struct ContentReader {
    repo: Arc<Repository>,
    ids: Vec<Id>,
    window: usize,
    dispatched: usize,
    emitted: usize,
    ready: BTreeMap<usize, Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    pool: Option<Pool>,
}

impl ContentReader {
    /// Read `ids` in order, up to `threads` blobs in parallel.
    pub fn new(repo: Arc<Repository>, ids: Vec<Id>, threads: usize) -> Self {
        let threads = threads.clamp(1, 16);
        let pool = (ids.len() > 1 && threads > 1).then(|| spawn_pool(&repo, threads));
        ContentReader {
            repo,
            ids,
            window: 2 * threads,
            dispatched: 0,
            emitted: 0,
            ready: BTreeMap::new(),
            current: Vec::new(),
            pos: 0,
            pool,
        }
    }

    /// The next blob's bytes, or `None` at the end.
    pub fn next_blob(&mut self) -> Result<Option<Vec<u8>>> {
        if self.emitted == self.ids.len() {
            return Ok(None);
        }
        let Some(Pool {
            jobs: Some(jobs),
            results,
            ..
        }) = &self.pool
        else {
            let id = self.ids[self.emitted];
            self.emitted += 1;
            return self.repo.read_blob_blocking(&id).map(Some);
        };
        while self.dispatched < self.ids.len() && self.dispatched < self.emitted + self.window {
            jobs.send((self.dispatched, self.ids[self.dispatched]))
                .map_err(|_| Error::Invalid("read-ahead threads stopped".into()))?;
            self.dispatched += 1;
        }
        loop {
            if let Some(r) = self.ready.remove(&self.emitted) {
                self.emitted += 1;
                return r.map(Some);
            }
            let (seq, r) = results
                .recv()
                .map_err(|_| Error::Invalid("read-ahead threads stopped".into()))?;
            self.ready.insert(seq, r);
        }
    }
}

fn spawn_pool(repo: &Arc<Repository>, threads: usize) -> Pool {
    let (job_tx, job_rx) = channel::<(usize, Id)>();
    let (res_tx, res_rx) = channel();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let handles = (0..threads)
        .map(|_| {
            let (repo, job_rx, res_tx) = (repo.clone(), job_rx.clone(), res_tx.clone());
            std::thread::spawn(move || loop {
                let job = job_rx.lock().expect("jobs lock").recv();
                let Ok((seq, id)) = job else { return };
                if res_tx.send((seq, repo.read_blob_blocking(&id))).is_err() {
                    return;
                }
            })
        })
        .collect();
    Pool {
        jobs: Some(job_tx),
        results: res_rx,
        threads: handles,
    }
}

impl Drop for ContentReader {
    /// Stop the read-ahead threads and wait for them, so none is still
    /// reading when the caller (or the process) moves on after an error.
    fn drop(&mut self) {
        if let Some(mut pool) = self.pool.take() {
            drop(pool.jobs.take());
            for t in pool.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

impl Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.next_blob().map_err(io::Error::other)? {
                Some(b) => {
                    self.current = b;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
