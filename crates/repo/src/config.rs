//! The repository config: the one plaintext object (`config`).
//!
//! It carries the format version (read before any key is tried, so an
//! unknown version is refused clearly), the repository id and the
//! parameters that shape the data. A MAC under the master key makes any
//! edit detectable once the repository is opened.

use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::id::to_hex;
use serde::{Deserialize, Serialize};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The `format` field's value.
pub const FORMAT_NAME: &str = "lifeboat-repository";

/// Content-defined chunker bounds, in bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk (except a stream's last).
    pub min: u32,
    /// Target average; a power of two.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

/// The `config` object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepoConfig {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Random repository id (hex).
    pub id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Content-defined chunker bounds.
    pub chunker: ChunkerParams,
    /// Size of fixed chunks (relation files), a multiple of 8 KiB.
    pub fixed_chunk_size: u32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for blobs.
    pub compression_level: i32,
    /// The AEAD in use.
    pub cipher: String,
    /// Keyed BLAKE3 (config MAC key) of this object serialized with `mac` empty.
    #[serde(default)]
    pub mac: String,
}

impl RepoConfig {
    /// Defaults for a new repository.
    pub fn new_default(created: String) -> Self {
        RepoConfig {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            id: to_hex(&crate::crypto::random_array::<16>()),
            created,
            chunker: ChunkerParams {
                min: 512 * 1024,
                avg: 1024 * 1024,
                max: 8 * 1024 * 1024,
            },
            fixed_chunk_size: 1024 * 1024,
            pack_size: 16 * 1024 * 1024,
            compression_level: 3,
            cipher: "xchacha20-poly1305".into(),
            mac: String::new(),
        }
    }

    fn mac_input(&self) -> Vec<u8> {
        let mut c = self.clone();
        c.mac.clear();
        serde_json::to_vec(&c).expect("config serializes")
    }

    /// Set the MAC with the repository keys.
    pub fn sign(&mut self, keys: &Keys) {
        self.mac = keys.mac(&self.mac_input()).to_string();
    }

    /// Check the MAC; an edited config is corrupt.
    pub fn check_mac(&self, keys: &Keys) -> Result<()> {
        if keys.mac(&self.mac_input()).to_string() == self.mac {
            Ok(())
        } else {
            Err(Error::Corrupt(
                "config: MAC mismatch, the repository config was altered or damaged".into(),
            ))
        }
    }

    /// Parse the stored bytes, refusing unknown formats and versions first.
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("config at {location} is not valid JSON: {e}")))?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
            return Err(Error::NotARepository(location.to_string()));
        }
        let found = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if found != u64::from(FORMAT_VERSION) {
            return Err(Error::UnsupportedVersion {
                location: location.to_string(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let cfg: RepoConfig = serde_json::from_value(value)
            .map_err(|e| Error::Corrupt(format!("config at {location}: {e}")))?;
        let c = &cfg.chunker;
        if !(c.min < c.avg && c.avg < c.max && c.avg.is_power_of_two())
            || cfg.pack_size < 1024 * 1024
        {
            return Err(Error::Corrupt(format!(
                "config at {location}: chunker or pack parameters out of range"
            )));
        }
        Ok(cfg)
    }
}
