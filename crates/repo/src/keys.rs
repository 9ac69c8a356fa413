//! Key files: the master key wrapped under passphrases, and raw exported keys.
//!
//! A key file (`keys/<id>`) holds Argon2id parameters, a salt and the master
//! key sealed with the key Argon2id derives from the passphrase. Several key
//! files can wrap the same master key, so passphrases can be added, changed
//! and revoked without re-encrypting any data. An exported raw key file
//! holds the master key itself and opens the repository without the KDF
//! (for hot paths such as WAL archiving); it must be guarded like the data.

use crate::crypto::{ad, open_with, seal_with, MasterKey};
use crate::error::{Error, Result};
use crate::id::{from_hex, to_hex};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Key file version this build reads and writes.
pub const KEY_FILE_VERSION: u32 = 1;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (about a quarter second on a server core).
    fn default() -> Self {
        KdfParams {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

/// A stored key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key file format version (1).
    pub version: u32,
    /// Always `argon2id`.
    pub kdf: String,
    /// KDF costs.
    pub params: KdfParams,
    /// Random salt, hex.
    pub salt: String,
    /// The master key sealed under the derived key, hex.
    pub wrapped: String,
    /// When it was created, RFC 3339.
    pub created: String,
    /// Host that created it.
    pub host: String,
    /// User that created it.
    pub user: String,
    /// Free-form label (`key add --label`).
    #[serde(default)]
    pub label: String,
}

/// Upper bounds on key file KDF costs: a key file is unauthenticated, so a
/// tampered one must not make every unlock allocate terabytes or spin for hours.
const MAX_M_COST_KIB: u32 = 4 << 20;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 64;

fn check_params(p: KdfParams) -> Result<argon2::Params> {
    if p.m_cost > MAX_M_COST_KIB || p.t_cost > MAX_T_COST || p.p_cost > MAX_P_COST {
        return Err(Error::Corrupt(format!(
            "key file asks for Argon2 costs beyond the limits (m={} KiB, t={}, p={})",
            p.m_cost, p.t_cost, p.p_cost
        )));
    }
    argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| Error::Corrupt(format!("key file has invalid Argon2 parameters: {e}")))
}

fn derive(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Result<XChaCha20Poly1305> {
    let key = passphrase_key(passphrase, salt, p)?;
    Ok(XChaCha20Poly1305::new(&(*key).into()))
}

/// The key that wraps the master key in a key file: Argon2id (v0x13) of
/// the passphrase and salt, 32 bytes (FORMAT.md, "Key files").
pub fn passphrase_key(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    let params = check_params(p)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, &mut *out)
        .map_err(|e| Error::Invalid(format!("cannot derive key from passphrase: {e}")))?;
    Ok(out)
}

impl KeyFile {
    /// Wrap `master` under `passphrase`.
    pub fn create(
        master: &MasterKey,
        passphrase: &[u8],
        params: KdfParams,
        meta: KeyMeta,
    ) -> Result<Self> {
        let salt = crate::crypto::random_array::<16>();
        let cipher = derive(passphrase, &salt, params)?;
        Ok(KeyFile {
            version: KEY_FILE_VERSION,
            kdf: "argon2id".into(),
            params,
            salt: to_hex(&salt),
            wrapped: to_hex(&seal_with(&cipher, ad::KEY, master.as_bytes())),
            created: meta.created,
            host: meta.host,
            user: meta.user,
            label: meta.label,
        })
    }

    /// Refuse a version or KDF this build does not know ([`Error::Unsupported`]).
    pub fn check_version(&self, name: &str) -> Result<()> {
        if self.version != KEY_FILE_VERSION || self.kdf != "argon2id" {
            return Err(Error::Unsupported(format!(
                "key file {name} has version {} / kdf {:?}, which this lifeboat does not know (it reads version {KEY_FILE_VERSION}, argon2id)",
                self.version, self.kdf
            )));
        }
        Ok(())
    }

