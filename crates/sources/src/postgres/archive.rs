//! Reading a pg_dump custom-format archive as it streams past.
//!
//! [`ArchiveInspector`] is fed the bytes of `pg_dump -Fc -Z0` on their way
//! into the repository and, without buffering more than the header and TOC,
//! records every TOC entry and counts the rows (COPY lines) and bytes of each
//! table's data block. Those counts are exact and taken from the dump's own
//! snapshot, so a restore test can demand the same row counts without
//! scanning the database a second time.
//!
//! Layout (pg_backup_archiver.c / pg_backup_custom.c): `PGDMP`, version
//! bytes, int and offset sizes, format; compression (a byte from archive
//! version 1.15, an int before); creation time (7 ints), database name,
//! server and pg_dump versions; the TOC (per entry: dump id, had-dumper,
//! table oid, oid, tag, desc, section, defn, drop, copy statement,
//! namespace, tablespace, table AM (1.14+), relkind (1.16+), owner,
//! with-oids, dependency strings up to a NULL, then an offset); then data
//! blocks: a type byte (1 = table data, 3 = large objects), the dump id and
//! length-prefixed chunks ending with a zero length. Ints are a sign byte
//! followed by `int size` little-endian bytes; strings are an int length
//! (-1 = NULL) and the bytes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::toc::{Section, TocEntry};

/// What the inspector learned.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Archive format version, e.g. `1.14.0`.
    pub archive_version: String,
    /// Database name in the header.
    pub database: String,
    /// Server version that was dumped.
    pub server_version: String,
    /// pg_dump version.
    pub dump_version: String,
    /// Number of TOC entries.
    pub toc_entries: u64,
    /// Rows per table (`schema.name`), counted from the COPY data.
    pub table_rows: BTreeMap<String, u64>,
    /// Data bytes per table.
    pub table_bytes: BTreeMap<String, u64>,
    /// Large objects in the archive.
    pub large_objects: u64,
    /// Where each data block starts in the stream, in stream order (absent
    /// in snapshots taken before it was recorded). The header and TOC end
    /// where the first block starts; a block ends where the next starts
    /// (the last at the end of the stream). A restore uses it to read
    /// several tables' data from the repository at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_blocks: Option<Vec<DataBlock>>,
}

/// One data block of the archive: the dump id of its TOC entry and the
/// stream offset of its first byte (the block type).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataBlock {
    /// Dump id of the `TABLE DATA` or `BLOBS` entry.
    pub dump_id: i64,
    /// Byte offset in the archive stream.
    pub offset: u64,
}

enum State {
    Header,
    BlockType,
    BlockId { blobs: bool },
    ChunkLen { key: Option<String> },
    Chunk { key: Option<String>, left: u64 },
    BlobOid,
    BlobChunkLen,
    BlobChunk { left: u64 },
    Done,
    Failed(String),
}

/// Incremental parser; see the module docs.
pub struct ArchiveInspector {
    buf: Vec<u8>,
    state: State,
    int_size: usize,
    off_size: usize,
    version: (u8, u8, u8),
    /// TOC entries in archive order.
    entries: Vec<TocEntry>,
    /// Position in `entries` by dump id.
    by_id: BTreeMap<i64, usize>,
    summary: ArchiveSummary,
    /// Last bytes of the current table's data, to spot the COPY terminator.
    tail: Vec<u8>,
    /// Buffer size at which to try parsing the header again.
    next_header_try: usize,
    /// Stream bytes parsed so far (each byte counted once, when its step completes).
    consumed: u64,
    /// Offset of the data block being parsed.
    block_start: u64,
    /// Length of the header and TOC, once parsed.
    toc_len: Option<u64>,
}

impl Default for ArchiveInspector {
    fn default() -> Self {
        Self::new()
    }
}

/// Not enough bytes buffered yet.
struct NeedMore;

