//! The index: which pack holds each blob, at what offset and length.
//!
//! Index files (`index/<id>`) are written after the packs they describe; a
//! snapshot is written only after its index. In memory all index files are
//! merged into one sorted vector of fixed-size entries ([`IndexEntry`],
//! 52 bytes) searched by interpolation then binary search, plus a small pack table: memory is
//! bounded at about 52 bytes per blob (FORMAT.md, "Index").
//!
//! File layout (plaintext, then sealed): `"LBIX" | version u8 | packs u32`;
//! per pack `id [32] | size u64 | blobs u32`; per blob
//! `kind u8 | flags u8 | id [32] | offset u32 | len u32 | raw_len u32`.

use crate::crypto::{ad, Keys};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::{u32_field, BlobKind, PackEntry, FLAG_COMPRESSED};

const MAGIC: &[u8; 4] = b"LBIX";
const VERSION: u8 = 1;
const BLOB_LEN: usize = 1 + 1 + 32 + 4 + 4 + 4;

/// Interpolation probes before [`Index::find`] falls back to binary search.
const INTERPOLATION_ROUNDS: usize = 8;
/// Windows this small are binary searched right away.
const LINEAR_WINDOW: usize = 16;

/// The first 8 bytes of an id as a number, in the ids' sort order.
fn id_prefix(id: &Id) -> u64 {
    u64::from_be_bytes(id.0[..8].try_into().expect("8 bytes"))
}

/// A pack and the blobs it holds, as written to an index file.
#[derive(Debug, Clone)]
pub struct PackRecord {
    /// Pack id (file name).
    pub id: Id,
    /// Pack size in bytes.
    pub size: u64,
    /// Its blobs.
    pub blobs: Vec<PackEntry>,
}

/// One blob in the in-memory index (52 bytes).
#[derive(Debug, Clone, Copy)]
pub struct IndexEntry {
    /// Blob id.
    pub id: Id,
    /// Position of the pack in [`Index::packs`].
    pub pack: u32,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length.
    pub len: u32,
    /// Uncompressed plaintext length.
    pub raw_len: u32,
    /// Data or tree.
    pub kind: BlobKind,
    /// Compressed?
    pub compressed: bool,
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Pack id.
    pub pack: Id,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length.
    pub len: u32,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Data or tree.
    pub kind: BlobKind,
    /// Compressed?
    pub compressed: bool,
}

/// A pack known to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackInfo {
    /// Pack id.
    pub id: Id,
    /// Its size in bytes.
    pub size: u64,
}

/// The merged in-memory index.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<PackInfo>,
    pack_pos: std::collections::HashMap<Id, u32>,
    entries: Vec<IndexEntry>,
    sorted: bool,
}

impl Index {
    /// Add the packs of one index file (call [`Index::finalize`] after the last).
    pub fn add_records(&mut self, records: &[PackRecord]) {
        for rec in records {
            let pos = self.pack_position(rec.id, rec.size);
            for b in &rec.blobs {
                self.entries.push(IndexEntry {
                    id: b.id,
                    pack: pos,
                    offset: b.offset,
                    len: b.len,
                    raw_len: b.raw_len,
                    kind: b.kind,
                    compressed: b.compressed,
                });
            }
        }
        self.sorted = false;
    }

    /// Forget every location in these packs (call before [`Index::finalize`]):
    /// a backup must not deduplicate against tombstoned packs (FORMAT.md §18).
    pub fn drop_packs(&mut self, packs: &std::collections::HashSet<Id>) {
        if packs.is_empty() {
            return;
        }
        let dropped: Vec<bool> = self.packs.iter().map(|p| packs.contains(&p.id)).collect();
        self.entries.retain(|e| !dropped[e.pack as usize]);
    }

    /// Reserve room for `blobs` more entries, so loading does not double the vector.
    pub fn reserve(&mut self, blobs: usize) {
        self.entries.reserve_exact(blobs);
    }

    /// Check, open and add one sealed index file, straight into the merged
    /// entries (no intermediate records); a damaged file adds nothing.
    pub fn add_index_file(&mut self, keys: &Keys, name: &Id, sealed: Vec<u8>) -> Result<()> {
        let what = crate::layout::index_key(&name.to_string());
        let plain = open_index_file(keys, name, sealed, &what)?;
        // Validate the whole file first, then add: all or nothing.
        for_each_record(&plain, &what, |_| Ok(()))?;
        let mut pack = 0;
        for_each_record(&plain, &what, |item| {
            match item {
                Item::Pack(id, size) => pack = self.pack_position(id, size),
                Item::Blob(b) => self.entries.push(IndexEntry {
                    id: b.id,
                    pack,
                    offset: b.offset,
                    len: b.len,
                    raw_len: b.raw_len,
                    kind: b.kind,
                    compressed: b.compressed,
                }),
            }
            Ok(())
        })?;
        self.sorted = false;
        Ok(())
    }

