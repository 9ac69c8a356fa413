//! The repository config: the one plaintext object (`config`).
//!
//! Stored as an envelope `{"payload": "<config JSON>", "mac": "<hex>"}`: the
//! payload is a JSON document carried as a string, and the MAC covers the
//! payload's bytes exactly as stored, so a newer writer's extra fields never
//! make an older reader report tampering. The payload carries the format
//! version and feature flags (read before any key is tried, so an unknown
//! version or incompatible feature is refused clearly), the repository id
//! and the parameters that shape the data.
//!
//! Feature flags work as in ext4: an unknown `incompatible` feature refuses
//! the repository, an unknown `ro_compatible` one opens it read-only, an
//! unknown `compatible` one is ignored.

use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::id::to_hex;
use serde::{Deserialize, Serialize};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The `format` field's value.
pub const FORMAT_NAME: &str = "lifeboat-repository";

/// Compatible features this build knows (it writes none yet).
pub const KNOWN_COMPATIBLE: &[&str] = &[];
/// Read-only-compatible features this build knows.
pub const KNOWN_RO_COMPATIBLE: &[&str] = &[crate::tombstone::FEATURE];
/// Incompatible features this build knows.
pub const KNOWN_INCOMPATIBLE: &[&str] = &[];

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

/// Feature flags (ext4 style).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Features {
    /// Readers that do not know one of these may ignore it.
    #[serde(default)]
    pub compatible: Vec<String>,
    /// Readers that do not know one of these may read but not write.
    #[serde(default)]
    pub ro_compatible: Vec<String>,
    /// Readers that do not know one of these must refuse the repository.
    #[serde(default)]
    pub incompatible: Vec<String>,
}

/// The config payload.
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
    /// Feature flags.
    #[serde(default)]
    pub features: Features,
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
}

/// The stored `config` object: the payload as a string and its MAC.
#[derive(Serialize, Deserialize)]
struct Envelope {
    payload: String,
    mac: String,
}

/// A parsed `config` object: the config and what is needed to check its MAC.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The parsed payload.
    pub config: RepoConfig,
    /// The payload bytes as stored (the MAC's input).
    payload: String,
    /// The stored MAC, hex.
    mac: String,
    /// Why this build may not write the repository (unknown ro-compatible features).
    pub read_only: Option<String>,
}

impl RepoConfig {
    /// Defaults for a new repository.
    pub fn new_default(created: String) -> Self {
        RepoConfig {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            id: to_hex(&crate::crypto::random_array::<16>()),
            created,
            features: Features::default(),
            chunker: ChunkerParams {
                min: 512 * 1024,
                avg: 1024 * 1024,
                max: 8 * 1024 * 1024,
            },
            fixed_chunk_size: 1024 * 1024,
            pack_size: 16 * 1024 * 1024,
            compression_level: 3,
            cipher: "xchacha20-poly1305".into(),
        }
    }