impl ArchiveInspector {
    /// A fresh inspector expecting the archive's first byte.
    pub fn new() -> Self {
        ArchiveInspector {
            buf: Vec::new(),
            state: State::Header,
            int_size: 4,
            off_size: 8,
            version: (0, 0, 0),
            entries: Vec::new(),
            by_id: BTreeMap::new(),
            summary: ArchiveSummary::default(),
            tail: Vec::new(),
            next_header_try: 4096,
            consumed: 0,
            block_start: 0,
            toc_len: None,
        }
    }

    /// Feed the next bytes of the stream.
    ///
    /// Row data is counted straight from `data`; small structures (lengths,
    /// ids) are parsed from `data` too and only the few bytes that straddle
    /// two calls are buffered. The header and TOC are buffered until they
    /// parse, retried only when the buffer has doubled (linear cost).
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Done | State::Failed(_) => return,
                State::Chunk { key, left } => {
                    let n = (*left).min(data.len() as u64) as usize;
                    if let Some(k) = key {
                        let lines = memchr::memchr_iter(b'\n', &data[..n]).count() as u64;
                        *self.summary.table_rows.entry(k.clone()).or_default() += lines;
                        *self.summary.table_bytes.entry(k.clone()).or_default() += n as u64;
                        self.tail.extend_from_slice(&data[n.saturating_sub(8)..n]);
                        let excess = self.tail.len().saturating_sub(8);
                        self.tail.drain(..excess);
                    }
                    *left -= n as u64;
                    self.consumed += n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        let key = key.take();
                        self.state = State::ChunkLen { key };
                    }
                }
                State::BlobChunk { left } => {
                    let n = (*left).min(data.len() as u64) as usize;
                    *left -= n as u64;
                    self.consumed += n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        self.state = State::BlobChunkLen;
                    }
                }
                State::Header => {
                    self.buf.extend_from_slice(data);
                    data = &[];
                    if self.buf.len() >= self.next_header_try {
                        self.next_header_try = self.buf.len() * 2;
                        self.step_buffered();
                    }
                }
                _ if self.buf.is_empty() => match self.try_step(data) {
                    Some(used) => data = &data[used..],
                    None => {
                        self.buf.extend_from_slice(data);
                        data = &[];
                    }
                },
                _ => {
                    let take = data.len().min(64);
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.step_buffered();
                }
            }
        }
    }

    /// One parse step on `input`; the bytes used, or `None` when more are needed.
    fn try_step(&mut self, input: &[u8]) -> Option<usize> {
        let state = std::mem::replace(&mut self.state, State::Done);
        if matches!(state, State::BlockType) {
            self.block_start = self.consumed;
        }
        let mut cur = Cursor {
            buf: input,
            pos: 0,
            int_size: self.int_size,
        };
        match self.step(&state, &mut cur) {
            Ok(next) => {
                let toc_read = matches!(state, State::Header) && matches!(next, State::BlockType);
                self.state = next;
                self.consumed += cur.pos as u64;
                if toc_read {
                    self.toc_len = Some(self.consumed);
                }
                Some(cur.pos)
            }
            Err(NeedMore) => {
                self.state = state;
                None
            }
        }
    }

    /// One parse step on the buffer; what is left after it is fed again.
    fn step_buffered(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        match self.try_step(&buf) {
            Some(used) => self.feed(&buf[used..]),
            None => self.buf = buf,
        }
    }

    fn step(&mut self, state: &State, cur: &mut Cursor) -> Result<State, NeedMore> {
        Ok(match state {
            State::Header => self.parse_header(cur)?,
            State::BlockType => match cur.byte()? {
                1 => State::BlockId { blobs: false },
                3 => State::BlockId { blobs: true },
                other => State::Failed(format!("unknown data block type {other}")),
            },
            State::BlockId { blobs: true } => {
                let id = cur.int()?;
                self.record_block(id);
                State::BlobOid
            }
            State::BlockId { blobs: false } => {
                let id = cur.int()?;
                self.record_block(id);
                let key = self
                    .by_id
                    .get(&id)
                    .map(|&i| &self.entries[i])
                    .filter(|e| e.desc == "TABLE DATA")
                    .map(|e| format!("{}.{}", e.schema(), e.tag));
                if let Some(k) = &key {
                    self.summary.table_rows.entry(k.clone()).or_default();
                }
                State::ChunkLen { key }
            }
            State::ChunkLen { key } => match cur.int()? {
                0 => {
                    self.end_table_data(key.as_deref());
                    State::BlockType
                }
                n if n > 0 => State::Chunk {
                    key: key.clone(),
                    left: n as u64,
                },
                n => State::Failed(format!("negative chunk length {n}")),
            },
            State::BlobOid => match cur.int()? {
                0 => State::BlockType,
                _ => {
                    self.summary.large_objects += 1;
                    State::BlobChunkLen
                }
            },
            State::BlobChunkLen => match cur.int()? {
                0 => State::BlobOid,
                n if n > 0 => State::BlobChunk { left: n as u64 },
                n => State::Failed(format!("negative chunk length {n}")),
            },
            State::Chunk { .. } | State::BlobChunk { .. } | State::Done | State::Failed(_) => {
                unreachable!("checked by the caller")
            }
        })
    }

    fn record_block(&mut self, dump_id: i64) {
        let offset = self.block_start;
        self.summary
            .data_blocks
            .get_or_insert_with(Vec::new)
            .push(DataBlock { dump_id, offset });
    }

    /// pg_dump ends each COPY block with `\\.` and two empty lines, which are not rows.
    fn end_table_data(&mut self, key: Option<&str>) {
        if let Some(k) = key {
            let terminator: u64 = if self.tail.ends_with(b"\\.\n\n\n") {
                3
            } else if self.tail.ends_with(b"\\.\n") {
                1
            } else {
                0
            };
            if let Some(rows) = self.summary.table_rows.get_mut(k) {
                *rows = rows.saturating_sub(terminator);
            }
        }
        self.tail.clear();
    }

    fn parse_header(&mut self, cur: &mut Cursor) -> Result<State, NeedMore> {
        if cur.take(5)? != b"PGDMP" {
            return Ok(State::Failed(
                "not a pg_dump archive (no PGDMP magic)".into(),
            ));
        }
        let (maj, min, rev) = (cur.byte()?, cur.byte()?, cur.byte()?);
        self.version = (maj, min, rev);
        cur.int_size = cur.byte()? as usize;
        let off_size = cur.byte()? as usize;
        let format = cur.byte()?;
        if format != 1 || !(1..=8).contains(&cur.int_size) {
            return Ok(State::Failed(format!(
                "unsupported archive (format {format}, int size {})",
                cur.int_size
            )));
        }
        let v = (maj, min);
        if v >= (1, 15) {
            cur.byte()?;
        } else {
            cur.int()?;
        }
        for _ in 0..7 {
            cur.int()?;
        }
        let database = cur.string()?.unwrap_or_default();
        let (server_version, dump_version) = (
            cur.string()?.unwrap_or_default(),
            cur.string()?.unwrap_or_default(),
        );
        let count = cur.int()?;
        let mut entries = Vec::with_capacity(count.clamp(0, 1 << 16) as usize);
        let mut section = Section::PreData;
        for _ in 0..count.max(0) {
            let entry = toc_entry(cur, v, off_size, section)?;
            section = entry.section;
            entries.push(entry);
        }
        self.int_size = cur.int_size;
        self.off_size = off_size;
        self.summary.archive_version = format!("{maj}.{min}.{rev}");
        self.summary.database = database;
        self.summary.server_version = server_version;
        self.summary.dump_version = dump_version;
        self.summary.toc_entries = entries.len() as u64;
        self.by_id = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.dump_id, i))
            .collect();
        self.entries = entries;
        self.summary.data_blocks = Some(Vec::new());
        Ok(State::BlockType)
    }

    /// The summary once the stream has ended; an error if it did not parse
    /// (a truncated or foreign stream).
    pub fn finish(mut self) -> Result<ArchiveSummary, String> {
        if matches!(self.state, State::Header) {
            self.step_buffered();
        }
        match self.state {
            State::Failed(e) => Err(e),
            State::BlockType if self.buf.is_empty() => Ok(self.summary),
            State::Done => Ok(self.summary),
            _ => Err("the archive ends in the middle of a block (truncated dump)".into()),
        }
    }

    /// The stream ended: parse a header and TOC still buffered (a small
    /// archive can end before the next parse attempt is due).
    pub fn end_of_stream(&mut self) {
        if matches!(self.state, State::Header) {
            self.step_buffered();
        }
    }

    /// Whether the header and TOC have been read.
    pub fn toc_complete(&self) -> bool {
        !matches!(self.state, State::Header)
    }

    /// Where the header and TOC end (the first data block starts), once parsed.
    pub fn toc_end(&self) -> Option<u64> {
        self.toc_len
    }

    /// The TOC entries read so far, in archive order.
    pub fn toc(&self) -> Vec<TocEntry> {
        self.entries.clone()
    }
}

