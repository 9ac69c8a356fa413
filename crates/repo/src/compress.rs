//! Compression: zstd, skipped when it does not pay.
//!
//! Large blobs are first probed: a 64 KiB sample is compressed at level 1 and
//! if it does not shrink by at least 3% the blob is stored raw (already
//! compressed or random data). Otherwise the whole blob is compressed at the
//! repository's level and kept only if it saved at least 3%.

use crate::error::{Error, Result};

const PROBE: usize = 64 * 1024;

/// A reusable zstd compressor (one per worker thread).
pub struct Compressor {
    level: i32,
    full: zstd::bulk::Compressor<'static>,
    probe: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    /// A compressor at `level` (zstd levels 1..=19).
    pub fn new(level: i32) -> Self {
        Compressor {
            level,
            full: zstd::bulk::Compressor::new(level).expect("valid zstd level"),
            probe: zstd::bulk::Compressor::new(1).expect("valid zstd level"),
        }
    }

    /// The configured level.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Compressed bytes, or `None` when storing `data` raw is better.
    pub fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < 64 {
            return None;
        }
        if data.len() > 4 * PROBE {
            let mid = data.len() / 2;
            let sample = &data[mid..mid + PROBE];
            let probe = self.probe.compress(sample).ok()?;
            if !pays(probe.len(), sample.len()) {
                return None;
            }
        }
        let out = self.full.compress(data).ok()?;
        pays(out.len(), data.len()).then_some(out)
    }
}

fn pays(compressed: usize, raw: usize) -> bool {
    compressed * 100 < raw * 97
}

/// Decompress a blob whose uncompressed length is known from the index.
pub fn decompress(data: &[u8], raw_len: usize, what: &str) -> Result<Vec<u8>> {
    thread_local! {
        /// One decompression context per thread, reused for every blob.
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    let out = DCTX
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            slot.as_mut().expect("set above").decompress(data, raw_len)
        })
        .map_err(|e| Error::Corrupt(format!("{what}: zstd data is damaged: {e}")))?;
    if out.len() != raw_len {
        return Err(Error::Corrupt(format!(
            "{what}: decompressed to {} bytes, the index says {raw_len}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_compressed_random_is_not() {
        let mut c = Compressor::new(3);
        let text = "the quick brown fox jumps over the lazy dog\n".repeat(10_000);
        let out = c.compress(text.as_bytes()).expect("text compresses");
        assert!(out.len() < text.len() / 10);
        assert_eq!(decompress(&out, text.len(), "t").unwrap(), text.as_bytes());
        let random: Vec<u8> = (0..1_000_000u64)
            .map(|i| (i.wrapping_mul(0x9E3779B97F4A7C15) >> 56) as u8 ^ (i as u8).rotate_left(3))
            .collect();
        let noise: Vec<u8> = blake3::Hasher::new()
            .update(&random)
            .finalize_xof()
            .take(1_000_000);
        assert!(c.compress(&noise).is_none());
    }

    trait Take {
        fn take(self, n: usize) -> Vec<u8>;
    }
    impl Take for blake3::OutputReader {
        fn take(mut self, n: usize) -> Vec<u8> {
            let mut v = vec![0; n];
            self.fill(&mut v);
            v
        }
    }
}