    fn pack_position(&mut self, id: Id, size: u64) -> u32 {
        *self.pack_pos.entry(id).or_insert_with(|| {
            self.packs.push(PackInfo { id, size });
            (self.packs.len() - 1) as u32
        })
    }

    /// Sort for lookups; a blob stored twice (concurrent backups) keeps one location.
    pub fn finalize(&mut self) {
        self.entries.sort_unstable_by_key(|e| e.id);
        self.entries.dedup_by(|a, b| a.id == b.id);
        self.entries.shrink_to_fit();
        self.sorted = true;
    }

    /// Interpolation search, then binary search in what is left: blob ids
    /// are keyed hashes, spread evenly, so the id's first bytes predict its
    /// position; a few probes near it (each narrowing the window) replace
    /// the ~20 scattered cache misses of a plain binary search over
    /// millions of entries (a re-backup looks up every chunk of every
    /// unchanged file). Any spread of ids stays correct, only slower.
    fn find(&self, id: &Id) -> Option<&IndexEntry> {
        debug_assert!(self.sorted, "index used before finalize");
        let entries = &self.entries;
        let mut window = (0, entries.len());
        let key = id_prefix(id) as f64;
        let per_key = entries.len() as f64 / 2f64.powi(64);
        let mut guess = key * per_key;
        for _ in 0..INTERPOLATION_ROUNDS {
            if window.1 - window.0 <= LINEAR_WINDOW {
                break;
            }
            let pos = (guess as usize).clamp(window.0, window.1 - 1);
            if let Some(e) = self.probe(pos, id, &mut window) {
                return Some(e);
            }
            guess = pos as f64 + (key - id_prefix(&entries[pos].id) as f64) * per_key;
            if (guess - pos as f64).abs() < (LINEAR_WINDOW / 2) as f64 {
                // Close: bracket the guess from both sides.
                let half = LINEAR_WINDOW / 2;
                for p in [(guess as usize).saturating_sub(half), guess as usize + half] {
                    if window.1 - window.0 > LINEAR_WINDOW {
                        let p = p.clamp(window.0, window.1 - 1);
                        if let Some(e) = self.probe(p, id, &mut window) {
                            return Some(e);
                        }
                    }
                }
            }
        }
        let (lo, hi) = window;
        entries[lo..hi]
            .binary_search_by(|e| e.id.cmp(id))
            .ok()
            .map(|i| &entries[lo + i])
    }

    /// Compare the entry at `pos` with `id`: the entry when equal, else
    /// narrow `window` (lo inclusive, hi exclusive) to the side holding `id`.
    fn probe(&self, pos: usize, id: &Id, window: &mut (usize, usize)) -> Option<&IndexEntry> {
        let e = &self.entries[pos];
        match e.id.cmp(id) {
            std::cmp::Ordering::Equal => return Some(e),
            std::cmp::Ordering::Less => window.0 = pos + 1,
            std::cmp::Ordering::Greater => window.1 = pos,
        }
        None
    }

    /// Whether the blob is stored.
    pub fn contains(&self, id: &Id) -> bool {
        self.find(id).is_some()
    }

    /// Where the blob is stored.
    pub fn lookup(&self, id: &Id) -> Option<BlobLocation> {
        self.find(id).map(|e| self.location(e))
    }

    fn location(&self, e: &IndexEntry) -> BlobLocation {
        BlobLocation {
            pack: self.packs[e.pack as usize].id,
            offset: e.offset,
            len: e.len,
            raw_len: e.raw_len,
            kind: e.kind,
            compressed: e.compressed,
        }
    }