/// Reads the TOC of the archive `reader` yields, stopping right after it
/// (the data blocks are not read).
pub fn read_toc(mut reader: impl std::io::Read) -> std::io::Result<Vec<TocEntry>> {
    let mut inspector = ArchiveInspector::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !inspector.toc_complete() {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            inspector.end_of_stream();
            break;
        }
        inspector.feed(&buf[..n]);
    }
    if let State::Failed(e) = &inspector.state {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.clone(),
        ));
    }
    Ok(inspector.toc())
}

/// One TOC entry of an archive of format version `v`; `previous` is the
/// section of the entry before it (what an entry of no section takes).
fn toc_entry(
    cur: &mut Cursor,
    v: (u8, u8),
    off_size: usize,
    previous: Section,
) -> Result<TocEntry, NeedMore> {
    let dump_id = cur.int()?;
    cur.int()?; // had dumper
    let catalog_oid = cur.string()?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let oid = cur.string()?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let tag = cur.string()?.unwrap_or_default();
    let desc = cur.string()?.unwrap_or_default();
    let section = Section::from_archive(cur.int()?, previous);
    for _ in 0..3 {
        cur.string()?; // defn, drop, copy statement
    }
    let namespace = cur.string()?.filter(|s| !s.is_empty());
    cur.string()?; // tablespace
    if v >= (1, 14) {
        cur.string()?; // table access method
    }
    if v >= (1, 16) {
        cur.int()?; // relkind
    }
    let owner = cur.string()?.filter(|s| !s.is_empty());
    cur.string()?; // with oids
    let mut deps = Vec::new();
    while let Some(dep) = cur.string()? {
        deps.extend(dep.trim().parse::<i64>().ok());
    }
    cur.byte()?; // offset flag
    cur.take(off_size)?;
    Ok(TocEntry {
        dump_id,
        catalog_oid,
        oid,
        desc,
        namespace,
        tag,
        owner,
        deps,
        section,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    int_size: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], NeedMore> {
        let s = self.buf.get(self.pos..self.pos + n).ok_or(NeedMore)?;
        self.pos += n;
        Ok(s)
    }
    fn byte(&mut self) -> Result<u8, NeedMore> {
        Ok(self.take(1)?[0])
    }
    fn int(&mut self) -> Result<i64, NeedMore> {
        let sign = self.byte()?;
        let mut v: i64 = 0;
        for (i, b) in self.take(self.int_size)?.iter().enumerate() {
            v |= i64::from(*b) << (8 * i);
        }
        Ok(if sign != 0 { -v } else { v })
    }
    fn string(&mut self) -> Result<Option<String>, NeedMore> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(self.take(len as usize)?).into_owned(),
        ))
    }
}
