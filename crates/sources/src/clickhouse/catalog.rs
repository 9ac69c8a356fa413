//! What a ClickHouse server holds, read over HTTP: databases, tables
//! (`SHOW CREATE`, engine, partition and sorting keys, dependencies,
//! columns), active parts per partition, and the queries lifeboat runs per
//! partition (fingerprint, Native export).
//!
//! Features that differ between server generations are detected, never
//! assumed from a version number: `system.tables.uuid` (Atomic databases,
//! 20.x+), `system.parts.hash_of_all_files` (23.x+), and the
//! `_partition_id` virtual column (probed on a table; without it a
//! partition is selected with its partition expression).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{ChError, Result};
use super::http::ChClient;

/// Databases never backed up.
pub const SYSTEM_DATABASES: &[&str] = &["system", "INFORMATION_SCHEMA", "information_schema"];

/// What the server's catalog offers (detected per server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// `system.parts.hash_of_all_files` exists.
    pub hash_of_all_files: bool,
    /// `system.tables.uuid` exists.
    pub table_uuid: bool,
    /// The `_partition_id` virtual column selects a partition.
    pub partition_id_column: bool,
}

/// One database.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseInfo {
    /// Its name.
    pub name: String,
    /// Its engine (`Ordinary`, `Atomic`, `Replicated`, ...).
    pub engine: String,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: String,
    /// `""`, `DEFAULT`, `MATERIALIZED`, `ALIAS`, `EPHEMERAL`.
    #[serde(default)]
    pub default_kind: String,
}

impl Column {
    /// Whether the column is stored and exported by `SELECT *`
    /// (not `MATERIALIZED`, `ALIAS` or `EPHEMERAL`).
    pub fn is_physical(&self) -> bool {
        matches!(self.default_kind.as_str(), "" | "DEFAULT")
    }
}

/// One table, view or materialized view.
#[derive(Debug, Clone, Deserialize)]
pub struct TableInfo {
    /// Database.
    pub database: String,
    /// Name.
    pub name: String,
    /// Engine name (`MergeTree`, `ReplicatedMergeTree`, `Log`, `View`, ...).
    pub engine: String,
    /// Partition key expression (empty when none).
    #[serde(default)]
    pub partition_key: String,
    /// Sorting key expression (empty when none).
    #[serde(default)]
    pub sorting_key: String,
    /// Databases of the views that read from this table.
    #[serde(default)]
    pub dependencies_database: Vec<String>,
    /// Names of the views that read from this table.
    #[serde(default)]
    pub dependencies_table: Vec<String>,
    /// The table's UUID (Atomic databases; absent or nil elsewhere).
    #[serde(default)]
    pub uuid: Option<String>,
}

/// One active part.
#[derive(Debug, Clone, Deserialize)]
pub struct PartInfo {
    /// Database.
    pub database: String,
    /// Table.
    pub table: String,
    /// Partition id (`202601`, `all`, a hash).
    pub partition_id: String,
    /// Partition value as an SQL literal (`202601`, `'2026-01-01'`, `tuple()`).
    pub partition: String,
    /// Part name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes_on_disk: u64,
    /// Hash of the part's files, where the server has it.
    #[serde(default)]
    pub hash_of_all_files: Option<String>,
}

/// How lifeboat treats a table's data, by engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// A `*MergeTree` table: data per partition.
    MergeTree,
    /// `Log`, `TinyLog`, `StripeLog`: data whole.
    Log,
    /// `Memory`: data whole (lost on a server restart anyway).
    Memory,
    /// `View`: schema only.
    View,
    /// `MaterializedView`: schema; its inner table's data, if any, is
    /// stored with the inner table.
    MaterializedView,
    /// Anything else (`Distributed`, `Merge`, `Buffer`, `Dictionary`,
    /// `Kafka`, `Null`, ...): schema only.
    Other,
}

impl TableKind {
    /// The kind of an engine name.
    pub fn of(engine: &str) -> Self {
        match engine {
            e if e.ends_with("MergeTree") => TableKind::MergeTree,
            "Log" | "TinyLog" | "StripeLog" => TableKind::Log,
            "Memory" => TableKind::Memory,
            "View" => TableKind::View,
            "MaterializedView" => TableKind::MaterializedView,
            _ => TableKind::Other,
        }
    }

    /// Whether lifeboat stores this kind's rows.
    pub fn has_data(self) -> bool {
        matches!(
            self,
            TableKind::MergeTree | TableKind::Log | TableKind::Memory
        )
    }
}

/// `name` as a backquoted identifier.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `s` as a single-quoted string literal.
pub fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `db`.`name`.
pub fn qualified(db: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(name))
}

/// The server's `version()`.
pub fn server_version(c: &ChClient) -> Result<String> {
    Ok(c.query_text("SELECT version()")?.trim().to_string())
}