    /// The stored bytes of this config, MAC'd with the repository keys.
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let payload = serde_json::to_string(self).expect("config serializes");
        encode_payload(payload, keys)
    }

    /// Parse the stored bytes, refusing unknown formats, versions and
    /// incompatible features first. The MAC is checked later, after unlocking
    /// ([`ConfigFile::check_mac`]).
    pub fn parse(bytes: &[u8], location: &str) -> Result<ConfigFile> {
        let not_repo = || Error::NotARepository(location.to_string());
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("config at {location} is not valid JSON: {e}")))?;
        let Some(payload) = value.get("payload").and_then(|v| v.as_str()) else {
            return Err(not_repo());
        };
        let mac = value.get("mac").and_then(|v| v.as_str()).unwrap_or("");
        let inner: serde_json::Value = serde_json::from_str(payload).map_err(|e| {
            Error::Corrupt(format!("config at {location}: payload is not JSON: {e}"))
        })?;
        if inner.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
            return Err(not_repo());
        }
        let found = inner.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if found != u64::from(FORMAT_VERSION) {
            return Err(Error::UnsupportedVersion {
                location: location.to_string(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let cfg: RepoConfig = serde_json::from_value(inner)
            .map_err(|e| Error::Corrupt(format!("config at {location}: {e}")))?;
        let read_only = cfg.check_features(location)?;
        cfg.check_ranges(location)?;
        Ok(ConfigFile {
            config: cfg,
            payload: payload.to_string(),
            mac: mac.to_string(),
            read_only,
        })
    }

    /// Refuse unknown incompatible features; name unknown ro-compatible ones.
    fn check_features(&self, location: &str) -> Result<Option<String>> {
        let unknown = |set: &[String], known: &[&str]| -> Vec<String> {
            set.iter()
                .filter(|f| !known.contains(&f.as_str()))
                .cloned()
                .collect()
        };
        let incompat = unknown(&self.features.incompatible, KNOWN_INCOMPATIBLE);
        if !incompat.is_empty() {
            return Err(Error::Unsupported(format!(
                "{location}: the repository uses feature(s) {} that this lifeboat does not know, so it cannot read it",
                incompat.join(", ")
            )));
        }
        let ro = unknown(&self.features.ro_compatible, KNOWN_RO_COMPATIBLE);
        Ok((!ro.is_empty()).then(|| {
            format!(
                "{location}: the repository uses feature(s) {} that this lifeboat does not know: it can read the repository but not write to it",
                ro.join(", ")
            )
        }))
    }

    fn check_ranges(&self, location: &str) -> Result<()> {
        let c = &self.chunker;
        // avg >= 8 keeps the chunker's masks defined (top avg_bits - 2 bits);
        // fixed chunks are whole 8 KiB pages (FORMAT.md §5).
        if !(c.min < c.avg && c.avg < c.max && c.avg.is_power_of_two() && c.avg >= 8)
            || self.pack_size < 1024 * 1024
            || self.fixed_chunk_size == 0
            || !self.fixed_chunk_size.is_multiple_of(8192)
        {
            return Err(Error::Corrupt(format!(
                "config at {location}: chunker or pack parameters out of range"
            )));
        }
        Ok(())
    }
}

/// The stored bytes for a payload: `{"payload": <payload as a JSON string>, "mac": <hex>}`.
/// Exposed so tests can craft configs a newer writer would write.
pub fn encode_payload(payload: String, keys: &Keys) -> Vec<u8> {
    let mac = keys.mac(payload.as_bytes()).to_string();
    let mut out = serde_json::to_vec_pretty(&Envelope { payload, mac }).expect("serializes");
    out.push(b'\n');
    out
}

impl ConfigFile {
    /// Check the MAC over the stored payload bytes; an edited config is corrupt.
    /// The comparison is constant-time (BLAKE3's `Hash` equality), so
    /// timing reveals nothing about how much of a forged MAC was right.
    pub fn check_mac(&self, keys: &Keys) -> Result<()> {
        let computed = blake3::Hash::from_bytes(keys.mac(self.payload.as_bytes()).0);
        // The stored MAC is 64 lowercase hex digits (FORMAT.md §1); its
        // format is not secret, so it is checked before the comparison.
        let stored = self
            .mac
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            .then(|| crate::id::Id::from_hex(&self.mac))
            .flatten()
            .map(|id| blake3::Hash::from_bytes(id.0));
        if stored.is_some_and(|s| s == computed) {
            Ok(())
        } else {
            Err(Error::Corrupt(
                "config: MAC mismatch, the repository config was altered or damaged".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn parsed(keys: &Keys, mac: Option<&str>) -> ConfigFile {
        let cfg = RepoConfig::new_default("2026-01-01T00:00:00Z".into());
        let mut env: serde_json::Value = serde_json::from_slice(&cfg.encode(keys)).unwrap();
        if let Some(m) = mac {
            env["mac"] = m.into();
        }
        RepoConfig::parse(&serde_json::to_vec(&env).unwrap(), "t").unwrap()
    }

    #[test]
    fn out_of_range_chunk_sizes_are_refused_not_a_panic_later() {
        let keys = Keys::derive(&MasterKey::generate());
        for (field, value) in [
            ("fixed_chunk_size", serde_json::json!(0)),
            ("fixed_chunk_size", serde_json::json!(1000)),
            ("chunker", serde_json::json!({"min": 1, "avg": 2, "max": 3})),
        ] {
            let cfg = RepoConfig::new_default("2026-01-01T00:00:00Z".into());
            let mut p = serde_json::to_value(&cfg).unwrap();
            p[field] = value.clone();
            let bytes = encode_payload(p.to_string(), &keys);
            assert!(
                matches!(RepoConfig::parse(&bytes, "t"), Err(Error::Corrupt(_))),
                "{field} = {value} accepted"
            );
        }
    }

    #[test]
    fn mac_check_accepts_only_the_exact_lowercase_mac() {
        let keys = Keys::derive(&MasterKey::generate());
        let good = parsed(&keys, None);
        good.check_mac(&keys).unwrap();
        let right = good.mac.clone();
        let mut last_changed = right.clone();
        let c = if right.ends_with('0') { "1" } else { "0" };
        last_changed.replace_range(63.., c);
        for bad in [
            last_changed.as_str(),
            &right.to_uppercase(),
            &right[..62],
            &format!("{right}00"),
            "",
            &"g".repeat(64),
        ] {
            if bad == right {
                continue;
            }
            assert!(
                matches!(
                    parsed(&keys, Some(bad)).check_mac(&keys),
                    Err(Error::Corrupt(_))
                ),
                "accepted MAC {bad:?}"
            );
        }
        let other = Keys::derive(&MasterKey::generate());
        assert!(good.check_mac(&other).is_err());
    }
}
