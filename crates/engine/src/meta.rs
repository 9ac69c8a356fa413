//! The `meta` of each snapshot kind, as a type (docs/FORMAT.md §"Snapshot meta").
//!
//! A snapshot's `meta` is JSON in the repository; [`SnapshotMeta::of`] reads
//! it as the type of the snapshot's [`SnapshotKind`], so the format of each
//! kind is defined here and nowhere else.

use crate::error::{EngineError, Result};
use crate::postgres::{LogicalMeta, PhysicalMeta};
use lifeboat_repo::{Snapshot, SnapshotKind};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// `meta` of a `files` snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilesMeta {
    /// Paths of `.env` files stored with their secrets redacted.
    #[serde(default)]
    pub redacted_files: Vec<String>,
    /// Whether the root tree holds `environment.env`, the redacted process environment.
    #[serde(default)]
    pub environment_captured: bool,
    /// How many warnings the backup gave (skipped or changed entries).
    #[serde(default)]
    pub warnings: usize,
    /// Files that changed while they were read (stored as read).
    #[serde(default)]
    pub changed_files: Vec<String>,
    /// Whether extended attributes were read as root (as root, `trusted.*`
    /// ones are listed too). Absent in snapshots written before xattrs of
    /// unchanged files were reused from the parent: theirs are read again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattrs_read_as_root: Option<bool>,
}

/// `meta` of a `command` snapshot: what ran and what was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMeta {
    /// Program and arguments as configured.
    pub command: Vec<String>,
    /// Name of the stored file in the root tree.
    pub file: String,
    /// Bytes stored (after redaction).
    pub bytes: u64,
    /// Whether redaction was on.
    pub redacted: bool,
    /// How many values were redacted.
    pub redacted_values: u64,
}

/// The typed `meta` of a snapshot, by kind.
#[derive(Debug, Clone)]
pub enum SnapshotMeta {
    /// A files snapshot.
    Files(FilesMeta),
    /// A PostgreSQL logical snapshot.
    PostgresLogical(Box<LogicalMeta>),
    /// A command snapshot.
    Command(CommandMeta),
    /// A PostgreSQL physical snapshot.
    PostgresPhysical(Box<PhysicalMeta>),
    /// A ClickHouse snapshot.
    Clickhouse(Box<crate::clickhouse::ClickhouseMeta>),
}

impl SnapshotMeta {
    /// Read the `meta` of `snap` as the type of its kind.
    pub fn of(snap: &Snapshot) -> Result<Self> {
        Ok(match snap.kind {
            SnapshotKind::Files => SnapshotMeta::Files(parse(snap)?),
            SnapshotKind::PostgresLogical => SnapshotMeta::PostgresLogical(Box::new(parse(snap)?)),
            SnapshotKind::Command => SnapshotMeta::Command(parse(snap)?),
            SnapshotKind::PostgresPhysical => {
                SnapshotMeta::PostgresPhysical(Box::new(parse(snap)?))
            }
            SnapshotKind::Clickhouse => SnapshotMeta::Clickhouse(Box::new(parse(snap)?)),
        })
    }
}

/// `meta` of `snap` as `T`; a shape that does not fit is damage.
pub(crate) fn parse<T: DeserializeOwned>(snap: &Snapshot) -> Result<T> {
    T::deserialize(&snap.meta).map_err(|e| {
        EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
            "metadata of the {} snapshot of {:?}: {e}",
            snap.kind, snap.source
        )))
    })
}

/// `meta` as stored: a typed meta as JSON.
pub(crate) fn to_value<T: Serialize>(meta: &T) -> serde_json::Value {
    serde_json::to_value(meta).expect("meta serialises")
}

#[cfg(test)]
mod tests {
    //! The stored shape of each kind's `meta` is the format (docs/FORMAT.md
    //! §10): these pin every field name, so a rename in a type that `meta`
    //! embeds (some live in the PostgreSQL source) cannot change it silently.

    use super::*;
    use serde_json::json;

