//! Property tests of the write path and its inverse:
//! chunk -> (compress) -> seal -> pack -> parse -> open -> (decompress),
//! for arbitrary data, chunker parameters and keys.
//!
//! Case counts are kept modest so the suite stays fast.

use lifeboat_repo::chunker::{ChunkReader, Chunker, FastCdc, FixedChunker};
use lifeboat_repo::compress::{decompress, Compressor};
use lifeboat_repo::crypto::{ad, Keys, MasterKey, SEAL_OVERHEAD};
use lifeboat_repo::pack::{parse_pack, BlobKind, PackBuilder, PackEntry};
use lifeboat_repo::{BlobWriter, Error, Id, KdfParams, KeyMeta, Repository};
use lifeboat_storage::local::LocalStorage;
use lifeboat_storage::Storage;
use proptest::prelude::*;
use std::io::Read;
use std::sync::Arc;

/// A reader that hands out the data in the given (cycled) read sizes, so
/// the chunk reader's buffering is exercised with short reads.
struct Trickle<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = self.sizes[self.n % self.sizes.len()].max(1);
        self.n += 1;
        let k = want.min(buf.len()).min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

fn chunk_all(reader: impl Read, c: &dyn Chunker) -> Vec<Vec<u8>> {
    let mut r = ChunkReader::new(reader, c);
    let mut out = Vec::new();
    while let Some(ch) = r.next_chunk().expect("in-memory reads do not fail") {
        assert!(!ch.is_empty(), "the chunk reader yielded an empty chunk");
        out.push(ch);
    }
    out
}

/// Data with both random and repetitive stretches (so some chunks compress).
fn data_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4096),
            (any::<u8>(), 0usize..8192).prop_map(|(b, n)| vec![b; n]),
            (0usize..200).prop_map(|n| b"lifeboat repeats itself. ".repeat(n)),
        ],
        0..(max / 4096).max(1),
    )
    .prop_map(|parts| parts.concat())
}

/// Chunker bounds: min < avg < max, avg a power of two (as the config requires).
fn cdc_params() -> impl Strategy<Value = (usize, usize, usize)> {
    (6u32..13, 1usize..100, 1usize..4).prop_map(|(bits, min_pct, max_mul)| {
        let avg = 1usize << bits;
        let min = (avg * min_pct / 100).clamp(1, avg - 1);
        let max = avg * (max_mul + 1);
        (min, avg, max)
    })
}

fn keys(seed: [u8; 32]) -> Keys {
    Keys::derive(&MasterKey::from_bytes(seed))
}

/// Compress when it pays, then seal (what the writer does).
fn seal_blob(keys: &Keys, z: &mut Compressor, data: &[u8]) -> (Vec<u8>, bool) {
    let ad = ad::blob(&keys.blob_id(data));
    match z.compress(data) {
        Some(c) => (keys.seal(&ad, &c), true),
        None => (keys.seal(&ad, data), false),
    }
}

