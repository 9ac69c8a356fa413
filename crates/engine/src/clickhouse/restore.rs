//! Restore of a `clickhouse` snapshot into a server over HTTP.
//!
//! What: every database, one database (`--database D`, renamed with
//! `--as`), tables (`--table db.t`, one of them renamed with `--as NAME` or
//! `--as db.NAME`), or chosen partitions of one table (`--partition ID`).
//!
//! Checks first, changing nothing: a target table that already holds rows
//! (for `--partition`: rows in those partitions) is refused unless
//! `replace` is set.
//!
//! Then, in dependency order: databases (`CREATE DATABASE IF NOT EXISTS`,
//! the server's default engine); tables with data, then other engines
//! (`Distributed`, `Merge`, ...), each created from its stored `SHOW CREATE`
//! rewritten by [`schema::rewrite_create`] (no UUIDs, no `ON CLUSTER`,
//! `Replicated*MergeTree` as the plain engine, databases renamed) unless it
//! exists, and loaded; then materialized views (their `TO` targets are
//! tables, created before), whose inner tables are loaded once the view has
//! created them; then views. Source tables are loaded before the
//! materialized views reading them exist, so no view fires on restored rows.
//!
//! Loading streams each partition's Native file from the repository as the
//! body of `INSERT INTO t FORMAT Native`. Into a table that existed before
//! the restore (`--replace`, `--partition`) a MergeTree partition goes
//! through a staging table (`.lifeboat_staging_<name>`, created from the
//! same schema, dropped afterwards) and `ALTER TABLE t REPLACE PARTITION
//! <value> FROM staging`, so readers never see a half-restored partition
//! and views on `t` do not fire; with `--replace` on a whole table, its
//! partitions the snapshot does not have are dropped. A Log or Memory table
//! is truncated and loaded.

use super::{encode_name, partition_file, ChTarget, ClickhouseMeta, PartitionRecord, TableRecord};
use crate::error::{EngineError, Result};
use crate::progress::Progress;
use lifeboat_repo::{ContentReader, Node, Repository, Snapshot, Tree};
use lifeboat_sources::clickhouse::catalog::{self, qualified, quote_ident, Features, TableKind};
use lifeboat_sources::clickhouse::http::ChClient;
use lifeboat_sources::clickhouse::schema::{rewrite_create, Rewrite};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

/// What to restore, and where.
#[derive(Debug, Clone, Default)]
pub struct ChRestore {
    /// The server restored into.
    pub target: Option<ChTarget>,
    /// Only this database.
    pub database: Option<String>,
    /// Only these tables (`db.t`).
    pub tables: Vec<String>,
    /// New name of the one database or table restored.
    pub rename: Option<String>,
    /// Only these partitions (ids) of the one table restored.
    pub partitions: Vec<String>,
    /// Replace the data of tables that already hold rows.
    pub replace: bool,
    /// Print the statements instead of running them.
    pub dry_run: bool,
    /// Every database renamed (restore tests); overrides `database`/`rename`.
    pub database_map: Option<BTreeMap<String, String>>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChRestoreOutcome {
    /// The server (URL without credentials).
    pub server: String,
    /// Databases restored into.
    pub databases: Vec<String>,
    /// Objects created (`db.name`).
    pub created: Vec<String>,
    /// Tables loaded (`db.name`).
    pub loaded: Vec<String>,
    /// Partitions loaded.
    pub partitions: u64,
    /// Rows loaded.
    pub rows: u64,
    /// What the operator should know (engines rewritten, objects kept).
    pub notes: Vec<String>,
    /// A dry run: the statements it would run.
    pub planned: Option<Vec<String>>,
    /// Wall time.
    pub seconds: f64,
}

/// One object to restore.
#[derive(Debug, Clone)]
struct Item {
    src_db: String,
    rec: TableRecord,
    dst_db: String,
    dst_name: String,
}

impl Item {
    fn dst(&self) -> String {
        qualified(&self.dst_db, &self.dst_name)
    }