/// Run `sql` as `JSONEachRow` (64-bit integers as numbers) and parse each row.
pub fn json_rows<T: DeserializeOwned>(c: &ChClient, sql: &str) -> Result<Vec<T>> {
    let text = c.query_text_with(
        &format!("{sql} FORMAT JSONEachRow"),
        &[("output_format_json_quote_64bit_integers", "0")],
    )?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| ChError::Stream {
                url: c.url(),
                detail: format!("unexpected answer to {sql:?}: {e}"),
            })
        })
        .collect()
}

/// Which catalog columns the server has.
pub fn features(c: &ChClient) -> Result<Features> {
    #[derive(Deserialize)]
    struct Col {
        table: String,
        name: String,
    }
    let cols: Vec<Col> = json_rows(
        c,
        "SELECT table, name FROM system.columns WHERE database = 'system' AND table IN ('tables', 'parts')",
    )?;
    let has = |t: &str, n: &str| cols.iter().any(|c| c.table == t && c.name == n);
    Ok(Features {
        hash_of_all_files: has("parts", "hash_of_all_files"),
        table_uuid: has("tables", "uuid"),
        partition_id_column: false,
    })
}

/// Whether `_partition_id` works on `table` (a MergeTree table).
pub fn probe_partition_id(c: &ChClient, db: &str, table: &str) -> Result<bool> {
    match c.query_text(&format!(
        "SELECT _partition_id FROM {} LIMIT 0",
        qualified(db, table)
    )) {
        Ok(_) => Ok(true),
        // 47: unknown identifier (servers without the virtual column).
        Err(ChError::Server { code: 47, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The databases to back up: `wanted` (all but the system ones when empty).
pub fn databases(c: &ChClient, wanted: &[String]) -> Result<Vec<DatabaseInfo>> {
    let all: Vec<DatabaseInfo> = json_rows(c, "SELECT name, engine FROM system.databases")?;
    if wanted.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|d| !SYSTEM_DATABASES.contains(&d.name.as_str()))
            .collect());
    }
    wanted
        .iter()
        .map(|w| {
            all.iter()
                .find(|d| &d.name == w)
                .cloned()
                .ok_or_else(|| ChError::Server {
                    url: c.url(),
                    code: 81,
                    during: "",
                    message: format!(
                        "database {w:?} does not exist (named in the source's `databases`)"
                    ),
                })
        })
        .collect()
}

/// `db IN ('a', 'b')`, for catalog queries.
fn in_list(column: &str, dbs: &[String]) -> String {
    let list: Vec<String> = dbs.iter().map(|d| quote_str(d)).collect();
    format!("{column} IN ({})", list.join(", "))
}

/// Every table of `dbs` (temporary tables left out), sorted by database and name.
pub fn tables(c: &ChClient, dbs: &[String], f: &Features) -> Result<Vec<TableInfo>> {
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let uuid = if f.table_uuid {
        ", toString(uuid) AS uuid"
    } else {
        ""
    };
    json_rows(
        c,
        &format!(
            "SELECT database, name, engine, partition_key, sorting_key, dependencies_database, dependencies_table{uuid} FROM system.tables WHERE {} AND NOT is_temporary ORDER BY database, name",
            in_list("database", dbs)
        ),
    )
}

/// The columns of every table of `dbs`, in table order: `(db, table, column)`.
pub fn columns(c: &ChClient, dbs: &[String]) -> Result<Vec<(String, String, Column)>> {
    #[derive(Deserialize)]
    struct Row {
        database: String,
        table: String,
        name: String,
        #[serde(rename = "type")]
        ty: String,
        default_kind: String,
    }
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = json_rows(
        c,
        &format!(
            "SELECT database, table, name, type, default_kind FROM system.columns WHERE {}",
            in_list("database", dbs)
        ),
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.database,
                r.table,
                Column {
                    name: r.name,
                    ty: r.ty,
                    default_kind: r.default_kind,
                },
            )
        })
        .collect())
}

/// Active parts of every table of `dbs`, ordered by table, partition and name.
pub fn parts(c: &ChClient, dbs: &[String], f: &Features) -> Result<Vec<PartInfo>> {
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let hash = if f.hash_of_all_files {
        ", hash_of_all_files"
    } else {
        ""
    };
    json_rows(
        c,
        &format!(
            "SELECT database, table, partition_id, partition, name, rows, bytes_on_disk{hash} FROM system.parts WHERE active AND {} ORDER BY database, table, partition_id, name",
            in_list("database", dbs)
        ),
    )
}

/// `SHOW CREATE TABLE` (or view) text.
pub fn show_create_table(c: &ChClient, db: &str, name: &str) -> Result<String> {
    show_create(c, &format!("SHOW CREATE TABLE {}", qualified(db, name)))
}

/// `SHOW CREATE DATABASE` text.
pub fn show_create_database(c: &ChClient, db: &str) -> Result<String> {
    show_create(c, &format!("SHOW CREATE DATABASE {}", quote_ident(db)))
}

