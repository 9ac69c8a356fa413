//! Packs: many sealed blobs in one file, with a sealed trailer listing them.
//!
//! Layout (docs/FORMAT.md, "Packs"):
//! `blob_0 .. blob_n-1 | sealed trailer | trailer length (u32 LE)`.
//! The trailer plaintext is `"LBPK" | version u8 | count u32` then, per blob,
//! `kind u8 | flags u8 | id [32] | sealed length u32 | plaintext length u32`;
//! blob offsets follow from the lengths. A pack's name is the BLAKE3 of its bytes.

use crate::crypto::{ad, Keys, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::id::Id;

const MAGIC: &[u8; 4] = b"LBPK";
const VERSION: u8 = 1;
const ENTRY_LEN: usize = 1 + 1 + 32 + 4 + 4;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    /// File or stream content.
    Data = 0,
    /// A directory tree (JSON).
    Tree = 1,
}

impl BlobKind {
    fn from_u8(b: u8, what: &str) -> Result<Self> {
        match b {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            _ => Err(Error::Unsupported(format!(
                "{what}: blob kind {b} is not known to this lifeboat"
            ))),
        }
    }
}

/// Flag bit: the blob's plaintext is zstd-compressed.
pub const FLAG_COMPRESSED: u8 = 1;

/// One blob inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub kind: BlobKind,
    /// Whether the sealed plaintext is compressed.
    pub compressed: bool,
    /// Blob id (keyed hash of the uncompressed plaintext).
    pub id: Id,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length.
    pub len: u32,
    /// Uncompressed plaintext length.
    pub raw_len: u32,
}

/// A length or count as the u32 of the on-disk formats; one that does not
/// fit is an error naming `what`, never silently truncated.
pub fn u32_field(value: usize, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::Invalid(format!(
            "{what} is {value}, more than the format's 32-bit field holds ({})",
            u32::MAX
        ))
    })
}

/// Collects sealed blobs into one pack.
#[derive(Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        PackBuilder {
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Append a sealed blob; a blob whose offset or lengths do not fit the
    /// format's u32 fields is refused (and the pack left as it was).
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        compressed: bool,
        sealed: &[u8],
        raw_len: usize,
    ) -> Result<()> {
        let what = |field: &str| format!("blob {}: {field}", id.short());
        let entry = PackEntry {
            kind,
            compressed,
            id,
            offset: u32_field(self.buf.len(), &what("offset in its pack"))?,
            len: u32_field(sealed.len(), &what("stored length"))?,
            raw_len: u32_field(raw_len, &what("plaintext length"))?,
        };
        self.entries.push(entry);
        self.buf.extend_from_slice(sealed);
        Ok(())
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Blobs added so far.
    pub fn blobs(&self) -> usize {
        self.entries.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seal the trailer and return the pack's bytes, its id and its entries.
    pub fn finish(mut self, keys: &Keys) -> Result<(Id, Vec<u8>, Vec<PackEntry>)> {
        let mut trailer = Vec::with_capacity(9 + self.entries.len() * ENTRY_LEN);
        trailer.extend_from_slice(MAGIC);
        trailer.push(VERSION);
        trailer.extend_from_slice(&u32_field(self.entries.len(), "pack blob count")?.to_le_bytes());
        for e in &self.entries {
            trailer.push(e.kind as u8);
            trailer.push(if e.compressed { FLAG_COMPRESSED } else { 0 });
            trailer.extend_from_slice(&e.id.0);
            trailer.extend_from_slice(&e.len.to_le_bytes());
            trailer.extend_from_slice(&e.raw_len.to_le_bytes());
        }
        let sealed = keys.seal(ad::PACK_TRAILER, &trailer);
        let trailer_len = u32_field(sealed.len(), "pack trailer length")?;
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&trailer_len.to_le_bytes());
        Ok((Id::of_file(&self.buf), self.buf, self.entries))
    }
}

/// Read a pack's blob list from its bytes (used by `verify --read-data`).
pub fn parse_pack(keys: &Keys, pack: &[u8], what: &str) -> Result<Vec<PackEntry>> {
    let corrupt = |m: &str| Error::Corrupt(format!("{what}: {m}"));
    if pack.len() < 4 {
        return Err(corrupt("too short to be a pack (truncated)"));
    }
    let tlen = u32::from_le_bytes(pack[pack.len() - 4..].try_into().expect("4 bytes")) as usize;
    let body = pack.len() - 4;
    if tlen < SEAL_OVERHEAD || tlen > body {
        return Err(corrupt(
            "trailer length out of range (truncated or damaged)",
        ));
    }
    let trailer = keys.open(
        &pack[body - tlen..body],
        ad::PACK_TRAILER,
        &format!("{what} trailer"),
    )?;
    if trailer.len() < 9 || &trailer[..4] != MAGIC {
        return Err(corrupt("trailer has an unknown magic"));
    }
    if trailer[4] != VERSION {
        return Err(Error::Unsupported(format!(
            "{what}: pack version {} is not known to this lifeboat (it reads version {VERSION})",
            trailer[4]
        )));
    }
    let count = u32::from_le_bytes(trailer[5..9].try_into().expect("4 bytes")) as usize;
    if trailer.len() != 9 + count * ENTRY_LEN {
        return Err(corrupt("trailer length does not match its blob count"));
    }
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(count);
    for raw in trailer[9..].chunks_exact(ENTRY_LEN) {
        let len = u32::from_le_bytes(raw[34..38].try_into().expect("4 bytes"));
        out.push(PackEntry {
            kind: BlobKind::from_u8(raw[0], what)?,
            compressed: raw[1] & FLAG_COMPRESSED != 0,
            id: Id(raw[2..34].try_into().expect("32 bytes")),
            offset: u32::try_from(offset)
                .map_err(|_| corrupt("blob offset beyond the 32-bit range"))?,
            len,
            raw_len: u32::from_le_bytes(raw[38..42].try_into().expect("4 bytes")),
        });
        offset += u64::from(len);
    }
    if offset != (body - tlen) as u64 {
        return Err(corrupt("blob lengths do not add up to the pack size"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn lengths_beyond_u32_are_refused_not_truncated() {
        assert_eq!(u32_field(u32::MAX as usize, "x").unwrap(), u32::MAX);
        let err = u32_field(u32::MAX as usize + 1, "index blob count").unwrap_err();
        assert!(
            err.to_string().contains("index blob count is 4294967296"),
            "{err}"
        );
        let mut pack = PackBuilder::default();
        let err = pack
            .add(
                BlobKind::Tree,
                Id([1; 32]),
                false,
                &[0; 48],
                u32::MAX as usize + 1,
            )
            .unwrap_err();
        assert!(err.to_string().contains("plaintext length"), "{err}");
        assert_eq!(
            (pack.is_empty(), pack.len()),
            (true, 0),
            "the pack is unchanged"
        );
        pack.add(BlobKind::Tree, Id([2; 32]), false, &[0; 48], 8)
            .unwrap();
        let keys = Keys::derive(&MasterKey::generate());
        let (_, bytes, entries) = pack.finish(&keys).unwrap();
        assert_eq!(parse_pack(&keys, &bytes, "p").unwrap(), entries);
    }
}