    fn label(&self) -> String {
        format!("{}.{}", self.dst_db, self.dst_name)
    }
}

/// Restore `snap` as `req` says.
pub async fn restore_clickhouse(
    repo: &Arc<Repository>,
    snap: &Snapshot,
    req: ChRestore,
    progress: Arc<Progress>,
) -> Result<ChRestoreOutcome> {
    let meta = ClickhouseMeta::of(snap)?;
    let (items, map) = select(&meta, &req)?;
    let repo = repo.clone();
    let tree = snap.tree;
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let target = req.target.clone().ok_or_else(|| {
            EngineError::Config("a ClickHouse restore needs --to http(s)://host:port".into())
        })?;
        let client = target.client()?;
        let features = catalog::features(&client)?;
        let mut run = Exec {
            client: &client,
            repo: &repo,
            root: repo.load_tree_blocking(&tree)?,
            features,
            progress: &progress,
            dry: req.dry_run,
            planned: Vec::new(),
            out: ChRestoreOutcome {
                server: client.url(),
                ..Default::default()
            },
        };
        run.restore(&items, &map, &req)?;
        let mut out = run.out;
        if req.dry_run {
            out.planned = Some(run.planned);
        }
        out.seconds = started.elapsed().as_secs_f64();
        Ok(out)
    })
    .await
    .expect("restore thread panicked")
}