fn show_create(c: &ChClient, sql: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct Row {
        statement: String,
    }
    let rows: Vec<Row> = json_rows(c, sql)?;
    rows.into_iter()
        .next()
        .map(|r| r.statement)
        .ok_or_else(|| ChError::Stream {
            url: c.url(),
            detail: format!("{sql} answered nothing"),
        })
}

/// The `WHERE` condition selecting one partition, `None` for the whole
/// table (unpartitioned tables, and Log/Memory tables).
pub fn partition_filter(
    partition_key: &str,
    partition_id: &str,
    partition_value: &str,
    use_id_column: bool,
) -> Option<String> {
    let key = partition_key.trim();
    if key.is_empty() || key == "tuple()" {
        return None;
    }
    Some(if use_id_column {
        format!("_partition_id = {}", quote_str(partition_id))
    } else {
        format!("({key}) = ({partition_value})")
    })
}

/// `count()` and an order-independent content hash of the stored columns:
/// `sum(cityHash64(...))` over each column's null flag and text form (cast
/// to String first: old servers' cityHash64 refuses some types, such as Decimal).
pub fn fingerprint_sql(db: &str, table: &str, cols: &[Column], filter: Option<&str>) -> String {
    let args: Vec<String> = cols
        .iter()
        .filter(|c| c.is_physical())
        .map(|c| {
            let q = quote_ident(&c.name);
            format!("toString(isNull({q})), ifNull(toString({q}), '')")
        })
        .collect();
    let hash = if args.is_empty() {
        "0".to_string()
    } else {
        format!("sum(cityHash64({}))", args.join(", "))
    };
    format!(
        "SELECT count(), {hash} FROM {}{} FORMAT TabSeparated",
        qualified(db, table),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default()
    )
}

/// Run a [`fingerprint_sql`] query: `(rows, hash)`.
pub fn fingerprint(c: &ChClient, sql: &str) -> Result<(u64, u64)> {
    let text = c.query_text(sql)?;
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(rows)), Some(Ok(hash))) => Ok((rows, hash)),
        _ => Err(ChError::Stream {
            url: c.url(),
            detail: format!("unexpected fingerprint answer {:?}", text.trim()),
        }),
    }
}

/// The Native export of one partition (or a whole table), ordered by the
/// sorting key so the bytes are the same while the data is.
pub fn export_sql(db: &str, table: &str, filter: Option<&str>, sorting_key: &str) -> String {
    let order = sorting_key.trim();
    format!(
        "SELECT * FROM {}{}{} FORMAT Native",
        qualified(db, table),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default(),
        if order.is_empty() || order == "tuple()" {
            String::new()
        } else {
            format!(" ORDER BY {order}")
        }
    )
}

/// Settings of every export: one thread (stable block order) and a fixed block size.
pub const EXPORT_SETTINGS: &[(&str, &str)] = &[("max_threads", "1"), ("max_block_size", "65536")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_engine() {
        assert_eq!(
            TableKind::of("ReplicatedReplacingMergeTree"),
            TableKind::MergeTree
        );
        assert_eq!(TableKind::of("StripeLog"), TableKind::Log);
        assert_eq!(TableKind::of("Distributed"), TableKind::Other);
        assert!(!TableKind::of("View").has_data());
    }

    #[test]
    fn identifiers_and_strings_are_quoted() {
        assert_eq!(qualified("d b", "a`b"), "`d b`.`a\\`b`");
        assert_eq!(quote_str("it's"), "'it\\'s'");
    }

    #[test]
    fn partitions_are_selected_by_id_or_expression() {
        assert_eq!(
            partition_filter("toYYYYMM(d)", "202601", "202601", true).unwrap(),
            "_partition_id = '202601'"
        );
        assert_eq!(
            partition_filter("toYYYYMM(d)", "202601", "202601", false).unwrap(),
            "(toYYYYMM(d)) = (202601)"
        );
        assert_eq!(partition_filter("tuple()", "all", "tuple()", false), None);
        assert_eq!(partition_filter("", "all", "tuple()", true), None);
    }

    #[test]
    fn fingerprints_hash_stored_columns_only() {
        let cols = vec![
            Column {
                name: "a".into(),
                ty: "Decimal(18, 4)".into(),
                default_kind: String::new(),
            },
            Column {
                name: "m".into(),
                ty: "UInt8".into(),
                default_kind: "MATERIALIZED".into(),
            },
        ];
        let sql = fingerprint_sql("d", "t", &cols, Some("_partition_id = 'x'"));
        assert!(sql.contains("ifNull(toString(`a`), '')"), "{sql}");
        assert!(!sql.contains("`m`"), "{sql}");
        assert!(
            sql.ends_with("WHERE _partition_id = 'x' FORMAT TabSeparated"),
            "{sql}"
        );
    }
}