/// Open, decompress and check the id of one pack entry (what the reader does).
fn open_entry(keys: &Keys, pack: &[u8], e: &PackEntry) -> Result<Vec<u8>, Error> {
    let sealed = &pack[e.offset as usize..(e.offset + e.len) as usize];
    let plain = keys.open(sealed, &ad::blob(&e.id), "blob")?;
    let data = if e.compressed {
        decompress(&plain, e.raw_len as usize, "blob")?
    } else {
        plain
    };
    if keys.blob_id(&data) != e.id {
        return Err(Error::Corrupt("id mismatch".into()));
    }
    Ok(data)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fastcdc_chunks_concatenate_to_the_input_within_bounds(
        data in data_strategy(160 * 1024),
        (min, avg, max) in cdc_params(),
        seed in any::<[u8; 32]>(),
        sizes in prop::collection::vec(1usize..5000, 1..8),
    ) {
        let c = FastCdc::new(min, avg, max, &seed);
        let whole = chunk_all(&data[..], &c);
        prop_assert_eq!(whole.concat(), data.clone());
        if let Some((last, rest)) = whole.split_last() {
            for ch in rest {
                prop_assert!(ch.len() > min && ch.len() <= max,
                    "chunk of {} bytes outside ({min}, {max}]", ch.len());
            }
            prop_assert!(!last.is_empty() && last.len() <= max);
        }
        // Boundaries depend on content only, not on how the reader delivers it.
        let trickled = chunk_all(Trickle { data: &data, sizes, n: 0 }, &c);
        prop_assert_eq!(trickled, whole);
    }

    #[test]
    fn fixed_chunks_are_full_sized_except_the_last(
        data in data_strategy(64 * 1024),
        size in 1usize..20_000,
        sizes in prop::collection::vec(1usize..5000, 1..8),
    ) {
        let c = FixedChunker::new(size);
        let parts = chunk_all(Trickle { data: &data, sizes, n: 0 }, &c);
        prop_assert_eq!(parts.concat(), data.clone());
        prop_assert_eq!(parts.len(), data.len().div_ceil(size));
        if let Some((_, rest)) = parts.split_last() {
            prop_assert!(rest.iter().all(|p| p.len() == size));
        }
    }

    #[test]
    fn sealed_blobs_open_to_the_same_bytes_and_any_flipped_byte_fails(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        seed in any::<[u8; 32]>(),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let k = keys(seed);
        let sealed = k.seal(ad::INDEX, &data);
        prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
        prop_assert_eq!(k.open(&sealed, ad::INDEX, "t").unwrap(), data.clone());
        let mut bad = sealed.clone();
        bad[pos.index(sealed.len())] ^= 1 << bit;
        prop_assert!(matches!(k.open(&bad, ad::INDEX, "t"), Err(Error::Corrupt(_))));
        prop_assert!(k.open(&sealed[..sealed.len() - 1], ad::INDEX, "t").is_err());
        let mut other_seed = seed;
        other_seed[0] ^= 1;
        prop_assert!(keys(other_seed).open(&sealed, ad::INDEX, "t").is_err());
    }

    #[test]
    fn compression_round_trips_and_is_used_only_when_it_pays(
        data in data_strategy(300 * 1024),
        level in 1i32..6,
    ) {
        let mut z = Compressor::new(level);
        if let Some(c) = z.compress(&data) {
            prop_assert!(c.len() * 100 < data.len() * 97);
            prop_assert_eq!(decompress(&c, data.len(), "t").unwrap(), data.clone());
            // A wrong recorded length is detected, not silently accepted.
            prop_assert!(decompress(&c, data.len() + 1, "t").is_err());
        }
    }

    #[test]
    fn chunk_seal_pack_parse_open_round_trips(
        data in data_strategy(200 * 1024),
        (min, avg, max) in cdc_params(),
        seed in any::<[u8; 32]>(),
        extra_trees in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..4),
    ) {
        let k = keys(seed);
        let c = FastCdc::new(min, avg, max, &k.chunker_seed);
        let mut z = Compressor::new(3);
        let mut pack = PackBuilder::default();
        let mut content = Vec::new();
        for ch in chunk_all(&data[..], &c) {
            let id = k.blob_id(&ch);
            let (sealed, compressed) = seal_blob(&k, &mut z, &ch);
            pack.add(BlobKind::Data, id, compressed, &sealed, ch.len()).unwrap();
            content.push(id);
        }
        for t in &extra_trees {
            let (sealed, compressed) = seal_blob(&k, &mut z, t);
            pack.add(BlobKind::Tree, k.blob_id(t), compressed, &sealed, t.len()).unwrap();
        }
        let (pack_id, bytes, entries) = pack.finish(&k).unwrap();
        prop_assert_eq!(pack_id, Id::of_file(&bytes));
        let parsed = parse_pack(&k, &bytes, "pack").unwrap();
        prop_assert_eq!(&parsed, &entries);

        // Reassemble the stream from the parsed entries.
        let mut out = Vec::new();
        for (e, id) in parsed.iter().zip(&content) {
            prop_assert_eq!(e.kind, BlobKind::Data);
            prop_assert_eq!(&e.id, id);
            out.extend(open_entry(&k, &bytes, e).unwrap());
        }
        prop_assert_eq!(out, data.clone());
        for (e, t) in parsed[content.len()..].iter().zip(&extra_trees) {
            prop_assert_eq!(e.kind, BlobKind::Tree);
            prop_assert_eq!(&open_entry(&k, &bytes, e).unwrap(), t);
        }

        // Another repository's keys cannot read the pack.
        let mut other = seed;
        other[31] ^= 0x80;
        prop_assert!(parse_pack(&keys(other), &bytes, "pack").is_err());
        // A truncated pack never parses.
        for cut in [1usize, 4, SEAL_OVERHEAD] {
            if cut < bytes.len() {
                prop_assert!(parse_pack(&k, &bytes[..bytes.len() - cut], "pack").is_err());
            }
        }
    }

    #[test]
    fn a_flipped_byte_in_a_pack_breaks_exactly_what_it_hits(
        blobs in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..3000), 1..6),
        seed in any::<[u8; 32]>(),
        pos in any::<prop::sample::Index>(),
    ) {
        let k = keys(seed);
        let mut z = Compressor::new(3);
        let mut pack = PackBuilder::default();
        for b in &blobs {
            let (sealed, compressed) = seal_blob(&k, &mut z, b);
            pack.add(BlobKind::Data, k.blob_id(b), compressed, &sealed, b.len()).unwrap();
        }
        let (_, bytes, entries) = pack.finish(&k).unwrap();
        let at = pos.index(bytes.len());
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        let body: usize = entries.iter().map(|e| e.len as usize).sum();
        if at >= body {
            // Trailer or its length: the pack no longer parses.
            prop_assert!(parse_pack(&k, &bad, "pack").is_err());
        } else {
            prop_assert_eq!(parse_pack(&k, &bad, "pack").unwrap(), entries.clone());
            for (e, b) in entries.iter().zip(&blobs) {
                let hit = (e.offset as usize..(e.offset + e.len) as usize).contains(&at);
                match open_entry(&k, &bad, e) {
                    Ok(got) => prop_assert!(!hit && &got == b),
                    Err(err) => prop_assert!(hit && matches!(err, Error::Corrupt(_))),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The real pipeline: `BlobWriter` into a local repository, then
    /// `read_blob` after reloading the index; every stored pack parses.
    #[test]
    fn blob_writer_then_read_blob_round_trips_through_a_local_repository(
        streams in prop::collection::vec(data_strategy(96 * 1024), 1..4),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
            let fast = KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 };
            let repo = Repository::init(storage.clone(), b"pw", fast, KeyMeta::default())
                .await
                .unwrap();
            let writer_repo = repo.clone();
            let ids_and_data = tokio::task::spawn_blocking(move || {
                let w = BlobWriter::with_workers(writer_repo.clone(), 2);
                let c = FastCdc::new(1024, 4096, 16384, &writer_repo.keys().chunker_seed);
                let mut out = Vec::new();
                for s in &streams {
                    for ch in chunk_all(&s[..], &c) {
                        let id = w.add(BlobKind::Data, ch.clone()).unwrap();
                        out.push((id, ch));
                    }
                }
                let stats = w.finish().unwrap();
                (out, stats)
            })
            .await
            .unwrap();
            let (blobs, stats) = ids_and_data;
            let distinct: std::collections::HashSet<_> = blobs.iter().map(|(id, _)| *id).collect();
            assert_eq!(stats.new_blobs as usize, distinct.len());

            let reopened = Repository::open(
                storage.clone(),
                lifeboat_repo::Credentials::Password(b"pw".to_vec().into()),
            )
            .await
            .unwrap();
            reopened.load_index().await.unwrap();
            assert_eq!(reopened.index().len(), distinct.len());
            for (id, data) in &blobs {
                assert_eq!(&reopened.read_blob(id).await.unwrap(), data);
            }
            for meta in storage.list("data/").await.unwrap() {
                let bytes = storage.get(&meta.key).await.unwrap();
                assert!(meta.key.ends_with(&Id::of_file(&bytes).to_string()));
                parse_pack(reopened.keys(), &bytes, &meta.key).unwrap();
            }
        });
    }
}