    /// Every pack the index refers to.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Approximate heap bytes held, for the memory figure in FORMAT.md.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<IndexEntry>()
            + self.packs.capacity() * std::mem::size_of::<PackInfo>()
            + self.pack_pos.capacity() * (std::mem::size_of::<Id>() + 4 + 8)
    }

    /// Entries of one pack, for mapping pack damage to blobs.
    pub fn blobs_in_pack(&self, pack: &Id) -> Vec<Id> {
        match self.pack_pos.get(pack) {
            Some(&pos) => self
                .entries
                .iter()
                .filter(|e| e.pack == pos)
                .map(|e| e.id)
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Serialize and seal an index file; returns its name and bytes.
pub fn encode_index_file(keys: &Keys, records: &[PackRecord]) -> Result<(Id, Vec<u8>)> {
    let blobs: usize = records.iter().map(|r| r.blobs.len()).sum();
    let mut out = Vec::with_capacity(9 + records.len() * 44 + blobs * BLOB_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&u32_field(records.len(), "index file pack count")?.to_le_bytes());
    for r in records {
        out.extend_from_slice(&r.id.0);
        out.extend_from_slice(&r.size.to_le_bytes());
        let count = u32_field(r.blobs.len(), &format!("pack {} blob count", r.id.short()))?;
        out.extend_from_slice(&count.to_le_bytes());
        for b in &r.blobs {
            out.push(b.kind as u8);
            out.push(if b.compressed { FLAG_COMPRESSED } else { 0 });
            out.extend_from_slice(&b.id.0);
            out.extend_from_slice(&b.offset.to_le_bytes());
            out.extend_from_slice(&b.len.to_le_bytes());
            out.extend_from_slice(&b.raw_len.to_le_bytes());
        }
    }
    let sealed = keys.seal(ad::INDEX, &out);
    Ok((Id::of_file(&sealed), sealed))
}

/// Check, open and parse an index file.
pub fn decode_index_file(keys: &Keys, name: &Id, sealed: &[u8]) -> Result<Vec<PackRecord>> {
    let what = crate::layout::index_key(&name.to_string());
    let plain = open_index_file(keys, name, sealed.to_vec(), &what)?;
    let mut records: Vec<PackRecord> = Vec::new();
    for_each_record(&plain, &what, |item| {
        match item {
            Item::Pack(id, size) => records.push(PackRecord {
                id,
                size,
                blobs: Vec::new(),
            }),
            Item::Blob(b) => records.last_mut().expect("pack first").blobs.push(b),
        }
        Ok(())
    })?;
    Ok(records)
}

/// Check the name and open; the sealed bytes are freed before the caller parses.
fn open_index_file(keys: &Keys, name: &Id, sealed: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    if Id::of_file(&sealed) != *name {
        return Err(Error::Corrupt(format!(
            "{what}: content does not match its name (damaged or truncated)"
        )));
    }
    keys.open(&sealed, ad::INDEX, what)
}

/// One record of an index file, in file order: a pack, then its blobs.
enum Item {
    Pack(Id, u64),
    Blob(PackEntry),
}

/// Parse an index file's plaintext, calling `f` for each pack and blob.
fn for_each_record(plain: &[u8], what: &str, mut f: impl FnMut(Item) -> Result<()>) -> Result<()> {
    let mut r = Reader {
        buf: plain,
        pos: 0,
        what,
    };
    if r.take(4)? != MAGIC {
        return Err(Error::Corrupt(format!("{what}: unknown magic")));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(Error::Unsupported(format!(
            "{what}: index file version {version} is not known to this lifeboat (it reads version {VERSION})"
        )));
    }
    let npacks = r.u32()? as usize;
    for _ in 0..npacks {
        let id = r.id()?;
        let size = r.u64()?;
        f(Item::Pack(id, size))?;
        let n = r.u32()? as usize;
        for _ in 0..n {
            let kind = r.u8()?;
            let flags = r.u8()?;
            let blob = PackEntry {
                kind: match kind {
                    0 => BlobKind::Data,
                    1 => BlobKind::Tree,
                    k => {
                        return Err(Error::Unsupported(format!(
                            "{what}: blob kind {k} is not known to this lifeboat"
                        )))
                    }
                },
                compressed: flags & FLAG_COMPRESSED != 0,
                id: r.id()?,
                offset: r.u32()?,
                len: r.u32()?,
                raw_len: r.u32()?,
            };
            f(Item::Blob(blob))?;
        }
    }
    if r.pos != plain.len() {
        return Err(Error::Corrupt(format!("{what}: trailing bytes")));
    }
    Ok(())
}

/// An upper bound on the blobs in index files of `bytes` stored bytes in total.
pub fn max_blobs_in(bytes: u64) -> usize {
    (bytes / BLOB_LEN as u64) as usize
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos + n;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| Error::Corrupt(format!("{}: ends early", self.what)))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn id(&mut self) -> Result<Id> {
        Ok(Id(self.take(32)?.try_into().expect("32 bytes")))
    }
}

/// The blobs of each pack, in pack order: positions into the index's
/// entries sorted by pack and offset (4 bytes per blob, no copy of the index).
pub struct ByPack<'a> {
    index: &'a Index,
    order: Vec<u32>,
    starts: Vec<u32>,
}

impl ByPack<'_> {
    /// The blobs of the pack at `pos` in [`Index::packs`], by offset.
    pub fn blobs(&self, pos: usize) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        let range = self.starts[pos] as usize..self.starts[pos + 1] as usize;
        self.order[range].iter().map(|&i| {
            let e = &self.index.entries[i as usize];
            (e.id, self.index.location(e))
        })
    }
}

