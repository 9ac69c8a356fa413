//! Backup of a `clickhouse` source.
//!
//! 1. The catalog: the source's databases (`SHOW CREATE DATABASE`), their
//!    tables filtered by the source's `tables` / `exclude_tables` globs on
//!    `db.table` (`SHOW CREATE TABLE`, engine, keys, dependencies,
//!    columns) and the active parts of every table.
//! 2. Per data partition (each partition of a MergeTree-family table; a Log
//!    or Memory table whole) a fingerprint: when the parent snapshot holds
//!    the partition with the same parts (names, rows, bytes, and
//!    `hash_of_all_files` where the server has it) its data is reused
//!    without a query; otherwise `count()` and an order-independent
//!    `sum(cityHash64(...))` are computed, and equal ones (a merge changed
//!    the parts, not the rows) reuse the data too.
//! 3. A changed partition is exported as `SELECT * ... ORDER BY <sorting
//!    key> FORMAT Native` with `max_threads=1`, streamed through the Native
//!    validator into the content chunker (memory flat; byte-stable output, so
//!    what did not change deduplicates), and its row count is checked
//!    against the fingerprint's `count()` (once retried: rows inserted
//!    meanwhile). An exception in the stream, broken framing or a count that
//!    still differs fails the backup; no snapshot is written.
//!
//! ClickHouse has no cross-table snapshot: each partition is consistent in
//! itself, the backup as a whole is as of the moments each was read.

use super::{
    encode_name, partition_file, unwrap_stream_error, ChStats, ChTarget, ClickhouseMeta,
    DatabaseRecord, PartRecord, PartitionRecord, TableRecord, KIND_CLICKHOUSE,
};
use crate::backup_files::BackupOutcome;
use crate::error::{EngineError, Result};
use crate::meta::to_value;
use crate::progress::Progress;
use crate::store::{seal_snapshot, snapshot_time, store_stream, store_tree, stream_node};
use lifeboat_repo::{BlobWriter, Id, Node, NodeKind, Repository, Snapshot, SnapshotStats, Tree};
use lifeboat_sources::clickhouse::catalog::{
    self, Column, Features, PartInfo, TableInfo, TableKind, EXPORT_SETTINGS,
};
use lifeboat_sources::clickhouse::http::ChClient;
use lifeboat_sources::clickhouse::native::NativeStream;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What to back up.
#[derive(Debug, Clone)]
pub struct ChBackup {
    /// Source name.
    pub source: String,
    /// The server.
    pub target: ChTarget,
    /// Databases (all but the system ones when empty).
    pub databases: Vec<String>,
    /// `db.table` globs to include (all when empty).
    pub include: Vec<String>,
    /// `db.table` globs to leave out.
    pub exclude: Vec<String>,
    /// Snapshot time instead of now.
    pub time: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// The parent's data: `(db, table, partition id)` -> (record, file node).
type ParentData = HashMap<(String, String, String), (PartitionRecord, Node)>;

/// Back up the server into the repository.
pub async fn backup_clickhouse(
    repo: Arc<Repository>,
    req: ChBackup,
    progress: Arc<Progress>,
) -> Result<BackupOutcome> {
    repo.ensure_writable()?;
    let started = std::time::Instant::now();
    let time = snapshot_time(req.time.as_deref())?;
    let parent = repo
        .snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| s.source == req.source && s.kind == KIND_CLICKHOUSE)
        .map(|(id, _)| id);
    let parent_snap = match parent {
        Some(id) => Some(repo.load_snapshot(&id).await?),
        None => None,
    };
    let writer = BlobWriter::new(repo.clone());
    let (writer, tree, meta, bytes) = tokio::task::spawn_blocking({
        let repo = repo.clone();
        let req = req.clone();
        move || -> Result<_> {
            let client = req.target.client()?;
            let parent_data = match &parent_snap {
                Some(s) => parent_data(&repo, s)?,
                None => HashMap::new(),
            };
            let mut run = Run {
                client: &client,
                repo: &repo,
                writer: &writer,
                progress: &progress,
                parent: parent_data,
                stats: ChStats::default(),
                notes: Vec::new(),
                bytes: 0,
            };
            let (tree, meta) = run.backup(&req)?;
            let bytes = run.bytes;
            Ok((writer, tree, meta, bytes))
        }
    })
    .await
    .expect("backup thread panicked")?;
    let snap = Snapshot {
        version: lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        time,
        host: crate::open::hostname(),
        user: std::env::var("USER").unwrap_or_default(),
        source: req.source,
        kind: KIND_CLICKHOUSE,
        paths: meta.databases.iter().map(|d| d.name.clone()).collect(),
        tags: req.tags,
        tree,
        parent,
        stats: SnapshotStats {
            files: meta.stats.partitions,
            dirs: meta.stats.tables,
            bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        },
        meta: to_value(&meta),
    };
    let (id, snapshot) = seal_snapshot(&repo, writer, snap).await?;
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings: Vec::new(),
    })
}

