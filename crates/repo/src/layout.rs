//! Where each object lives in the storage: the key names of docs/FORMAT.md §2.
//!
//! Every key the repository reads or writes is built here, so the layout is
//! defined once: `config`, `keys/<id>`, `snapshots/<id>`, `index/<id>`,
//! `data/<2 hex>/<id>` (packs), `locks/<id>`, `verifications/<id>`,
//! `tombstones/<id>` and `jobs/<id>`.

use crate::id::Id;

/// The repository config object (plaintext JSON).
pub const CONFIG: &str = "config";
/// Key files (plaintext JSON, the wrapped master key).
pub const KEYS: &str = "keys";
/// Snapshots (sealed JSON).
pub const SNAPSHOTS: &str = "snapshots";
/// Index files (sealed, binary).
pub const INDEX: &str = "index";
/// Packs, fanned out by the first two hex digits of their id.
pub const DATA: &str = "data";
/// Lock objects (sealed JSON, heartbeat).
pub const LOCKS: &str = "locks";
/// Verification records (sealed JSON), e.g. restore tests.
pub const VERIFICATIONS: &str = "verifications";
/// Prune's tombstones (sealed JSON): packs it is about to delete.
pub const TOMBSTONES: &str = "tombstones";
/// Job history (sealed JSON): started and finished records of scheduled jobs.
pub const JOBS: &str = "jobs";
/// Records of snapshots `copy` wrote into this repository (sealed JSON),
/// kept when the snapshot itself is forgotten here.
pub const COPIED: &str = "copied";

/// The listing prefix of a directory: `keys` -> `keys/`.
pub fn prefix(dir: &str) -> String {
    format!("{dir}/")
}

/// The key of object `id` in directory `dir`: `snapshots/<id>`.
pub fn object_key(dir: &str, id: &Id) -> String {
    format!("{dir}/{id}")
}

/// The key of a pack: `data/<first 2 hex digits>/<id>`.
pub fn pack_key(id: &Id) -> String {
    let hex = id.to_string();
    format!("{DATA}/{}/{hex}", &hex[..2])
}

/// The key of a key file.
pub fn key_file_key(id: &Id) -> String {
    object_key(KEYS, id)
}

/// The key of an index file named `name` (its id in hex).
pub fn index_key(name: &str) -> String {
    format!("{INDEX}/{name}")
}

/// The id part of a key listed under `dir` (`keys/<hex>` -> `<hex>`), when
/// the key is in that directory.
pub fn name_in<'a>(dir: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(dir)?.strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_documented_ones() {
        let id = Id([0xab; 32]);
        let hex = id.to_string();
        assert_eq!(pack_key(&id), format!("data/ab/{hex}"));
        assert_eq!(object_key(SNAPSHOTS, &id), format!("snapshots/{hex}"));
        assert_eq!(key_file_key(&id), format!("keys/{hex}"));
        assert_eq!(
            object_key(VERIFICATIONS, &id),
            format!("verifications/{hex}")
        );
        assert_eq!(object_key(JOBS, &id), format!("jobs/{hex}"));
        assert_eq!(index_key("x"), "index/x");
        assert_eq!(prefix(LOCKS), "locks/");
        assert_eq!(name_in(KEYS, &format!("keys/{hex}")), Some(hex.as_str()));
        assert_eq!(name_in(KEYS, "keysx/1"), None);
    }
}