    /// Parse the stored key file `key`; a version this build does not know
    /// is [`Error::Unsupported`] (checked before the other fields, which a
    /// later version may change), anything else unreadable is corrupt.
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Version {
            version: u64,
        }
        let v: Version = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("{key}: not a key file: {e}")))?;
        if v.version != u64::from(KEY_FILE_VERSION) {
            return Err(Error::Unsupported(format!(
                "key file {key} has version {}, which this lifeboat does not know (it reads version {KEY_FILE_VERSION})",
                v.version
            )));
        }
        let kf: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("{key}: {e}")))?;
        kf.check_version(key)?;
        Ok(kf)
    }

    /// Check everything that can be checked without the passphrase (kdf,
    /// version, hex fields and their lengths, costs): a key file that fails
    /// this can unlock nothing. Returns the salt and the wrapped key.
    pub fn check(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        self.check_version("in use")?;
        let salt = from_hex(&self.salt)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Corrupt("key file salt is not hex".into()))?;
        let wrapped = from_hex(&self.wrapped)
            .filter(|w| w.len() == 32 + crate::crypto::SEAL_OVERHEAD)
            .ok_or_else(|| {
                Error::Corrupt("key file data is not a hex sealed 32-byte key".into())
            })?;
        check_params(self.params)?;
        Ok((salt, wrapped))
    }

    /// Unwrap the master key; `Ok(None)` when the passphrase is not this key's.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<Option<MasterKey>> {
        let (salt, wrapped) = self.check()?;
        let cipher = derive(passphrase, &salt, self.params)?;
        match open_with(&cipher, &wrapped, ad::KEY, "key") {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    Error::Corrupt("key file wraps a key of the wrong length".into())
                })?;
                Ok(Some(MasterKey::from_bytes(arr)))
            }
            Err(_) => Ok(None),
        }
    }
}

/// Who and when, recorded in a key file.
#[derive(Debug, Clone, Default)]
pub struct KeyMeta {
    /// RFC 3339 creation time.
    pub created: String,
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
    /// Label.
    pub label: String,
}

/// An exported raw key file (`key export`); its key is wiped when dropped
/// and never shown by `Debug`.
#[derive(Serialize, Deserialize)]
pub struct RawKeyFile {
    /// Always `lifeboat-raw-key`.
    pub kind: String,
    /// Version (1).
    pub version: u32,
    /// The repository id this key belongs to.
    pub repository: String,
    /// The master key, hex.
    pub master_key: String,
}

impl std::fmt::Debug for RawKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawKeyFile")
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("repository", &self.repository)
            .field("master_key", &"<redacted>")
            .finish()
    }
}

impl Drop for RawKeyFile {
    fn drop(&mut self) {
        self.master_key.zeroize();
    }
}

impl RawKeyFile {
    /// Describe `master` of repository `repo_id`.
    pub fn new(repo_id: &str, master: &MasterKey) -> Self {
        RawKeyFile {
            kind: "lifeboat-raw-key".into(),
            version: 1,
            repository: repo_id.into(),
            master_key: to_hex(master.as_bytes()),
        }
    }