/// The parent snapshot's partitions with their file nodes.
fn parent_data(repo: &Repository, snap: &Snapshot) -> Result<ParentData> {
    let meta = ClickhouseMeta::of(snap)?;
    let root = repo.load_tree_blocking(&snap.tree)?;
    let mut out = HashMap::new();
    for db in &meta.databases {
        let Some(db_tree) = subtree(repo, &root, &encode_name(&db.name))? else {
            continue;
        };
        for t in &db.tables {
            let Some(t_tree) = subtree(repo, &db_tree, &encode_name(&t.name))? else {
                continue;
            };
            for p in &t.partitions {
                let file = partition_file(&p.id);
                if let Some(node) = t_tree
                    .nodes
                    .iter()
                    .find(|n| n.name_bytes() == file.as_bytes())
                {
                    out.insert(
                        (db.name.clone(), t.name.clone(), p.id.clone()),
                        (p.clone(), node.clone()),
                    );
                }
            }
        }
    }
    Ok(out)
}

fn subtree(repo: &Repository, tree: &Tree, name: &str) -> Result<Option<Tree>> {
    match tree
        .nodes
        .iter()
        .find(|n| n.name_bytes() == name.as_bytes())
    {
        Some(Node {
            subtree: Some(id), ..
        }) => Ok(Some(repo.load_tree_blocking(id)?)),
        _ => Ok(None),
    }
}

/// One backup run's state.
struct Run<'a> {
    client: &'a ChClient,
    repo: &'a Repository,
    writer: &'a BlobWriter,
    progress: &'a Progress,
    parent: ParentData,
    stats: ChStats,
    notes: Vec<String>,
    bytes: u64,
}

/// A table's catalog entry with its columns and parts.
struct Found {
    info: TableInfo,
    columns: Vec<Column>,
    parts: Vec<PartInfo>,
}

