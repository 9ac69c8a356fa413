//! Archived PostgreSQL WAL files (docs/FORMAT.md §14): one object per file,
//! never packed and never indexed, so archiving is one write and fetching
//! one read.
//!
//! - key `wal/<system-id>/<timeline>/<name>`: the cluster's system
//!   identifier (decimal, as `pg_controldata` prints it) keeps two clusters
//!   archiving into one repository apart;
//! - content `header || seal(ad, body)`, the 46-byte plaintext header
//!   carrying the plaintext length and its keyed hash, so a re-push is
//!   compared with the stored file by reading the header only;
//! - written with `put_if_absent`: never an overwrite.

use crate::compress::Compressor;
use crate::error::{Error, Result};
use crate::repository::Repository;
use lifeboat_storage::StorageError;

/// Length of the plaintext header.
pub const HEADER_LEN: usize = 46;
const MAGIC: &[u8; 4] = b"LBWL";
const VERSION: u8 = 1;
const FLAG_ZSTD: u8 = 1;
const ZSTD_LEVEL: i32 = 3;

/// A WAL file name PostgreSQL archives: a segment (`000000010000000000000003`),
/// a timeline history file (`00000002.history`) or a backup label
/// (`000000010000000000000003.00000028.backup`), and a partial segment
/// (`….partial`) left at a timeline switch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WalName {
    name: String,
}

impl WalName {
    /// Parse a file name (no directory); anything else is refused.
    pub fn parse(name: &str) -> Result<Self> {
        if is_wal_name(name) {
            Ok(WalName { name: name.into() })
        } else {
            Err(Error::Invalid(format!(
                "{name:?} is not a WAL file name (24 hex digits, optionally .partial or .<offset>.backup, or <timeline>.history)"
            )))
        }
    }

    /// The file name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The 8 hex digits of its timeline.
    pub fn timeline(&self) -> &str {
        &self.name[..8]
    }

    /// Whether this is a plain segment (not history, backup label or partial).
    pub fn is_segment(&self) -> bool {
        self.name.len() == 24
    }

    /// The timeline as a number.
    pub fn timeline_id(&self) -> u32 {
        u32::from_str_radix(self.timeline(), 16).unwrap_or(0)
    }

    /// The absolute segment number of a segment (or of the segment a
    /// backup label or partial segment belongs to) for `segment_size`-byte
    /// segments: PostgreSQL names segment `n` `<tl><n / per log><n % per log>`
    /// with `0x1_0000_0000 / segment_size` segments per "log", so the segment
    /// after `…000000FF` (16 MiB) is the next log's `…00000000`. `None` for a
    /// history file.
    pub fn segment_number(&self, segment_size: u64) -> Option<u64> {
        if self.name.len() < 24 || self.name.ends_with(".history") {
            return None;
        }
        let log = u64::from_str_radix(&self.name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&self.name[16..24], 16).ok()?;
        Some(log * segments_per_log(segment_size) + seg)
    }
}

/// Segments per "log" (the middle 8 digits of a segment name).
pub fn segments_per_log(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size.max(1)
}

/// The name of segment number `segno` on `timeline` (see
/// [`WalName::segment_number`]).
pub fn segment_name(timeline: u32, segno: u64, segment_size: u64) -> String {
    let per = segments_per_log(segment_size);
    format!("{timeline:08X}{:08X}{:08X}", segno / per, segno % per)
}

fn hex_upper(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

fn is_wal_name(name: &str) -> bool {
    let seg = |s: &str| s.len() == 24 && hex_upper(s);
    if let Some(tl) = name.strip_suffix(".history") {
        return tl.len() == 8 && hex_upper(tl);
    }
    if let Some(s) = name.strip_suffix(".partial") {
        return seg(s);
    }
    if let Some(rest) = name.strip_suffix(".backup") {
        return match rest.split_once('.') {
            Some((s, off)) => seg(s) && off.len() == 8 && hex_upper(off),
            None => false,
        };
    }
    seg(name)
}

/// The storage prefix of one cluster's WAL.
pub fn cluster_prefix(system_id: u64) -> String {
    format!("wal/{system_id}/")
}

/// The storage key of a WAL file.
pub fn key(system_id: u64, name: &WalName) -> String {
    format!("wal/{system_id}/{}/{}", name.timeline(), name.as_str())
}

/// The associated data of its seal: the key without `wal/`.
pub fn ad(system_id: u64, name: &WalName) -> Vec<u8> {
    format!(
        "lifeboat:wal:{system_id}/{}/{}",
        name.timeline(),
        name.as_str()
    )
    .into_bytes()
}

/// The plaintext header of a stored WAL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Body is zstd-compressed.
    pub zstd: bool,
    /// Length of the plaintext.
    pub len: u64,
    /// Keyed BLAKE3 of the plaintext (WAL hash key).
    pub hash: [u8; 32],
}

