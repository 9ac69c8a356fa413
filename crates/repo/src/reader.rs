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
type Pool = (Sender<(usize, Id)>, Receiver<Fetched>);

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
        let Some((jobs, results)) = &self.pool else {
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

fn spawn_pool(repo: &Arc<Repository>, threads: usize) -> (Sender<(usize, Id)>, Receiver<Fetched>) {
    let (job_tx, job_rx) = channel::<(usize, Id)>();
    let (res_tx, res_rx) = channel();
    let job_rx = Arc::new(Mutex::new(job_rx));
    for _ in 0..threads {
        let (repo, job_rx, res_tx) = (repo.clone(), job_rx.clone(), res_tx.clone());
        std::thread::spawn(move || loop {
            let job = job_rx.lock().expect("jobs lock").recv();
            let Ok((seq, id)) = job else { return };
            if res_tx.send((seq, repo.read_blob_blocking(&id))).is_err() {
                return;
            }
        });
    }
    (job_tx, res_rx)
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
