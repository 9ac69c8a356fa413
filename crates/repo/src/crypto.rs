//! Keys and sealing.
//!
//! One random 32-byte master key; subkeys are derived from it with BLAKE3's
//! `derive_key` so each use has its own key:
//! - blob ids: keyed BLAKE3 of the plaintext (ids reveal nothing without the key);
//! - sealing: XChaCha20-Poly1305 with a random 192-bit nonce per object
//!   (`nonce || ciphertext || tag`, 40 bytes of overhead), with associated
//!   data naming what the object is ([`ad`]), so an object copied into
//!   another type's place fails to open;
//! - the chunker's gear table seed (boundaries reveal nothing about content);
//! - the MAC over the repository config.
//!
//! Every key is wiped from memory when dropped.

use crate::error::{Error, Result};
use crate::id::Id;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroize;

/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Length of a seal's nonce.
pub const NONCE_LEN_BYTES: usize = NONCE_LEN;

/// Associated data of each object type (docs/FORMAT.md, "Sealing").
pub mod ad {
    use crate::id::Id;

    /// A pack's trailer.
    pub const PACK_TRAILER: &[u8] = b"lifeboat:pack-trailer";
    /// An index file.
    pub const INDEX: &[u8] = b"lifeboat:index";
    /// The master key wrapped in a key file.
    pub const KEY: &[u8] = b"lifeboat:key";

    /// A sealed JSON object in directory `dir` (`snapshots`, `verifications`).
    pub fn object(dir: &str) -> Vec<u8> {
        format!("lifeboat:{dir}").into_bytes()
    }

    /// A blob: bound to its id.
    pub fn blob(id: &Id) -> Vec<u8> {
        format!("lifeboat:blob:{id}").into_bytes()
    }
}

/// The repository master key; never stored unwrapped except in an exported
/// key file. Wiped from memory when dropped.
#[derive(Clone)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for MasterKey {}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        MasterKey(random_array())
    }

    /// Wrap raw bytes (from an exported key file).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// The raw bytes, for export.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The working keys derived from a [`MasterKey`]; wiped when dropped (the
/// cipher wipes its own key).
pub struct Keys {
    id_key: [u8; 32],
    cipher: XChaCha20Poly1305,
    /// Seed of the content-defined chunker's gear table.
    pub chunker_seed: [u8; 32],
    mac_key: [u8; 32],
    wal_key: [u8; 32],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.wal_key.zeroize();
        self.id_key.zeroize();
        self.chunker_seed.zeroize();
        self.mac_key.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Keys {}

impl Keys {
    /// Derive the working keys.
    pub fn derive(master: &MasterKey) -> Self {
        let sub = |ctx: &str| blake3::derive_key(ctx, &master.0);
        let mut seal_key = sub(SEAL_CONTEXT);
        let cipher = XChaCha20Poly1305::new(&seal_key.into());
        seal_key.zeroize();
        Keys {
            id_key: sub(BLOB_ID_CONTEXT),
            cipher,
            chunker_seed: sub(CHUNKER_CONTEXT),
            mac_key: sub(CONFIG_MAC_CONTEXT),
            wal_key: sub(WAL_HASH_CONTEXT),
        }
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// The hash of a WAL segment's plaintext (FORMAT.md §14).
    pub fn wal_hash(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.wal_key, plaintext).as_bytes()
    }

    /// MAC of a byte string (the repository config).
    pub fn mac(&self, data: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.mac_key, data).as_bytes())
    }

    /// Seal `plaintext` as the object `ad` names: `nonce || ciphertext || tag`.
    pub fn seal(&self, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, ad, plaintext)
    }

    /// Seal with a given nonce: only for test vectors (a nonce must never repeat).
    pub fn seal_with_nonce(&self, ad: &[u8], nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
        seal_nonce(&self.cipher, ad, nonce, plaintext)
    }

    /// Open a sealed object of type `ad`; a wrong key, a wrong type or any
    /// damaged byte is [`Error::Corrupt`].
    pub fn open(&self, sealed: &[u8], ad: &[u8], what: &str) -> Result<Vec<u8>> {
        open_with(&self.cipher, sealed, ad, what)
    }
}

/// Context strings of the subkeys (BLAKE3 `derive_key`).
pub const BLOB_ID_CONTEXT: &str = "lifeboat v1 blob id";
/// Context of the sealing key.
pub const SEAL_CONTEXT: &str = "lifeboat v1 seal";
/// Context of the chunker seed.
pub const CHUNKER_CONTEXT: &str = "lifeboat v1 chunker";
/// Context of the config MAC key.
pub const CONFIG_MAC_CONTEXT: &str = "lifeboat v1 config mac";

/// Context of the WAL hash key (FORMAT.md §14).
pub const WAL_HASH_CONTEXT: &str = "lifeboat v1 wal hash";

/// Seal with an explicit key (used for key files).
pub(crate) fn seal_with(cipher: &XChaCha20Poly1305, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_nonce(cipher, ad, random_array(), plaintext)
}

fn seal_nonce(
    cipher: &XChaCha20Poly1305,
    ad: &[u8],
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), ad, &mut out[NONCE_LEN..])
        .expect("XChaCha20-Poly1305 encrypts any length we produce");
    out.extend_from_slice(&tag);
    out
}

/// Open with an explicit key.
pub(crate) fn open_with(
    cipher: &XChaCha20Poly1305,
    sealed: &[u8],
    ad: &[u8],
    what: &str,
) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Error::Corrupt(format!(
            "{what}: {} bytes is too short to be a sealed object (truncated?)",
            sealed.len()
        )));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), ad, &mut buf, tag.into())
        .map_err(|_| {
            Error::Corrupt(format!(
                "{what}: authentication failed (damaged or altered bytes, or an object of another type put in its place)"
            ))
        })?;
    Ok(buf)
}

/// Random bytes from the operating system.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).expect("the operating system's random source failed");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper_detection() {
        let keys = Keys::derive(&MasterKey::generate());
        let sealed = keys.seal(ad::INDEX, b"secret data");
        assert_eq!(sealed.len(), 11 + SEAL_OVERHEAD);
        assert_eq!(keys.open(&sealed, ad::INDEX, "t").unwrap(), b"secret data");
        assert!(matches!(
            keys.open(&sealed, ad::PACK_TRAILER, "t"),
            Err(Error::Corrupt(_))
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(
                matches!(keys.open(&bad, ad::INDEX, "t"), Err(Error::Corrupt(_))),
                "byte {i}"
            );
        }
        let other = Keys::derive(&MasterKey::generate());
        assert!(other.open(&sealed, ad::INDEX, "t").is_err());
        assert!(keys.open(&sealed[..10], ad::INDEX, "t").is_err());
    }

    #[test]
    fn keys_are_wiped_on_drop() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<MasterKey>();
        wiped_on_drop::<Keys>();
        wiped_on_drop::<XChaCha20Poly1305>();
        // `ZeroizeOnDrop` is only a marker a type can claim: a bare key
        // array needs no drop, so this fails if `MasterKey`'s `Drop` goes.
        assert!(std::mem::needs_drop::<MasterKey>());
    }

    #[test]
    fn blob_ids_depend_on_the_key() {
        let a = Keys::derive(&MasterKey::generate());
        let b = Keys::derive(&MasterKey::generate());
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
    }
}
