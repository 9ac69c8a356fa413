//! ClickHouse sources over the HTTP interface: backup ([`backup`]),
//! restore ([`restore`]), restore tests ([`restore_test`]).
//!
//! A `clickhouse` snapshot keeps the schema in its `meta`
//! ([`ClickhouseMeta`], docs/FORMAT.md §10) and the data in its tree: one
//! directory per database, one per table, one file per partition
//! (`<partition id>.native`, the partition's rows as `FORMAT Native`).
//! Names are stored with `%`, `/` and a leading `.` percent-encoded, so
//! each is one path component.

pub mod backup;
pub mod restore;
pub mod restore_test;

pub use backup::{backup_clickhouse, ChBackup};
pub use restore::{restore_clickhouse, ChRestore, ChRestoreOutcome};

use crate::config::{resolve_secret, SourceConfig};
use crate::error::{EngineError, Result};
use lifeboat_repo::{Snapshot, SnapshotKind};
use lifeboat_sources::clickhouse::catalog::{Column, Features, TableKind};
use lifeboat_sources::clickhouse::http::{into_ch_error, ChClient};
use serde::{Deserialize, Serialize};

/// The snapshot kind of a ClickHouse backup.
pub const KIND_CLICKHOUSE: SnapshotKind = SnapshotKind::Clickhouse;

/// `meta` of a `clickhouse` snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickhouseMeta {
    /// The server backed up (URL without credentials).
    pub server: String,
    /// Its `version()`.
    pub server_version: String,
    /// What its catalog offered.
    pub features: Features,
    /// Databases, with their tables.
    pub databases: Vec<DatabaseRecord>,
    /// Figures of this backup.
    pub stats: ChStats,
    /// Notes for the operator (Memory tables, schema-only engines).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Figures of one ClickHouse backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChStats {
    /// Tables, views and materialized views stored.
    pub tables: u64,
    /// Partitions (a Log or Memory table counts as one).
    pub partitions: u64,
    /// Partitions exported from the server by this backup.
    pub partitions_read: u64,
    /// Unchanged partitions whose data was taken from the parent snapshot.
    pub partitions_reused: u64,
    /// Rows in all partitions.
    pub rows: u64,
}

/// One database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseRecord {
    /// Its name.
    pub name: String,
    /// Its engine.
    pub engine: String,
    /// `SHOW CREATE DATABASE`.
    pub create: String,
    /// Its tables, views and materialized views, by name.
    pub tables: Vec<TableRecord>,
}

/// One table, view or materialized view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    /// Its name.
    pub name: String,
    /// Engine name.
    pub engine: String,
    /// How its data is handled.
    pub kind: TableKind,
    /// `SHOW CREATE TABLE` as the server printed it.
    pub create: String,
    /// Partition key (empty when none).
    pub partition_key: String,
    /// Sorting key (empty when none).
    pub sorting_key: String,
    /// Views and materialized views reading from it (`db.name`).
    pub dependencies: Vec<String>,
    /// For a materialized view's inner table (`.inner.NAME`,
    /// `.inner_id.UUID`): the view's name. Its data is restored through the view.
    pub inner_of: Option<String>,
    /// Its UUID on Atomic databases.
    pub uuid: Option<String>,
    /// Its columns.
    pub columns: Vec<Column>,
    /// Its data, per partition (one `all` entry for Log and Memory tables).
    pub partitions: Vec<PartitionRecord>,
}

impl TableRecord {
    /// Columns that hold stored data (what `SELECT *` exports).
    pub fn physical_columns(&self) -> Vec<Column> {
        self.columns
            .iter()
            .filter(|c| c.is_physical())
            .cloned()
            .collect()
    }
}

/// One partition's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Partition id (`202601`, `all`).
    pub id: String,
    /// Partition value as an SQL literal (`202601`, `tuple()`).
    pub value: String,
    /// `count()` of the partition, checked against the rows exported.
    pub rows: u64,
    /// `sum(cityHash64(...))` over its stored columns (order-independent).
    pub hash: String,
    /// Bytes of its Native file.
    pub bytes: u64,
    /// Its active parts at backup time.
    pub parts: Vec<PartRecord>,
    /// Whether this backup took its data from the parent snapshot (unchanged).
    pub reused: bool,
}

/// One active part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// `hash_of_all_files` where the server has it.
    pub hash_of_all_files: Option<String>,
}

