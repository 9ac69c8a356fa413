//! Keys and sealing.
//!
//! One random 32-byte master key; subkeys are derived from it with BLAKE3's
//! `derive_key` so each use has its own key:
//! - blob ids: keyed BLAKE3 of the plaintext (ids reveal nothing without the key);
//! - sealing: XChaCha20-Poly1305 with a random 192-bit nonce per object
//!   (`nonce || ciphertext || tag`, 40 bytes of overhead);
//! - the chunker's gear table seed (boundaries reveal nothing about content);
//! - the MAC over the repository config.

use crate::error::{Error, Result};
use crate::id::Id;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The repository master key; never stored unwrapped except in an exported key file.
#[derive(Clone)]
pub struct MasterKey(pub(crate) [u8; 32]);

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

/// The working keys derived from a [`MasterKey`].
pub struct Keys {
    id_key: [u8; 32],
    cipher: XChaCha20Poly1305,
    /// Seed of the content-defined chunker's gear table.
    pub chunker_seed: [u8; 32],
    mac_key: [u8; 32],
}

impl Keys {
    /// Derive the working keys.
    pub fn derive(master: &MasterKey) -> Self {
        let sub = |ctx: &str| blake3::derive_key(ctx, &master.0);
        Keys {
            id_key: sub("lifeboat v1 blob id"),
            cipher: XChaCha20Poly1305::new(&sub("lifeboat v1 seal").into()),
            chunker_seed: sub("lifeboat v1 chunker"),
            mac_key: sub("lifeboat v1 config mac"),
        }
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// MAC of a byte string (the repository config).
    pub fn mac(&self, data: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.mac_key, data).as_bytes())
    }

    /// Seal `plaintext`: `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, plaintext)
    }

    /// Open a sealed object; a wrong key or any damaged byte is [`Error::Corrupt`].
    pub fn open(&self, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        open_with(&self.cipher, sealed, what)
    }
}

/// Seal with an explicit key (used for key files).
pub(crate) fn seal_with(cipher: &XChaCha20Poly1305, plaintext: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = random_array();
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), b"", &mut out[NONCE_LEN..])
        .expect("XChaCha20-Poly1305 encrypts any length we produce");
    out.extend_from_slice(&tag);
    out
}

/// Open with an explicit key.
pub(crate) fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
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
        .decrypt_in_place_detached(XNonce::from_slice(nonce), b"", &mut buf, tag.into())
        .map_err(|_| {
            Error::Corrupt(format!(
                "{what}: authentication failed (damaged or altered bytes)"
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
        let sealed = keys.seal(b"secret data");
        assert_eq!(sealed.len(), 11 + SEAL_OVERHEAD);
        assert_eq!(keys.open(&sealed, "t").unwrap(), b"secret data");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(
                matches!(keys.open(&bad, "t"), Err(Error::Corrupt(_))),
                "byte {i}"
            );
        }
        let other = Keys::derive(&MasterKey::generate());
        assert!(other.open(&sealed, "t").is_err());
        assert!(keys.open(&sealed[..10], "t").is_err());
    }

    #[test]
    fn blob_ids_depend_on_the_key() {
        let a = Keys::derive(&MasterKey::generate());
        let b = Keys::derive(&MasterKey::generate());
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
    }
}