/// The objects to restore and the database renames, from the request.
fn select(meta: &ClickhouseMeta, req: &ChRestore) -> Result<(Vec<Item>, BTreeMap<String, String>)> {
    let bad = |m: String| Err(EngineError::Config(m));
    if !req.partitions.is_empty() && req.tables.len() != 1 {
        return bad("--partition needs exactly one --table db.t".into());
    }
    if req.rename.is_some() && req.database.is_none() && req.tables.len() != 1 {
        return bad("--as renames one database (--database D --as NEW) or one table (--table db.t --as NEW)".into());
    }
    let mut map = BTreeMap::new();
    let mut items = Vec::new();
    if let Some(m) = &req.database_map {
        map = m.clone();
    }
    let push = |items: &mut Vec<Item>, db: &str, t: &TableRecord, dst_db: &str, dst_name: &str| {
        items.push(Item {
            src_db: db.to_string(),
            rec: t.clone(),
            dst_db: dst_db.to_string(),
            dst_name: dst_name.to_string(),
        })
    };
    if !req.tables.is_empty() {
        for spec in &req.tables {
            let (db, name) = spec.split_once('.').ok_or_else(|| {
                EngineError::Config(format!("--table {spec:?}: name the table as db.table"))
            })?;
            let t = meta.table(db, name).ok_or_else(|| {
                EngineError::Repo(lifeboat_repo::Error::NotFound(format!(
                    "table {spec} is not in the snapshot (it holds: {})",
                    table_list(meta)
                )))
            })?;
            let (dst_db, dst_name) = match &req.rename {
                Some(r) => match r.split_once('.') {
                    Some((d, n)) => (d.to_string(), n.to_string()),
                    None => (db.to_string(), r.clone()),
                },
                None => (
                    map.get(db).cloned().unwrap_or(db.to_string()),
                    name.to_string(),
                ),
            };
            push(&mut items, db, t, &dst_db, &dst_name);
            // A materialized view brings its inner table's data.
            let d = meta
                .databases
                .iter()
                .find(|d| d.name == db)
                .expect("found above");
            for inner in d
                .tables
                .iter()
                .filter(|i| i.inner_of.as_deref() == Some(name))
            {
                push(&mut items, db, inner, &dst_db, &inner.name);
            }
        }
        if !req.partitions.is_empty() {
            check_partitions(&items[0].rec, &req.partitions)?;
        }
        return Ok((items, map));
    }
    for d in &meta.databases {
        if req.database.as_ref().is_some_and(|w| w != &d.name) {
            continue;
        }
        let dst_db = match (&req.database, &req.rename) {
            (Some(_), Some(new)) => new.clone(),
            _ => map.get(&d.name).cloned().unwrap_or(d.name.clone()),
        };
        map.insert(d.name.clone(), dst_db.clone());
        for t in &d.tables {
            push(&mut items, &d.name, t, &dst_db, &t.name);
        }
    }
    if let Some(w) = &req.database {
        if !meta.databases.iter().any(|d| &d.name == w) {
            return Err(EngineError::Repo(lifeboat_repo::Error::NotFound(format!(
                "database {w} is not in the snapshot (it holds: {})",
                meta.databases
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
    }
    // Keep only identity entries out of the map (they rename nothing).
    map.retain(|k, v| k != v);
    Ok((items, map))
}

fn table_list(meta: &ClickhouseMeta) -> String {
    meta.databases
        .iter()
        .flat_map(|d| {
            d.tables
                .iter()
                .map(move |t| format!("{}.{}", d.name, t.name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_partitions(t: &TableRecord, wanted: &[String]) -> Result<()> {
    if t.kind != TableKind::MergeTree {
        return Err(EngineError::Config(format!(
            "--partition applies to MergeTree tables; {} is {}",
            t.name, t.engine
        )));
    }
    for w in wanted {
        if !t.partitions.iter().any(|p| &p.id == w) {
            return Err(EngineError::Repo(lifeboat_repo::Error::NotFound(format!(
                "partition {w} of {} is not in the snapshot (it holds: {})",
                t.name,
                t.partitions
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
    }
    Ok(())
}

/// The running restore.
struct Exec<'a> {
    client: &'a ChClient,
    repo: &'a Arc<Repository>,
    root: Tree,
    features: Features,
    progress: &'a Arc<Progress>,
    dry: bool,
    planned: Vec<String>,
    out: ChRestoreOutcome,
}

/// How a table's data goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Straight `INSERT` (a table created by this restore).
    Insert,
    /// Through staging and `REPLACE PARTITION` (or truncate first for Log
    /// and Memory): the table existed.
    Replace,
}

impl Exec<'_> {
    fn restore(
        &mut self,
        items: &[Item],
        map: &BTreeMap<String, String>,
        req: &ChRestore,
    ) -> Result<()> {
        self.progress.set_phase("checking the ClickHouse target");
        let plain: Vec<&Item> = items
            .iter()
            .filter(|i| i.rec.inner_of.is_none() && !is_view(&i.rec))
            .collect();
        let mut existing = HashMap::new();
        let mut full = Vec::new();
        for it in &plain {
            let exists = self.exists(&it.dst_db, &it.dst_name)?;
            if exists && it.rec.kind.has_data() && self.holds_rows(it, &req.partitions)? {
                full.push(it.label());
            }
            existing.insert(it.label(), exists);
        }
        if !full.is_empty() && !req.replace {
            return Err(EngineError::TargetNotEmpty(format!(
                "ClickHouse {}: {} already hold{} rows; nothing was changed (pass --replace to replace their data, partition by partition through REPLACE PARTITION)",
                self.client.url(),
                full.join(", "),
                if full.len() == 1 { "s" } else { "" }
            )));
        }
        self.progress.set_phase("restoring into ClickHouse");
        let mut dbs: Vec<String> = items.iter().map(|i| i.dst_db.clone()).collect();
        dbs.dedup();
        for db in &dbs {
            self.run(&format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                quote_ident(db)
            ))?;
        }
        self.out.databases = dbs;
        let (data, other): (Vec<&Item>, Vec<&Item>) =
            plain.iter().partition(|i| i.rec.kind.has_data());
        for it in data.iter().chain(other.iter()) {
            let existed = existing.get(&it.label()).copied().unwrap_or(false);
            if !existed {
                self.create(it, map)?;
            }
            if it.rec.kind.has_data() {
                let load = if existed { Load::Replace } else { Load::Insert };
                self.load(it, &it.dst_name, load, &req.partitions, map)?;
            }
        }
        for mv in items
            .iter()
            .filter(|i| i.rec.kind == TableKind::MaterializedView)
        {
            let existed = self.exists(&mv.dst_db, &mv.dst_name)?;
            if !existed {
                self.create(mv, map)?;
            }
            for inner in items.iter().filter(|i| {
                i.src_db == mv.src_db && i.rec.inner_of.as_deref() == Some(&mv.rec.name)
            }) {
                let name = self.inner_table(&mv.dst_db, &mv.dst_name)?;
                let load = if existed { Load::Replace } else { Load::Insert };
                self.load(inner, &name, load, &[], map)?;
            }
        }
        self.create_views(
            items
                .iter()
                .filter(|i| i.rec.kind == TableKind::View)
                .collect(),
            map,
        )
    }

    /// Views, in passes: a view may read from another view; a pass that
    /// creates nothing ends the restore with its last error.
    fn create_views(
        &mut self,
        mut pending: Vec<&Item>,
        map: &BTreeMap<String, String>,
    ) -> Result<()> {
        while !pending.is_empty() {
            let before = pending.len();
            let mut failed = Vec::new();
            let mut last_err = None;
            for v in std::mem::take(&mut pending) {
                if self.exists(&v.dst_db, &v.dst_name)? {
                    self.out
                        .notes
                        .push(format!("view {} exists and was kept", v.label()));
                } else if let Err(e) = self.create(v, map) {
                    last_err = Some(e);
                    failed.push(v);
                }
            }
            if failed.len() == before {
                return Err(last_err.expect("a failed view has an error"));
            }
            pending = failed;
        }
        Ok(())
    }

    fn exists(&self, db: &str, name: &str) -> Result<bool> {
        let text = self
            .client
            .query_text(&format!("EXISTS TABLE {}", qualified(db, name)))?;
        Ok(text.trim() == "1")
    }

    /// Whether the target table (or the partitions asked for) holds rows.
    fn holds_rows(&self, it: &Item, partitions: &[String]) -> Result<bool> {
        let mut conditions = Vec::new();
        for p in it
            .rec
            .partitions
            .iter()
            .filter(|p| partitions.is_empty() || partitions.contains(&p.id))
        {
            if !partitions.is_empty() {
                if let Some(f) =
                    catalog::partition_filter(&it.rec.partition_key, &p.id, &p.value, false)
                {
                    conditions.push(f);
                }
            }
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" OR "))
        };
        let n = self
            .client
            .query_text(&format!("SELECT count() FROM {}{filter}", it.dst()))?;
        Ok(n.trim() != "0")
    }

    fn create(&mut self, it: &Item, map: &BTreeMap<String, String>) -> Result<()> {
        let rw = rewrite_create(
            &it.rec.create,
            &Rewrite {
                name: Some((it.dst_db.clone(), it.dst_name.clone())),
                databases: map.clone(),
            },
        );
        if rw.unreplicated {
            self.out.notes.push(format!(
                "{} was {}; restored with the plain engine (a single-server restore never joins the original's replication)",
                it.label(),
                it.rec.engine
            ));
        }
        self.run(&rw.sql)?;
        self.out.created.push(it.label());
        Ok(())
    }

    /// A materialized view's inner table in the target.
    fn inner_table(&self, db: &str, mv: &str) -> Result<String> {
        inner_table_name(self.client, &self.features, db, mv, self.dry)
    }

    /// Load a table's partitions (those asked for, or all) into the table
    /// `name` of the item's target database.
    fn load(
        &mut self,
        it: &Item,
        name: &str,
        load: Load,
        only: &[String],
        map: &BTreeMap<String, String>,
    ) -> Result<()> {
        let dst = &qualified(&it.dst_db, name);
        let files = self.table_files(&it.src_db, &it.rec.name)?;
        let parts: Vec<&PartitionRecord> = it
            .rec
            .partitions
            .iter()
            .filter(|p| only.is_empty() || only.contains(&p.id))
            .collect();
        let mergetree = it.rec.kind == TableKind::MergeTree;
        match (load, mergetree) {
            (Load::Insert, _) => {
                for p in &parts {
                    self.insert(dst, files.get(&partition_file(&p.id)), p)?;
                }
            }
            (Load::Replace, false) => {
                self.run(&format!("TRUNCATE TABLE {dst}"))?;
                for p in &parts {
                    self.insert(dst, files.get(&partition_file(&p.id)), p)?;
                }
            }
            (Load::Replace, true) => {
                self.replace_partitions(it, name, &parts, &files, only.is_empty(), map)?
            }
        }
        self.out.loaded.push(it.label());
        Ok(())
    }

    /// Staging table, one partition at a time, `REPLACE PARTITION`; with
    /// `whole`, drop the target's partitions the snapshot lacks.
    fn replace_partitions(
        &mut self,
        it: &Item,
        name: &str,
        parts: &[&PartitionRecord],
        files: &HashMap<String, Node>,
        whole: bool,
        map: &BTreeMap<String, String>,
    ) -> Result<()> {
        let db = it.dst_db.clone();
        let dst = &qualified(&db, name);
        let staging_name = format!(".lifeboat_staging_{name}");
        let staging = qualified(&db, &staging_name);
        self.run(&format!("DROP TABLE IF EXISTS {staging}"))?;
        let rw = rewrite_create(
            &it.rec.create,
            &Rewrite {
                name: Some((db.clone(), staging_name.clone())),
                databases: map.clone(),
            },
        );
        self.run(&rw.sql)?;
        let result = (|| -> Result<()> {
            for p in parts {
                self.run(&format!("TRUNCATE TABLE {staging}"))?;
                self.insert(&staging, files.get(&partition_file(&p.id)), p)?;
                self.run(&format!(
                    "ALTER TABLE {dst} REPLACE PARTITION {} FROM {staging}",
                    p.value
                ))?;
            }
            if whole {
                self.drop_other_partitions(it, name)?;
            }
            Ok(())
        })();
        let dropped = self.run(&format!("DROP TABLE IF EXISTS {staging}"));
        result?;
        dropped
    }

    /// Drop the partitions of `dst` that the snapshot does not hold.
    fn drop_other_partitions(&mut self, it: &Item, name: &str) -> Result<()> {
        let (db, dst) = (it.dst_db.as_str(), qualified(&it.dst_db, name));
        if self.dry {
            self.planned.push(format!(
                "-- drop the partitions of {dst} that the snapshot does not hold"
            ));
            return Ok(());
        }
        #[derive(serde::Deserialize)]
        struct P {
            partition_id: String,
            partition: String,
        }
        let present: Vec<P> = catalog::json_rows(
            self.client,
            &format!(
                "SELECT DISTINCT partition_id, partition FROM system.parts WHERE active AND database = {} AND table = {}",
                catalog::quote_str(db),
                catalog::quote_str(name)
            ),
        )?;
        for p in present {
            if !it.rec.partitions.iter().any(|s| s.id == p.partition_id) {
                self.run(&format!("ALTER TABLE {dst} DROP PARTITION {}", p.partition))?;
            }
        }
        Ok(())
    }

    /// Stream one partition's file into `INSERT INTO dst FORMAT Native`.
    fn insert(&mut self, dst: &str, node: Option<&Node>, p: &PartitionRecord) -> Result<()> {
        let node = node.ok_or_else(|| {
            EngineError::Repo(lifeboat_repo::Error::Corrupt(format!(
                "the snapshot has no data file for partition {} of {dst}",
                p.id
            )))
        })?;
        let sql = format!("INSERT INTO {dst} FORMAT Native");
        self.out.partitions += 1;
        self.out.rows += p.rows;
        if self.dry {
            self.planned
                .push(format!("{sql}  -- partition {}, {} rows", p.id, p.rows));
            return Ok(());
        }
        let reader = Counting {
            inner: ContentReader::new(self.repo.clone(), node.content.clone(), 2),
            progress: self.progress.clone(),
        };
        self.client.insert(&sql, reader)?;
        Ok(())
    }

    /// The file nodes of a table's directory in the snapshot.
    fn table_files(&self, db: &str, table: &str) -> Result<HashMap<String, Node>> {
        let find = |tree: &Tree, name: &str| {
            tree.nodes
                .iter()
                .find(|n| n.name_bytes() == name.as_bytes())
                .and_then(|n| n.subtree)
        };
        let Some(db_id) = find(&self.root, &encode_name(db)) else {
            return Ok(HashMap::new());
        };
        let db_tree = self.repo.load_tree_blocking(&db_id)?;
        let Some(t_id) = find(&db_tree, &encode_name(table)) else {
            return Ok(HashMap::new());
        };
        let t_tree = self.repo.load_tree_blocking(&t_id)?;
        Ok(t_tree
            .nodes
            .into_iter()
            .map(|n| (String::from_utf8_lossy(&n.name_bytes()).into_owned(), n))
            .collect())
    }

    /// Run a statement (or, in a dry run, record it).
    fn run(&mut self, sql: &str) -> Result<()> {
        if self.dry {
            self.planned.push(sql.to_string());
            return Ok(());
        }
        self.client.execute(sql)?;
        Ok(())
    }
}

/// The inner table of the materialized view `db.mv` on the server:
/// `.inner.<mv>` (Ordinary databases, or in a dry run), else
/// `.inner_id.<the view's uuid>` (Atomic databases).
pub(crate) fn inner_table_name(
    c: &ChClient,
    f: &Features,
    db: &str,
    mv: &str,
    dry: bool,
) -> Result<String> {
    let old = format!(".inner.{mv}");
    let exists = |name: &str| -> Result<bool> {
        Ok(
            c.query_text(&format!("EXISTS TABLE {}", qualified(db, name)))?
                .trim()
                == "1",
        )
    };
    if dry || !f.table_uuid || exists(&old)? {
        return Ok(old);
    }
    let uuid = c.query_text(&format!(
        "SELECT toString(uuid) FROM system.tables WHERE database = {} AND name = {}",
        catalog::quote_str(db),
        catalog::quote_str(mv)
    ))?;
    Ok(format!(".inner_id.{}", uuid.trim()))
}

fn is_view(t: &TableRecord) -> bool {
    matches!(t.kind, TableKind::View | TableKind::MaterializedView)
}

/// A reader that counts the bytes it hands on into the progress.
struct Counting<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}