impl ClickhouseMeta {
    /// The `meta` of a ClickHouse snapshot.
    pub fn of(snap: &Snapshot) -> Result<Self> {
        if snap.kind != KIND_CLICKHOUSE {
            return Err(EngineError::Config(format!(
                "snapshot of {:?} is a {} snapshot, not a ClickHouse one",
                snap.source, snap.kind
            )));
        }
        crate::meta::parse(snap)
    }

    /// A table by database and name.
    pub fn table(&self, db: &str, name: &str) -> Option<&TableRecord> {
        self.databases
            .iter()
            .find(|d| d.name == db)
            .and_then(|d| d.tables.iter().find(|t| t.name == name))
    }
}

/// One path component for a database, table or partition name.
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, ch) in name.chars().enumerate() {
        match ch {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '\0' => out.push_str("%00"),
            '.' if i == 0 => out.push_str("%2E"),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// The file name of a partition's data.
pub fn partition_file(id: &str) -> String {
    format!("{}.native", encode_name(id))
}

/// How to reach a ClickHouse server: URL and credentials.
#[derive(Clone)]
pub struct ChTarget {
    /// `http(s)://host:port`.
    pub url: String,
    /// User.
    pub user: String,
    /// Password (resolved).
    pub password: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for ChTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChTarget")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ChTarget {
    /// The source's server and credentials, or `url` (e.g. `--to`) with the
    /// source's credentials.
    pub fn from_source(src: &SourceConfig, url: Option<&str>) -> Result<Self> {
        let url = match url {
            Some(u) => resolve_secret(u)?,
            None => resolve_secret(src.url.as_deref().ok_or_else(|| {
                EngineError::Config(format!("source {:?} has no `url`", src.name))
            })?)?,
        };
        Ok(ChTarget {
            url,
            user: match &src.user {
                Some(u) => resolve_secret(u)?,
                None => "default".into(),
            },
            password: zeroize::Zeroizing::new(match &src.password {
                Some(p) => resolve_secret(p)?,
                None => String::new(),
            }),
        })
    }

    /// A client for it.
    pub fn client(&self) -> Result<ChClient> {
        Ok(ChClient::new(&self.url, &self.user, &self.password)?)
    }
}

/// An error from a stream that read ClickHouse data: the ClickHouse error
/// inside it when there is one (an exception after a 200, broken framing).
pub(crate) fn unwrap_stream_error(e: EngineError, url: &str) -> EngineError {
    match e {
        EngineError::Io { source, context }
            if source
                .get_ref()
                .is_some_and(|r| r.is::<lifeboat_sources::clickhouse::ChError>()) =>
        {
            let _ = context;
            EngineError::Clickhouse(into_ch_error(source, url))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_become_single_path_components() {
        assert_eq!(encode_name(".inner.mv"), "%2Einner.mv");
        assert_eq!(encode_name("a/b%c"), "a%2Fb%25c");
        assert_eq!(partition_file("202601"), "202601.native");
    }

    #[test]
    fn clickhouse_meta_is_stored_in_its_documented_shape() {
        let want = json!({
            "server": "http://127.0.0.1:8123", "server_version": "24.8.1.1",
            "features": {"hash_of_all_files": true, "table_uuid": true, "partition_id_column": true},
            "databases": [{"name": "shop", "engine": "Atomic", "create": "CREATE DATABASE shop ENGINE = Atomic",
                "tables": [{"name": "events", "engine": "MergeTree", "kind": "merge_tree",
                    "create": "CREATE TABLE shop.events (`d` Date) ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY d",
                    "partition_key": "toYYYYMM(d)", "sorting_key": "d", "dependencies": ["shop.mv"],
                    "inner_of": null, "uuid": "3f1c1c9e-8a1a-4b5e-9d1e-2f4c5b6a7d8e",
                    "columns": [{"name": "d", "type": "Date", "default_kind": ""}],
                    "partitions": [{"id": "202601", "value": "202601", "rows": 10, "hash": "123",
                        "bytes": 100, "parts": [{"name": "202601_1_1_0", "rows": 10, "bytes": 300,
                        "hash_of_all_files": "ab"}], "reused": false}]}]}],
            "stats": {"tables": 1, "partitions": 1, "partitions_read": 1, "partitions_reused": 0, "rows": 10},
            "notes": [],
        });
        let meta: ClickhouseMeta = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(meta.table("shop", "events").unwrap().partitions[0].rows, 10);
        assert_eq!(crate::meta::to_value(&meta), want);
    }
}
