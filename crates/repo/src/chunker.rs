//! Chunkers: where a stream or file is cut into blobs.
//!
//! Both chunkers implement [`Chunker`], and [`ChunkReader`] turns any
//! `Read` into a sequence of chunks with either of them.
//! - [`FastCdc`]: content-defined (FastCDC with normalized chunking), for
//!   streams such as dumps and config files: an insertion only moves the
//!   boundaries near it, so the rest of the stream still deduplicates. The
//!   gear table is derived from the repository key, so chunk boundaries (and
//!   the sizes they would leak) differ between repositories.
//! - [`FixedChunker`]: fixed-size, aligned chunks, for files whose pages
//!   change in place (PostgreSQL relation files).
//!
//! A [`CutHint`] adds one cut at a stream offset the producer learns while
//! the stream is read (the end of a PostgreSQL archive's header and TOC,
//! which hold the dump's timestamp), so what follows chunks the same in
//! every backup whatever precedes it.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Cuts data into chunks.
pub trait Chunker: Send + Sync {
    /// Length of the first chunk of `data`. `data` holds at least
    /// [`Chunker::max_size`] bytes unless the stream ends within it.
    fn cut(&self, data: &[u8]) -> usize;
    /// The largest chunk this chunker emits.
    fn max_size(&self) -> usize;
}

/// FastCDC with normalized chunking (level 2).
pub struct FastCdc {
    gear: [u64; 256],
    min: usize,
    avg: usize,
    max: usize,
    mask_hard: u64,
    mask_easy: u64,
}

impl FastCdc {
    /// A chunker with the given size bounds (`avg` a power of two) and gear seed.
    pub fn new(min: usize, avg: usize, max: usize, seed: &[u8; 32]) -> Self {
        assert!(
            min < avg && avg < max && avg.is_power_of_two(),
            "chunk sizes must be min < avg < max, avg a power of two"
        );
        let mut table = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(seed)
            .update(b"gear table")
            .finalize_xof()
            .fill(&mut table);
        let mut gear = [0u64; 256];
        for (i, g) in gear.iter_mut().enumerate() {
            *g = u64::from_le_bytes(table[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        let bits = avg.trailing_zeros();
        // The gear hash shifts left, so its high bits depend on the last 64
        // bytes: masks take the top bits.
        let top = |n: u32| !0u64 << (64 - n);
        FastCdc {
            gear,
            min,
            avg,
            max,
            mask_hard: top(bits + 2),
            mask_easy: top(bits - 2),
        }
    }
}

impl Chunker for FastCdc {
    fn cut(&self, data: &[u8]) -> usize {
        let n = data.len();
        if n <= self.min {
            return n;
        }
        let normal = self.avg.min(n);
        let end = self.max.min(n);
        let mut fp = 0u64;
        let mut i = self.min;
        while i < normal {
            fp = (fp << 1).wrapping_add(self.gear[data[i] as usize]);
            if fp & self.mask_hard == 0 {
                return i + 1;
            }
            i += 1;
        }
        while i < end {
            fp = (fp << 1).wrapping_add(self.gear[data[i] as usize]);
            if fp & self.mask_easy == 0 {
                return i + 1;
            }
            i += 1;
        }
        end
    }

    fn max_size(&self) -> usize {
        self.max
    }
}

/// Fixed-size chunks (the last one may be shorter).
pub struct FixedChunker {
    size: usize,
}

impl FixedChunker {
    /// Chunks of `size` bytes; `size` should be a multiple of the page size.
    pub fn new(size: usize) -> Self {
        assert!(size > 0);
        FixedChunker { size }
    }
}

impl Chunker for FixedChunker {
    fn cut(&self, data: &[u8]) -> usize {
        data.len().min(self.size)
    }

    fn max_size(&self) -> usize {
        self.size
    }
}

/// A stream offset at which a [`ChunkReader`] also cuts, set (once) by
/// whoever parses the stream as it is read. Shared by clones.
#[derive(Clone, Debug, Default)]
pub struct CutHint(Arc<AtomicU64>);

impl CutHint {
    /// A hint with no offset yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cut at `offset` (0 means no cut).
    pub fn set(&self, offset: u64) {
        self.0.store(offset, Ordering::Relaxed);
    }

    /// The offset, once set.
    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&o| o > 0)
    }
}

/// Reads a stream and yields its chunks, holding at most two maximal chunks in memory.
pub struct ChunkReader<'c, R> {
    reader: R,
    chunker: &'c dyn Chunker,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// Stream offset of `buf[start]`.
    pos: u64,
    hint: Option<CutHint>,
}

impl<'c, R: Read> ChunkReader<'c, R> {
    /// Chunk `reader` with `chunker`.
    pub fn new(reader: R, chunker: &'c dyn Chunker) -> Self {
        ChunkReader {
            reader,
            chunker,
            buf: Vec::new(),
            start: 0,
            eof: false,
            pos: 0,
            hint: None,
        }
    }