    /// Parse an exported key file.
    pub fn parse(bytes: &[u8]) -> Result<(String, MasterKey)> {
        let raw: RawKeyFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::Invalid(format!("not a lifeboat raw key file: {e}")))?;
        if raw.kind != "lifeboat-raw-key" {
            return Err(Error::Invalid("not a lifeboat raw key file (kind)".into()));
        }
        if raw.version != 1 {
            return Err(Error::Unsupported(format!(
                "the raw key file has version {}, which this lifeboat does not know (it reads version 1)",
                raw.version
            )));
        }
        let hex = Zeroizing::new(from_hex(&raw.master_key));
        let key: [u8; 32] = hex
            .as_deref()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                Error::Invalid("raw key file: master_key must be 64 hex digits".into())
            })?;
        Ok((raw.repository.clone(), MasterKey::from_bytes(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn raw_key_file_debug_never_shows_the_key() {
        let master = MasterKey::generate();
        let raw = RawKeyFile::new("repo", &master);
        let shown = format!("{raw:?}");
        assert!(!shown.contains(&to_hex(master.as_bytes())), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn wrap_and_unwrap() {
        let m = MasterKey::generate();
        let kf = KeyFile::create(&m, b"pass", FAST, KeyMeta::default()).unwrap();
        assert_eq!(
            kf.unlock(b"pass").unwrap().unwrap().as_bytes(),
            m.as_bytes()
        );
        assert!(kf.unlock(b"wrong").unwrap().is_none());
    }

    /// Costs beyond the limits (each one alone) and invalid Argon2 parameters
    /// are refused before any memory is allocated; the limits themselves pass.
    #[test]
    fn key_files_asking_for_excessive_costs_are_refused() {
        let at_limit = KdfParams {
            m_cost: MAX_M_COST_KIB,
            t_cost: MAX_T_COST,
            p_cost: MAX_P_COST,
        };
        assert!(check_params(at_limit).is_ok());
        for p in [
            KdfParams {
                m_cost: MAX_M_COST_KIB + 1,
                ..at_limit
            },
            KdfParams {
                t_cost: MAX_T_COST + 1,
                ..at_limit
            },
            KdfParams {
                p_cost: MAX_P_COST + 1,
                ..at_limit
            },
        ] {
            let err = check_params(p).unwrap_err().to_string();
            assert!(err.contains("beyond the limits"), "{p:?}: {err}");
        }
        let err = check_params(KdfParams { m_cost: 1, ..FAST }).unwrap_err();
        assert!(
            err.to_string().contains("invalid Argon2 parameters"),
            "{err}"
        );
        assert_eq!(check_params(FAST).unwrap().m_cost(), FAST.m_cost);
        let m = MasterKey::generate();
        let mut kf = KeyFile::create(&m, b"pass", FAST, KeyMeta::default()).unwrap();
        kf.params.t_cost = MAX_T_COST + 1;
        assert!(kf.check().is_err() && kf.unlock(b"pass").is_err());
    }

    /// `check` accepts exactly what `create` writes and nothing malformed;
    /// `parse` tells a newer version from a broken file.
    #[test]
    fn check_and_parse_tell_usable_unknown_and_broken_key_files_apart() {
        let m = MasterKey::generate();
        let good = KeyFile::create(&m, b"pass", FAST, KeyMeta::default()).unwrap();
        let (salt, wrapped) = good.check().unwrap();
        assert_eq!((salt.len(), wrapped.len()), (16, 72));
        for broken in [
            KeyFile {
                kdf: "scrypt".into(),
                ..good.clone()
            },
            KeyFile {
                version: 2,
                ..good.clone()
            },
            KeyFile {
                salt: "zz".into(),
                ..good.clone()
            },
            KeyFile {
                salt: String::new(),
                ..good.clone()
            },
            KeyFile {
                wrapped: "00".into(),
                ..good.clone()
            },
        ] {
            assert!(broken.check().is_err(), "{broken:?}");
        }
        let bytes = serde_json::to_vec(&good).unwrap();
        assert!(KeyFile::parse("keys/x", &bytes).is_ok());
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["version"] = 3.into();
        let err = KeyFile::parse("keys/x", &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m.contains("has version 3")),
            "{err:?}"
        );
        let err = KeyFile::parse("keys/x", b"not json").unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn raw_key_roundtrip() {
        let m = MasterKey::generate();
        let bytes = serde_json::to_vec(&RawKeyFile::new("abc", &m)).unwrap();
        let (repo, m2) = RawKeyFile::parse(&bytes).unwrap();
        assert_eq!(repo, "abc");
        assert_eq!(m2.as_bytes(), m.as_bytes());
        assert!(RawKeyFile::parse(b"{}").is_err());
    }
}