impl Index {
    /// Group the blobs by pack (see [`ByPack`]).
    pub fn by_pack(&self) -> ByPack<'_> {
        let mut order: Vec<u32> = (0..self.entries.len() as u32).collect();
        order.sort_unstable_by_key(|&i| {
            let e = &self.entries[i as usize];
            (e.pack, e.offset)
        });
        let mut starts = vec![0u32; self.packs.len() + 1];
        for e in &self.entries {
            starts[e.pack as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        ByPack {
            index: self,
            order,
            starts,
        }
    }

    /// Every blob with its location.
    pub fn iter(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        self.entries.iter().map(|e| (e.id, self.location(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn entry_is_compact() {
        assert!(std::mem::size_of::<IndexEntry>() <= 52);
    }

    #[test]
    fn index_file_roundtrip_and_lookup() {
        let keys = Keys::derive(&MasterKey::generate());
        let blob = |i: u8| PackEntry {
            kind: BlobKind::Data,
            compressed: i & 1 == 0,
            id: Id([i; 32]),
            offset: u32::from(i) * 100,
            len: 100,
            raw_len: 90,
        };
        let recs = vec![PackRecord {
            id: Id([9; 32]),
            size: 1234,
            blobs: vec![blob(3), blob(1), blob(2)],
        }];
        let (name, bytes) = encode_index_file(&keys, &recs).unwrap();
        let back = decode_index_file(&keys, &name, &bytes).unwrap();
        let mut idx = Index::default();
        idx.add_records(&back);
        idx.finalize();
        assert_eq!(idx.len(), 3);
        let loc = idx.lookup(&Id([2; 32])).unwrap();
        assert_eq!(
            (loc.pack, loc.offset, loc.compressed),
            (Id([9; 32]), 200, true)
        );
        assert!(!idx.contains(&Id([7; 32])));
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(decode_index_file(&keys, &name, &bad).is_err());
    }

    fn index_of(ids: &[Id]) -> Index {
        let blobs = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PackEntry {
                kind: BlobKind::Data,
                compressed: false,
                id: *id,
                offset: i as u32,
                len: 1,
                raw_len: 1,
            })
            .collect();
        let mut idx = Index::default();
        idx.add_records(&[PackRecord {
            id: Id([0; 32]),
            size: 1,
            blobs,
        }]);
        idx.finalize();
        idx
    }

    /// The interpolation search finds every id and no other, whether the
    /// ids are spread evenly (hashes), share their first bytes, or bunch up
    /// at the ends of the range.
    #[test]
    fn lookup_finds_each_id_whatever_their_spread() {
        let hashed: Vec<Id> = (0..5000u32)
            .map(|i| Id::of_file(&i.to_le_bytes()))
            .collect();
        let shared_prefix: Vec<Id> = (0..5000u32)
            .map(|i| {
                let mut b = [7u8; 32];
                b[28..].copy_from_slice(&(i * 3).to_be_bytes());
                Id(b)
            })
            .collect();
        let skewed: Vec<Id> = (0..5000u64)
            .map(|i| {
                let mut b = [0u8; 32];
                let v = if i % 2 == 0 { i * i * i } else { u64::MAX - i };
                b[..8].copy_from_slice(&v.to_be_bytes());
                Id(b)
            })
            .collect();
        for ids in [hashed, shared_prefix, skewed] {
            let idx = index_of(&ids);
            for id in &ids {
                assert!(idx.contains(id), "{id}");
                let mut other = *id;
                other.0[31] ^= 0x80;
                other.0[30] ^= 0x55;
                assert_eq!(idx.contains(&other), ids.contains(&other), "{other}");
            }
            assert!(!idx.contains(&Id([0xff; 32])) || ids.contains(&Id([0xff; 32])));
            assert!(!idx.contains(&Id([0; 32])) || ids.contains(&Id([0; 32])));
        }
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    /// FORMAT.md states the in-memory cost per blob; this pins it down.
    #[test]
    fn index_memory_per_blob_is_under_60_bytes() {
        let blobs: Vec<PackEntry> = (0..200_000u32)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_le_bytes());
                id[4..8].copy_from_slice(&i.wrapping_mul(2654435761).to_le_bytes());
                PackEntry {
                    kind: BlobKind::Data,
                    compressed: true,
                    id: Id(id),
                    offset: i,
                    len: 1000,
                    raw_len: 2000,
                }
            })
            .collect();
        let records: Vec<PackRecord> = blobs
            .chunks(1000)
            .enumerate()
            .map(|(i, c)| PackRecord {
                id: Id([i as u8; 32]),
                size: 1 << 24,
                blobs: c.to_vec(),
            })
            .collect();
        let mut idx = Index::default();
        idx.add_records(&records);
        idx.finalize();
        let per_blob = idx.heap_bytes() as f64 / idx.len() as f64;
        assert!(per_blob < 60.0, "{per_blob} bytes per blob");
        assert_eq!(std::mem::size_of::<IndexEntry>(), 52);
    }
}