impl Header {
    /// The 46 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4] = VERSION;
        out[5] = if self.zstd { FLAG_ZSTD } else { 0 };
        out[6..14].copy_from_slice(&self.len.to_le_bytes());
        out[14..].copy_from_slice(&self.hash);
        out
    }

    /// Parse the first 46 bytes of a stored file.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return Err(Error::Corrupt(format!(
                "{what}: not a lifeboat WAL object (bad or truncated header)"
            )));
        }
        if bytes[4] != VERSION || bytes[5] & !FLAG_ZSTD != 0 {
            return Err(Error::Unsupported(format!(
                "{what}: WAL object version {} flags {:#x} written by a newer lifeboat",
                bytes[4], bytes[5]
            )));
        }
        Ok(Header {
            zstd: bytes[5] & FLAG_ZSTD != 0,
            len: u64::from_le_bytes(bytes[6..14].try_into().expect("8 bytes")),
            hash: bytes[14..HEADER_LEN].try_into().expect("32 bytes"),
        })
    }

    fn describe(&self) -> String {
        let hex: String = self.hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{} bytes, hash {hex}…", self.len)
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The file was stored now.
    Stored,
    /// An identical file was already archived (a retry): nothing written.
    AlreadyArchived,
}

/// The object of a WAL file: header and sealed body (CPU only).
pub fn encode(repo: &Repository, system_id: u64, name: &WalName, data: &[u8]) -> Vec<u8> {
    let compressed = Compressor::new(ZSTD_LEVEL).compress(data);
    let header = Header {
        zstd: compressed.is_some(),
        len: data.len() as u64,
        hash: repo.keys().wal_hash(data),
    };
    let body = compressed.as_deref().unwrap_or(data);
    let sealed = repo.keys().seal(&ad(system_id, name), body);
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&sealed);
    out
}

/// The header a push of `data` would write.
pub fn header_of(repo: &Repository, data: &[u8], zstd: bool) -> Header {
    Header {
        zstd,
        len: data.len() as u64,
        hash: repo.keys().wal_hash(data),
    }
}