    #[test]
    fn logical_meta_is_stored_in_its_documented_shape() {
        let want = json!({
            "database": "shop", "server_version": "17.2", "server_version_num": 170002,
            "server_major": 17, "pg_dump_version": "17.2", "pg_dump_major": 17,
            "options": {"schema_only": false, "data_only": false, "tables": ["public.orders"],
                "schemas": [], "exclude_tables": [], "exclude_schemas": [], "exclude_table_data": [],
                "profile": {"kind": "supabase", "keep_auth_data": true, "keep_storage_data": false}},
            "dump_bytes": 4096, "database_size": 8000000, "globals": true,
            "archive": {"archive_version": "1.16.0", "database": "shop", "server_version": "17.2",
                "dump_version": "17.2", "toc_entries": 12, "table_rows": {"public.orders": 5},
                "table_bytes": {"public.orders": 100}, "large_objects": 0,
                "data_blocks": [{"dump_id": 3301, "offset": 2048}]},
            "tables": [{"name": "public.orders", "kind": "r", "rows": 5, "estimate": 5, "bytes": 8192}],
            "dependencies": {"tables": {"public.orders": {"schema": "public", "name": "orders",
                "indexes": ["orders_pkey"],
                "foreign_keys": [{"name": "orders_customer_fkey", "references": "public.customers"}],
                "owned_sequences": ["public.orders_id_seq"], "statistics": [], "parent": null,
                "types": [], "functions": []}}},
        });
        // Read as the type and written back: a field renamed anywhere in
        // the type (or in what it embeds) would be left out or renamed.
        let meta: LogicalMeta = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(meta.tables[0].rows, Some(5));
        assert_eq!(meta.dependencies.tables.len(), 1);
        assert_eq!(to_value(&meta), want);
        // Snapshots taken before block offsets were recorded have none, and
        // still read (they restore through one streaming pg_restore).
        let mut old = want.clone();
        old["archive"]
            .as_object_mut()
            .unwrap()
            .remove("data_blocks");
        let meta: LogicalMeta = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(meta.archive.data_blocks, None);
        assert_eq!(to_value(&meta), old);
    }

    #[test]
    fn files_meta_is_stored_in_its_documented_shape() {
        let meta = FilesMeta {
            redacted_files: vec!["/srv/app/.env".into()],
            environment_captured: true,
            warnings: 1,
            changed_files: vec!["/srv/app/log".into()],
            xattrs_read_as_root: Some(true),
        };
        let want = json!({"redacted_files": ["/srv/app/.env"], "environment_captured": true,
            "warnings": 1, "changed_files": ["/srv/app/log"], "xattrs_read_as_root": true});
        assert_eq!(to_value(&meta), want);
        // Older snapshots lack fields: they read as empty.
        let old: FilesMeta = serde_json::from_value(json!({"warnings": 0})).unwrap();
        assert_eq!(old, FilesMeta::default());
    }

    #[test]
    fn command_meta_is_stored_in_its_documented_shape() {
        let want = json!({"command": ["sh", "-c", "supabase secrets list"], "file": "secrets.env",
            "bytes": 120, "redacted": true, "redacted_values": 3});
        let meta: CommandMeta = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(meta.file, "secrets.env");
        assert_eq!(to_value(&meta), want);
    }

    #[test]
    fn a_meta_of_the_wrong_shape_is_damage_naming_the_snapshot() {
        let snap = Snapshot {
            version: 1,
            time: "t".into(),
            host: "h".into(),
            user: String::new(),
            source: "main".into(),
            kind: SnapshotKind::PostgresLogical,
            paths: vec![],
            tags: vec![],
            tree: lifeboat_repo::Id([0; 32]),
            parent: None,
            stats: Default::default(),
            meta: json!({"database": 5}),
        };
        let err = SnapshotMeta::of(&snap).unwrap_err();
        assert_eq!(err.code(), "corrupt");
        assert!(err.to_string().contains("postgres-logical"), "{err}");
    }
}