impl Run<'_> {
    fn backup(&mut self, req: &ChBackup) -> Result<(Id, ClickhouseMeta)> {
        self.progress.set_phase("reading the ClickHouse catalog");
        let c = self.client;
        let server_version = catalog::server_version(c)?;
        let mut features = catalog::features(c)?;
        let dbs = catalog::databases(c, &req.databases)?;
        let names: Vec<String> = dbs.iter().map(|d| d.name.clone()).collect();
        let mut found = self.catalog(&names, &features, req)?;
        if let Some(t) = found
            .values()
            .flatten()
            .find(|t| TableKind::of(&t.info.engine) == TableKind::MergeTree)
        {
            features.partition_id_column =
                catalog::probe_partition_id(c, &t.info.database, &t.info.name)?;
        }
        self.progress.set_phase("exporting ClickHouse partitions");
        let mut root = Tree::default();
        let mut records = Vec::new();
        for db in dbs {
            let tables = found.remove(&db.name).unwrap_or_default();
            let (tree, rec) = self.database(&db.name, &db.engine, tables, &features)?;
            root.nodes.push(dir_node(&encode_name(&db.name), tree));
            records.push(rec);
        }
        let tree = store_tree(self.writer, root)?;
        Ok((
            tree,
            ClickhouseMeta {
                server: c.url(),
                server_version,
                features,
                databases: records,
                stats: self.stats.clone(),
                notes: std::mem::take(&mut self.notes),
            },
        ))
    }

    /// The tables of `dbs` that the source selects, per database.
    fn catalog(
        &self,
        dbs: &[String],
        f: &Features,
        req: &ChBackup,
    ) -> Result<BTreeMap<String, Vec<Found>>> {
        let c = self.client;
        let tables = catalog::tables(c, dbs, f)?;
        let selected = select_tables(&tables, &req.include, &req.exclude)?;
        let mut columns: HashMap<(String, String), Vec<Column>> = HashMap::new();
        for (db, t, col) in catalog::columns(c, dbs)? {
            columns.entry((db, t)).or_default().push(col);
        }
        let mut parts: HashMap<(String, String), Vec<PartInfo>> = HashMap::new();
        for p in catalog::parts(c, dbs, f)? {
            parts
                .entry((p.database.clone(), p.table.clone()))
                .or_default()
                .push(p);
        }
        let mut out: BTreeMap<String, Vec<Found>> = BTreeMap::new();
        for info in tables
            .into_iter()
            .filter(|t| selected.contains(&(t.database.clone(), t.name.clone())))
        {
            let key = (info.database.clone(), info.name.clone());
            out.entry(info.database.clone()).or_default().push(Found {
                columns: columns.remove(&key).unwrap_or_default(),
                parts: parts.remove(&key).unwrap_or_default(),
                info,
            });
        }
        Ok(out)
    }

    fn database(
        &mut self,
        db: &str,
        engine: &str,
        tables: Vec<Found>,
        f: &Features,
    ) -> Result<(Id, DatabaseRecord)> {
        let create = catalog::show_create_database(self.client, db)?;
        let uuids: HashMap<String, String> = tables
            .iter()
            .filter_map(|t| Some((t.info.uuid.clone()?, t.info.name.clone())))
            .collect();
        let mut tree = Tree::default();
        let mut records = Vec::new();
        for t in tables {
            let (node, rec) = self.table(t, f, &uuids)?;
            if let Some(node) = node {
                tree.nodes.push(node);
            }
            records.push(rec);
        }
        let id = store_tree(self.writer, tree)?;
        Ok((
            id,
            DatabaseRecord {
                name: db.to_string(),
                engine: engine.to_string(),
                create,
                tables: records,
            },
        ))
    }

    fn table(
        &mut self,
        t: Found,
        f: &Features,
        uuids: &HashMap<String, String>,
    ) -> Result<(Option<Node>, TableRecord)> {
        let info = &t.info;
        let kind = TableKind::of(&info.engine);
        let create = catalog::show_create_table(self.client, &info.database, &info.name)?;
        let mut rec = TableRecord {
            name: info.name.clone(),
            engine: info.engine.clone(),
            kind,
            create,
            partition_key: info.partition_key.clone(),
            sorting_key: info.sorting_key.clone(),
            dependencies: info
                .dependencies_database
                .iter()
                .zip(&info.dependencies_table)
                .map(|(d, t)| format!("{d}.{t}"))
                .collect(),
            inner_of: inner_of(&info.name, uuids),
            uuid: info
                .uuid
                .clone()
                .filter(|u| !u.starts_with("00000000-0000-0000-0000")),
            columns: t.columns.clone(),
            partitions: Vec::new(),
        };
        self.stats.tables += 1;
        match kind {
            TableKind::Memory => self.notes.push(format!(
                "{}.{} is a Memory table: stored whole as it was now (its rows are lost whenever the server restarts)",
                info.database, info.name
            )),
            TableKind::Other => self.notes.push(format!(
                "{}.{} ({}): schema only, its engine keeps no data of its own that lifeboat stores",
                info.database, info.name, info.engine
            )),
            _ => {}
        }
        if !kind.has_data() {
            return Ok((None, rec));
        }
        let mut tree = Tree::default();
        for (id, value, parts) in partitions(kind, &t.parts) {
            let (node, p) = self.partition(&info.database, &rec, f, &id, &value, parts)?;
            self.stats.partitions += 1;
            self.stats.rows += p.rows;
            tree.nodes.push(node);
            rec.partitions.push(p);
        }
        let id = store_tree(self.writer, tree)?;
        Ok((Some(dir_node(&encode_name(&rec.name), id)), rec))
    }

    /// Reuse the parent's data of an unchanged partition, or export it.
    fn partition(
        &mut self,
        db: &str,
        t: &TableRecord,
        f: &Features,
        id: &str,
        value: &str,
        parts: Vec<PartRecord>,
    ) -> Result<(Node, PartitionRecord)> {
        let key = (db.to_string(), t.name.clone(), id.to_string());
        let filter = catalog::partition_filter(&t.partition_key, id, value, f.partition_id_column);
        let columns = t.physical_columns();
        let fp_sql = catalog::fingerprint_sql(db, &t.name, &columns, filter.as_deref());
        let parent = self.parent.remove(&key);
        if let Some((prev, node)) = &parent {
            if !parts.is_empty() && prev.parts == parts {
                return Ok(self.reused(node.clone(), prev, parts));
            }
        }
        let mut attempt = 0;
        loop {
            let (rows, hash) = catalog::fingerprint(self.client, &fp_sql)?;
            let hash = hash.to_string();
            if let Some((prev, node)) = &parent {
                if prev.rows == rows && prev.hash == hash {
                    return Ok(self.reused(node.clone(), prev, parts));
                }
            }
            let sql = catalog::export_sql(db, &t.name, filter.as_deref(), &t.sorting_key);
            let (content, bytes, exported) = self.export(&sql)?;
            if exported == rows {
                self.stats.partitions_read += 1;
                self.bytes += bytes;
                let file = partition_file(id);
                let node = stream_node(&file, content, bytes, 0);
                let rec = PartitionRecord {
                    id: id.to_string(),
                    value: value.to_string(),
                    rows,
                    hash,
                    bytes,
                    parts,
                    reused: false,
                };
                return Ok((node, rec));
            }
            attempt += 1;
            if attempt == 2 {
                return Err(EngineError::Source(format!(
                    "ClickHouse {}: partition {id} of {db}.{} exported {exported} rows where count() said {rows} (twice): the table is changing while it is backed up, or the export was cut short; nothing was stored",
                    self.client.url(),
                    t.name
                )));
            }
        }
    }

    fn reused(
        &mut self,
        node: Node,
        prev: &PartitionRecord,
        parts: Vec<PartRecord>,
    ) -> (Node, PartitionRecord) {
        self.stats.partitions_reused += 1;
        self.bytes += prev.bytes;
        (
            node,
            PartitionRecord {
                parts,
                reused: true,
                ..prev.clone()
            },
        )
    }

    /// Stream one Native export into the repository: (content, bytes, rows).
    fn export(&mut self, sql: &str) -> Result<(Vec<Id>, u64, u64)> {
        let url = self.client.url();
        let body = self.client.query(sql, EXPORT_SETTINGS)?;
        let mut stream = NativeStream::new(body, &url);
        let chunker = self.repo.cdc_chunker();
        let (content, bytes) = store_stream(self.writer, &chunker, &mut stream, self.progress)
            .map_err(|e| unwrap_stream_error(e, &url))?;
        Ok((content, bytes, stream.rows()))
    }
}