/// Archive one WAL file; returns once it is durable in the storage. A file
/// already stored with the same length and hash is success; a different
/// one under the same name is refused ([`Error::Conflict`]).
pub async fn push(
    repo: &Repository,
    system_id: u64,
    name: &WalName,
    data: &[u8],
) -> Result<PushOutcome> {
    repo.ensure_writable()?;
    let key = key(system_id, name);
    if let Some(stored) = stored_header(repo, &key).await? {
        return compare(&key, &stored, data, repo);
    }
    let object = encode(repo, system_id, name, data);
    let pushed = Header::decode(&object, &key)?;
    match repo.storage().put_if_absent(&key, object).await {
        Ok(()) => Ok(PushOutcome::Stored),
        Err(StorageError::AlreadyExists { .. }) => {
            let stored = stored_header(repo, &key).await?.ok_or_else(|| {
                Error::Corrupt(format!("{key}: reported as existing, then not found"))
            })?;
            same(&key, &stored, &pushed)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `name` is archived (one existence check, no read).
pub async fn exists(repo: &Repository, system_id: u64, name: &WalName) -> Result<bool> {
    Ok(repo.storage().stat(&key(system_id, name)).await?.is_some())
}

fn compare(key: &str, stored: &Header, data: &[u8], repo: &Repository) -> Result<PushOutcome> {
    let pushed = header_of(repo, data, stored.zstd);
    same(key, stored, &pushed)
}

fn same(key: &str, stored: &Header, pushed: &Header) -> Result<PushOutcome> {
    if stored.len == pushed.len && stored.hash == pushed.hash {
        return Ok(PushOutcome::AlreadyArchived);
    }
    Err(Error::Conflict(format!(
        "{key}: a different WAL file is already archived under this name (stored: {}; pushed: {}); nothing was overwritten. Two clusters with one system identifier archive into this repository, or this cluster's history diverged: archive it into another repository",
        stored.describe(),
        pushed.describe()
    )))
}

async fn stored_header(repo: &Repository, key: &str) -> Result<Option<Header>> {
    match repo.storage().get_range(key, 0, HEADER_LEN as u64).await {
        Ok(bytes) => Header::decode(&bytes, key).map(Some),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(StorageError::ShortRead { .. }) => Err(Error::Corrupt(format!(
            "{key}: truncated (shorter than its {HEADER_LEN}-byte header)"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Read, open and check one archived WAL file: its plaintext, whose length
/// and hash match the header. A file not archived is [`Error::NotFound`].
pub async fn fetch(repo: &Repository, system_id: u64, name: &WalName) -> Result<Vec<u8>> {
    let key = key(system_id, name);
    let object = match repo.storage().get(&key).await {
        Ok(b) => b,
        Err(StorageError::NotFound { .. }) => {
            return Err(Error::NotFound(format!(
                "{}: not archived in {} (system identifier {system_id})",
                name.as_str(),
                repo.storage().location()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    decode(repo, system_id, name, &key, &object)
}

/// Open a stored object (see [`fetch`]).
pub fn decode(
    repo: &Repository,
    system_id: u64,
    name: &WalName,
    key: &str,
    object: &[u8],
) -> Result<Vec<u8>> {
    let header = Header::decode(object, key)?;
    let body = repo
        .keys()
        .open(&object[HEADER_LEN..], &ad(system_id, name), key)?;
    let plain = if header.zstd {
        let len = usize::try_from(header.len)
            .map_err(|_| Error::Corrupt(format!("{key}: length {} too large", header.len)))?;
        crate::compress::decompress(&body, len, key)?
    } else {
        body
    };
    if plain.len() as u64 != header.len || repo.keys().wal_hash(&plain) != header.hash {
        return Err(Error::Corrupt(format!(
            "{key}: content does not match its header's length and hash"
        )));
    }
    Ok(plain)
}

/// The header of an archived file (46 bytes read), `None` when it is not
/// archived. Its `len` of a segment is the cluster's WAL segment size.
pub async fn header(repo: &Repository, system_id: u64, name: &WalName) -> Result<Option<Header>> {
    stored_header(repo, &key(system_id, name)).await
}

/// Every archived WAL file of a cluster with its storage facts (size, time
/// written), sorted by name.
pub async fn list_objects(
    repo: &Repository,
    system_id: u64,
) -> Result<Vec<(WalName, lifeboat_storage::ObjectMeta)>> {
    let prefix = cluster_prefix(system_id);
    let mut out: Vec<_> = repo
        .storage()
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|m| {
            let name = WalName::parse(m.key.rsplit('/').next()?).ok()?;
            Some((name, m))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Every archived WAL file name of a cluster, sorted.
pub async fn list(repo: &Repository, system_id: u64) -> Result<Vec<WalName>> {
    let prefix = cluster_prefix(system_id);
    let mut out: Vec<WalName> = repo
        .storage()
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|m| {
            let name = m.key.rsplit('/').next()?;
            WalName::parse(name).ok()
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000003.partial",
        ] {
            assert!(WalName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "00000001000000000000000",
            "000000010000000000000003.tmp",
            "0000000100000000000000g3",
            "../00000002.history",
            "00000002.historyx",
            "archive_status",
        ] {
            assert!(WalName::parse(bad).is_err(), "{bad}");
        }
        let n = WalName::parse("00000002.history").unwrap();
        assert_eq!(n.timeline(), "00000002");
        assert_eq!(key(7, &n), "wal/7/00000002/00000002.history");
    }

    #[test]
    fn segment_numbers_cross_the_log_boundary() {
        let mib16 = 16 << 20;
        let n = |s: &str| WalName::parse(s).unwrap().segment_number(mib16).unwrap();
        assert_eq!(
            n("0000000100000000000000FF") + 1,
            n("000000010000000100000000")
        );
        assert_eq!(
            segment_name(1, n("0000000100000000000000FF") + 1, mib16),
            "000000010000000100000000"
        );
        assert_eq!(n("000000010000000200000003"), 2 * 256 + 3);
        // 1 GiB segments: 4 per log.
        let gib = 1 << 30;
        let g = WalName::parse("000000010000000100000000").unwrap();
        assert_eq!(g.segment_number(gib), Some(4));
        assert_eq!(segment_name(2, 7, gib), "000000020000000100000003");
        assert_eq!(
            WalName::parse("00000002.history")
                .unwrap()
                .segment_number(mib16),
            None
        );
    }

    #[test]
    fn header_roundtrip() {
        let h = Header {
            zstd: true,
            len: 16 << 20,
            hash: [7; 32],
        };
        let b = h.encode();
        assert_eq!(&b[..6], b"LBWL\x01\x01");
        assert_eq!(Header::decode(&b, "t").unwrap(), h);
        assert!(matches!(
            Header::decode(&b[..45], "t"),
            Err(Error::Corrupt(_))
        ));
    }
}