    /// Also cut at the offset `hint` holds when it is known before the
    /// chunk that spans it is cut (it is when the producer learns it
    /// within the two maximal chunks read ahead).
    pub fn with_cut_hint(mut self, hint: CutHint) -> Self {
        self.hint = Some(hint);
        self
    }

    /// Top the buffer up until it holds a maximal chunk or the stream ends.
    /// Reads into the buffer's spare capacity (no zero-filling), and grows
    /// the buffer only as far as the data needs, so small files stay cheap.
    fn fill(&mut self) -> io::Result<()> {
        let want = self.chunker.max_size();
        if self.eof || self.buf.len() - self.start >= want {
            return Ok(());
        }
        self.buf.drain(..self.start);
        self.start = 0;
        let need = (2 * want - self.buf.len()) as u64;
        let got = (&mut self.reader).take(need).read_to_end(&mut self.buf)?;
        if (got as u64) < need {
            self.eof = true;
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fill()?;
        let rest = &self.buf[self.start..];
        if rest.is_empty() {
            return Ok(None);
        }
        let mut n = self.chunker.cut(rest);
        if let Some(at) = self.hint.as_ref().and_then(CutHint::get) {
            if at > self.pos && at < self.pos + n as u64 {
                n = (at - self.pos) as usize;
            }
        }
        let chunk = rest[..n].to_vec();
        self.start += n;
        self.pos += n as u64;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; n];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    fn chunks(data: &[u8], c: &dyn Chunker) -> Vec<Vec<u8>> {
        let mut r = ChunkReader::new(data, c);
        let mut out = Vec::new();
        while let Some(ch) = r.next_chunk().unwrap() {
            out.push(ch);
        }
        out
    }

    #[test]
    fn fastcdc_respects_bounds_and_concatenates_back() {
        let c = FastCdc::new(16 * 1024, 64 * 1024, 256 * 1024, &[7; 32]);
        let data = pseudo_random(3_000_000, 1);
        let parts = chunks(&data, &c);
        assert_eq!(parts.concat(), data);
        for p in &parts[..parts.len() - 1] {
            assert!(p.len() >= 16 * 1024 && p.len() <= 256 * 1024);
        }
        let avg = data.len() / parts.len();
        assert!(avg > 32 * 1024 && avg < 128 * 1024, "average {avg}");
    }

    #[test]
    fn an_insertion_only_changes_nearby_chunks() {
        let c = FastCdc::new(16 * 1024, 64 * 1024, 256 * 1024, &[7; 32]);
        let data = pseudo_random(2_000_000, 2);
        let mut edited = data.clone();
        edited.splice(1_000_000..1_000_000, b"inserted bytes".iter().copied());
        let a: std::collections::HashSet<_> = chunks(&data, &c).into_iter().collect();
        let b = chunks(&edited, &c);
        let new = b.iter().filter(|ch| !a.contains(*ch)).count();
        assert!(new <= 2, "{new} chunks changed");
    }

    #[test]
    fn a_cut_hint_makes_what_follows_chunk_alike_whatever_precedes_it() {
        let c = FastCdc::new(16 * 1024, 64 * 1024, 256 * 1024, &[7; 32]);
        let body = pseudo_random(1_500_000, 5);
        let with_head = |head: &[u8]| {
            let data = [head, &body].concat();
            let hint = CutHint::new();
            hint.set(head.len() as u64);
            let mut r = ChunkReader::new(&data[..], &c).with_cut_hint(hint);
            let mut out = Vec::new();
            while let Some(ch) = r.next_chunk().unwrap() {
                out.push(ch);
            }
            assert_eq!(out.concat(), data);
            out
        };
        let a = with_head(&pseudo_random(40_000, 6));
        let b = with_head(&pseudo_random(41_234, 8));
        assert_eq!(a[0].len(), 40_000);
        assert_eq!(b[0].len(), 41_234);
        assert_eq!(a[1..], b[1..], "the chunks after the hint differ");
    }

    #[test]
    fn different_seeds_cut_differently() {
        let data = pseudo_random(1_000_000, 3);
        let a = chunks(
            &data,
            &FastCdc::new(16 * 1024, 64 * 1024, 256 * 1024, &[1; 32]),
        );
        let b = chunks(
            &data,
            &FastCdc::new(16 * 1024, 64 * 1024, 256 * 1024, &[2; 32]),
        );
        assert_ne!(
            a.iter().map(Vec::len).collect::<Vec<_>>(),
            b.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn fixed_chunks_are_aligned() {
        let data = pseudo_random(100_000, 4);
        let parts = chunks(&data, &FixedChunker::new(8192));
        assert_eq!(parts.len(), 13);
        assert!(parts[..12].iter().all(|p| p.len() == 8192));
        assert_eq!(parts.concat(), data);
        assert!(chunks(&[], &FixedChunker::new(8192)).is_empty());
    }
}