/// `.inner.NAME` / `.inner_id.UUID`: the materialized view it belongs to.
fn inner_of(name: &str, uuids: &HashMap<String, String>) -> Option<String> {
    if let Some(mv) = name.strip_prefix(".inner.") {
        return Some(mv.to_string());
    }
    let uuid = name.strip_prefix(".inner_id.")?;
    uuids.get(uuid).cloned()
}

/// The data partitions of a table: MergeTree parts grouped by partition,
/// or one `all` for Log and Memory tables.
fn partitions(kind: TableKind, parts: &[PartInfo]) -> Vec<(String, String, Vec<PartRecord>)> {
    if kind != TableKind::MergeTree {
        return vec![("all".into(), "tuple()".into(), Vec::new())];
    }
    let mut out: Vec<(String, String, Vec<PartRecord>)> = Vec::new();
    for p in parts {
        let rec = PartRecord {
            name: p.name.clone(),
            rows: p.rows,
            bytes: p.bytes_on_disk,
            hash_of_all_files: p.hash_of_all_files.clone(),
        };
        match out.last_mut() {
            Some((id, _, list)) if *id == p.partition_id => list.push(rec),
            _ => out.push((p.partition_id.clone(), p.partition.clone(), vec![rec])),
        }
    }
    out
}

/// The tables the source's globs select (`db.table`); an inner table
/// follows its materialized view.
fn select_tables(
    tables: &[TableInfo],
    include: &[String],
    exclude: &[String],
) -> Result<std::collections::HashSet<(String, String)>> {
    let compile = |pats: &[String]| -> Result<Vec<glob::Pattern>> {
        pats.iter()
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| {
                    EngineError::Config(format!("table pattern {p:?} is not a valid glob: {e}"))
                })
            })
            .collect()
    };
    let (inc, exc) = (compile(include)?, compile(exclude)?);
    let wanted = |db: &str, name: &str| {
        let full = format!("{db}.{name}");
        (inc.is_empty() || inc.iter().any(|p| p.matches(&full)))
            && !exc.iter().any(|p| p.matches(&full))
    };
    let uuids: HashMap<(String, String), String> = tables
        .iter()
        .filter_map(|t| Some(((t.database.clone(), t.uuid.clone()?), t.name.clone())))
        .collect();
    Ok(tables
        .iter()
        .filter(|t| {
            let by_uuid: HashMap<String, String> = uuids
                .iter()
                .filter(|((d, _), _)| *d == t.database)
                .map(|((_, u), n)| (u.clone(), n.clone()))
                .collect();
            match inner_of(&t.name, &by_uuid) {
                Some(mv) => wanted(&t.database, &mv),
                None => wanted(&t.database, &t.name),
            }
        })
        .map(|t| (t.database.clone(), t.name.clone()))
        .collect())
}

fn dir_node(name: &str, tree: Id) -> Node {
    let mut n = Node::new(name.as_bytes(), NodeKind::Dir);
    n.mode = 0o700;
    n.subtree = Some(tree);
    n
}
