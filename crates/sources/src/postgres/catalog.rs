//! The catalog questions lifeboat asks a server: version, database existence
//! and emptiness, sizes, row counts, and the [`DependencyInfo`] recorded at
//! backup time for partial restores, and the [`TargetCatalog`] of a restore target.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::ident::{qualified, quote_ident, quote_literal, split_qualified};
use super::psql::{OneShot, Sql};
use super::tools::ClientTools;

/// Namespaces that never hold user objects.
pub(crate) const SYSTEM_SCHEMA_FILTER: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// `server_version_num`, e.g. 150018 for 15.18.
pub fn server_version_num(tools: &ClientTools, target: &PgTarget) -> Result<u32> {
    let v = single_value(tools, target, "SHOW server_version_num;")?;
    v.trim().parse().map_err(|_| PgError::Parse {
        what: "server_version_num".into(),
        detail: v,
    })
}

/// Major version from a `server_version_num` (15 for 150018, 9 for 90624).
pub fn major_of(version_num: u32) -> u32 {
    version_num / 10000
}

/// Major version of the server (e.g. 15).
pub fn server_major(tools: &ClientTools, target: &PgTarget) -> Result<u32> {
    Ok(major_of(server_version_num(tools, target)?))
}

fn single_value(tools: &ClientTools, target: &PgTarget, sql: &str) -> Result<String> {
    single_value_in(&mut OneShot { tools, target }, sql)
}

fn single_value_in(db: &mut dyn Sql, sql: &str) -> Result<String> {
    let rows = db.rows(sql)?;
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .ok_or_else(|| PgError::Parse {
            what: "query result".into(),
            detail: format!("no row returned by {sql}"),
        })
}

fn parse_i64(s: &str, what: &str) -> Result<i64> {
    let s = s.trim();
    // reltuples is a float4 and may print as e.g. 1e+06.
    s.parse::<i64>()
        .or_else(|_| s.parse::<f64>().map(|f| f as i64))
        .map_err(|_| PgError::Parse {
            what: what.into(),
            detail: s.to_string(),
        })
}

/// Whether database `name` exists on the server of `target`.
pub fn database_exists(tools: &ClientTools, target: &PgTarget, name: &str) -> Result<bool> {
    let sql = format!(
        "SELECT count(*) FROM pg_database WHERE datname = {};",
        quote_literal(name)
    );
    Ok(single_value(tools, target, &sql)?.trim() != "0")
}

/// Creates database `name` from `template0` (what pg_restore expects), owned by the
/// connecting user. `target` must point at an existing database (e.g. `postgres`).
pub fn create_database(tools: &ClientTools, target: &PgTarget, name: &str) -> Result<()> {
    let sql = format!("CREATE DATABASE {} TEMPLATE template0;", quote_ident(name));
    OneShot { tools, target }.rows(&sql).map(|_| ())
}

/// Creates database `name` from `template0`, owned by role `owner`.
pub fn create_database_owned_by(
    tools: &ClientTools,
    target: &PgTarget,
    name: &str,
    owner: &str,
) -> Result<()> {
    let sql = format!(
        "CREATE DATABASE {} OWNER {} TEMPLATE template0;",
        quote_ident(name),
        quote_ident(owner)
    );
    OneShot { tools, target }.rows(&sql).map(|_| ())
}

/// Creates a login role without superuser, role-creation or database-creation
/// rights, with `password` (sent in-process, never on argv or in an environment).
pub fn create_login_role(
    tools: &ClientTools,
    target: &PgTarget,
    name: &str,
    password: &str,
) -> Result<()> {
    let sql = format!(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD {};",
        quote_ident(name),
        quote_literal(password)
    );
    OneShot { tools, target }.rows(&sql).map(|_| ())
}

/// Whether the connecting role is a superuser.
pub fn is_superuser(tools: &ClientTools, target: &PgTarget) -> Result<bool> {
    let sql = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user;";
    Ok(first_value(tools, target, sql)?.as_deref() == Some("t"))
}

/// Names of the extensions the server marks `trusted` (PostgreSQL 13+; the
/// query fails on older servers, where no extension is trusted).
pub fn trusted_extensions(tools: &ClientTools, target: &PgTarget) -> Result<Vec<String>> {
    let sql = "SELECT name FROM pg_available_extension_versions WHERE trusted GROUP BY name;";
    let rows = OneShot { tools, target }.rows(sql)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect())
}

/// `REFRESH MATERIALIZED VIEW schema.name`.
pub fn refresh_materialized_view(
    tools: &ClientTools,
    target: &PgTarget,
    schema: &str,
    name: &str,
) -> Result<()> {
    let sql = format!(
        "REFRESH MATERIALIZED VIEW {}.{};",
        quote_ident(schema),
        quote_ident(name)
    );
    OneShot { tools, target }.rows(&sql).map(|_| ())
}

/// The first field of the first row of `sql` (`None` when it returns no row),
/// run in its own session as `target`'s user.
pub fn first_value(tools: &ClientTools, target: &PgTarget, sql: &str) -> Result<Option<String>> {
    let rows = OneShot { tools, target }.rows(sql)?;
    Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()))
}

/// Drops database `name` if it exists (used for scratch restore tests).
pub fn drop_database(tools: &ClientTools, target: &PgTarget, name: &str) -> Result<()> {
    let sql = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE);",
        quote_ident(name)
    );
    OneShot { tools, target }.rows(&sql).map(|_| ())
}

/// Whether the database has no user objects: no tables, views, sequences,
/// functions or types outside the system schemas, ignoring objects that belong
/// to extensions. A safe target for a full restore.
pub fn is_database_empty(tools: &ClientTools, target: &PgTarget) -> Result<bool> {
    is_database_empty_except(tools, target, &[])
}

/// [`is_database_empty`], not counting objects in `schemas` (names, `*` a
/// wildcard): e.g. a Supabase platform's own schemas.
pub fn is_database_empty_except(
    tools: &ClientTools,
    target: &PgTarget,
    schemas: &[&str],
) -> Result<bool> {
    let patterns: Vec<String> = schemas
        .iter()
        .map(|s| quote_literal(&s.replace('_', "\\_").replace('*', "%")))
        .collect();
    let sys = match patterns.is_empty() {
        true => SYSTEM_SCHEMA_FILTER.to_string(),
        false => format!(
            "{SYSTEM_SCHEMA_FILTER} AND n.nspname NOT LIKE ALL (ARRAY[{}])",
            patterns.join(", ")
        ),
    };
    let not_ext = |catalog: &str, col: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass \
             AND d.objid = {col} AND d.deptype = 'e')"
        )
    };
    let sql = format!(
        "SELECT \
         (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
            WHERE c.relkind IN ('r','p','v','m','S','f') AND {sys} AND {c_ext}) \
         + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
            WHERE {sys} AND {p_ext}) \
         + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
            WHERE {sys} AND {t_ext} AND (t.typtype IN ('e','d','r') \
              OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')));",
        c_ext = not_ext("pg_class", "c.oid"),
        p_ext = not_ext("pg_proc", "p.oid"),
        t_ext = not_ext("pg_type", "t.oid"),
    );
    Ok(single_value(tools, target, &sql)?.trim() == "0")
}

/// Size of one relation as the catalog sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStat {
    /// Schema name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// `table`, `partitioned table`, `materialized view` or `foreign table`.
    pub kind: String,
    /// `pg_class.reltuples`; -1 when the table was never vacuumed or analyzed
    /// (unknown), see [`TableStat::rows_known`].
    pub row_estimate: i64,
    /// `pg_total_relation_size` (table + indexes + TOAST), bytes.
    pub bytes: i64,
}

impl TableStat {
    /// The row estimate, or `None` when the statistics say "unknown".
    pub fn rows_known(&self) -> Option<i64> {
        (self.row_estimate >= 0).then_some(self.row_estimate)
    }

    /// `schema.name`.
    pub fn qualified(&self) -> String {
        qualified(&self.schema, &self.name)
    }
}

/// Catalog statistics for every user table, partition, materialized view and
/// foreign table (extension-owned relations excluded), ordered by schema and name.
pub fn table_stats(tools: &ClientTools, target: &PgTarget) -> Result<Vec<TableStat>> {
    table_stats_in(&mut OneShot { tools, target })
}

/// [`table_stats`] through `db` (e.g. a session in the dump's snapshot).
pub fn table_stats_in(db: &mut dyn Sql) -> Result<Vec<TableStat>> {
    let sql = format!(
        "SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint, \
                pg_total_relation_size(c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r','p','m','f') AND {SYSTEM_SCHEMA_FILTER} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 1, 2;"
    );
    db.rows(&sql)?
        .into_iter()
        .map(|r| {
            let [schema, name, kind, rows, bytes]: [String; 5] = r
                .try_into()
                .map_err(|r: Vec<String>| bad_row("table_stats", &r))?;
            let kind = match kind.as_str() {
                "r" => "table",
                "p" => "partitioned table",
                "m" => "materialized view",
                "f" => "foreign table",
                other => other,
            }
            .to_string();
            let row_estimate = parse_i64(&rows, "reltuples")?;
            Ok(TableStat {
                schema,
                name,
                kind,
                row_estimate: if row_estimate < 0 { -1 } else { row_estimate },
                bytes: parse_i64(&bytes, "relation size")?,
            })
        })
        .collect()
}

fn bad_row(what: &str, row: &[String]) -> PgError {
    PgError::Parse {
        what: what.into(),
        detail: format!("unexpected row with {} fields", row.len()),
    }
}

/// `count(*)` of each table (names as `schema.table` or `table`), keyed by the
/// name as given.
pub fn exact_row_counts(
    tools: &ClientTools,
    target: &PgTarget,
    tables: &[String],
) -> Result<BTreeMap<String, i64>> {
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    let parts: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (schema, name) = split_qualified(t);
            let rel = match schema {
                Some(s) => format!("{}.{}", quote_ident(&s), quote_ident(&name)),
                None => quote_ident(&name),
            };
            format!("SELECT {i}, count(*) FROM ONLY {rel}")
        })
        .collect();
    let sql = format!("{};", parts.join(" UNION ALL "));
    let mut out = BTreeMap::new();
    for r in (OneShot { tools, target }).rows(&sql)? {
        let [i, n]: [String; 2] = r
            .try_into()
            .map_err(|r: Vec<String>| bad_row("row counts", &r))?;
        let i: usize = i.parse().map_err(|_| bad_row("row counts", &[]))?;
        out.insert(tables[i].clone(), parse_i64(&n, "count")?);
    }
    Ok(out)
}

/// `pg_database_size` of the target database, bytes.
pub fn database_size(tools: &ClientTools, target: &PgTarget) -> Result<i64> {
    database_size_in(&mut OneShot { tools, target })
}

/// [`database_size`] through `db`.
pub fn database_size_in(db: &mut dyn Sql) -> Result<i64> {
    let v = single_value_in(db, "SELECT pg_database_size(current_database());")?;
    parse_i64(&v, "database size")
}

/// What belongs to a table, beyond what pg_restore's TOC says: the TOC names an
/// index without its table, and a foreign key without the table it references.
/// Stored in snapshot metadata; used to select a table's entries for partial restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyInfo {
    /// Per relation, keyed by `schema.name`.
    pub tables: BTreeMap<String, TableDeps>,
}

/// Objects that depend on, or are needed by, one relation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDeps {
    /// Schema of the relation.
    pub schema: String,
    /// Name of the relation.
    pub name: String,
    /// Indexes on the relation (they live in the relation's schema).
    pub indexes: Vec<String>,
    /// Foreign-key constraints declared on the relation.
    pub foreign_keys: Vec<ForeignKey>,
    /// Sequences owned by its columns (serial / identity), as `schema.name`.
    pub owned_sequences: Vec<String>,
    /// Extended statistics objects on the relation, as `schema.name`.
    pub statistics: Vec<String>,
    /// Partition or inheritance parent, as `schema.name`.
    pub parent: Option<String>,
    /// User-defined types its columns use (enum, domain, range, composite), as `schema.name`.
    pub types: Vec<String>,
    /// Functions its triggers call, as `schema.name(argtypes)` (pg_dump's TOC tag form).
    #[serde(default)]
    pub functions: Vec<String>,
}

/// One foreign-key constraint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referenced relation as `schema.name`.
    pub references: String,
}

impl DependencyInfo {
    /// The table an index belongs to, as `schema.name`.
    pub fn table_of_index(&self, schema: &str, index: &str) -> Option<&str> {
        self.tables
            .iter()
            .find(|(_, t)| t.schema == schema && t.indexes.iter().any(|i| i == index))
            .map(|(k, _)| k.as_str())
    }

    /// The table an extended statistics object belongs to, as `schema.name`.
    pub fn table_of_statistics(&self, qualified_stat: &str) -> Option<&str> {
        self.tables
            .iter()
            .find(|(_, t)| t.statistics.iter().any(|s| s == qualified_stat))
            .map(|(k, _)| k.as_str())
    }

    /// Children (partitions or inheritors) of a relation, as `schema.name`.
    pub fn children_of(&self, qualified_parent: &str) -> Vec<&str> {
        self.tables
            .iter()
            .filter(|(_, t)| t.parent.as_deref() == Some(qualified_parent))
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Reads [`DependencyInfo`] for every user relation of the target database.
pub fn dependency_info(tools: &ClientTools, target: &PgTarget) -> Result<DependencyInfo> {
    dependency_info_in(&mut OneShot { tools, target })
}

/// [`dependency_info`] through `db` (e.g. a session in the dump's snapshot).
pub fn dependency_info_in(db: &mut dyn Sql) -> Result<DependencyInfo> {
    let sql = format!(
        "SELECT 'T', n.nspname, c.relname, '', '' FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE c.relkind IN ('r','p','m','f','v') AND {SYSTEM_SCHEMA_FILTER};
         SELECT 'I', n.nspname, t.relname, i.relname, '' FROM pg_index x \
           JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
           JOIN pg_namespace n ON n.oid = t.relnamespace WHERE {SYSTEM_SCHEMA_FILTER};
         SELECT 'F', n.nspname, t.relname, con.conname, rn.nspname || '.' || r.relname \
           FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid \
           JOIN pg_namespace n ON n.oid = t.relnamespace \
           JOIN pg_class r ON r.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace \
           WHERE con.contype = 'f' AND {SYSTEM_SCHEMA_FILTER};
         SELECT 'S', n.nspname, t.relname, sn.nspname || '.' || s.relname, '' FROM pg_depend d \
           JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
           JOIN pg_namespace sn ON sn.oid = s.relnamespace \
           JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace \
           WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
             AND d.deptype IN ('a', 'i') AND {SYSTEM_SCHEMA_FILTER};
         SELECT 'X', n.nspname, t.relname, sn.nspname || '.' || x.stxname, '' FROM pg_statistic_ext x \
           JOIN pg_namespace sn ON sn.oid = x.stxnamespace \
           JOIN pg_class t ON t.oid = x.stxrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
           WHERE {SYSTEM_SCHEMA_FILTER};
         SELECT 'P', n.nspname, t.relname, pn.nspname || '.' || p.relname, '' FROM pg_inherits h \
           JOIN pg_class t ON t.oid = h.inhrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
           JOIN pg_class p ON p.oid = h.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace \
           WHERE t.relkind IN ('r','p','f','m') AND {SYSTEM_SCHEMA_FILTER};
         SELECT DISTINCT 'Y', n.nspname, c.relname, tn.nspname || '.' || ty.typname, '' \
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_type t0 ON t0.oid = a.atttypid \
           JOIN pg_type ty ON ty.oid = CASE WHEN t0.typcategory = 'A' THEN t0.typelem ELSE t0.oid END \
           JOIN pg_namespace tn ON tn.oid = ty.typnamespace \
           WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','m','f','v') \
             AND {SYSTEM_SCHEMA_FILTER} \
             AND tn.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND (ty.typtype IN ('e','d','r') OR (ty.typtype = 'c' AND \
                  (SELECT relkind FROM pg_class WHERE oid = ty.typrelid) = 'c')) \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass \
                             AND d.objid = ty.oid AND d.deptype = 'e');
         SELECT DISTINCT 'G', n.nspname, c.relname, \
                pn.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')', '' \
           FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_proc p ON p.oid = tg.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace \
           WHERE NOT tg.tgisinternal AND {SYSTEM_SCHEMA_FILTER} \
             AND pn.nspname NOT IN ('pg_catalog', 'information_schema');"
    );
    let mut info = DependencyInfo::default();
    for r in db.rows(&sql)? {
        let [kind, schema, name, a, b]: [String; 5] = r
            .try_into()
            .map_err(|r: Vec<String>| bad_row("dependency info", &r))?;
        let entry = info
            .tables
            .entry(qualified(&schema, &name))
            .or_insert_with(|| TableDeps {
                schema: schema.clone(),
                name: name.clone(),
                ..TableDeps::default()
            });
        match kind.as_str() {
            "I" => entry.indexes.push(a),
            "F" => entry.foreign_keys.push(ForeignKey {
                name: a,
                references: b,
            }),
            "S" => entry.owned_sequences.push(a),
            "X" => entry.statistics.push(a),
            "P" => entry.parent = Some(a),
            "Y" => entry.types.push(a),
            "G" => entry.functions.push(a),
            _ => {}
        }
    }
    for t in info.tables.values_mut() {
        t.indexes.sort();
        t.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
        t.owned_sequences.sort();
        t.statistics.sort();
        t.types.sort();
        t.functions.sort();
    }
    Ok(info)
}

/// What already exists in a target database, so a partial restore creates only
/// what is missing (schemas, types and extensions have no `IF NOT EXISTS` in a
/// pg_dump archive, and a foreign key needs its referenced table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCatalog {
    /// Schema names.
    pub schemas: BTreeSet<String>,
    /// Relations (tables, views, sequences, ...) as `schema.name`.
    pub relations: BTreeSet<String>,
    /// Types (including domains) as `schema.name`.
    pub types: BTreeSet<String>,
    /// Extension names.
    pub extensions: BTreeSet<String>,
    /// Functions and procedures as `schema.name(argtypes)`.
    #[serde(default)]
    pub functions: BTreeSet<String>,
    /// Triggers and policies on tables of platform-owned schemas, as
    /// `schema.table name`, and publications, as `PUBLICATION name` (filled by the caller from
    /// [`super::platform::existing_attachments`] when it restores into a platform).
    #[serde(default)]
    pub attachments: BTreeSet<String>,
}

/// Reads the [`TargetCatalog`] of the target database.
pub fn target_catalog(tools: &ClientTools, target: &PgTarget) -> Result<TargetCatalog> {
    let sql = "SELECT 'N', nspname, '' FROM pg_namespace;
         SELECT 'R', n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE c.relkind IN ('r','p','v','m','S','f');
         SELECT 'T', n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
           WHERE t.typtype IN ('e','d','r','c','b','m');
         SELECT 'E', extname, '' FROM pg_extension;
         SELECT 'F', n.nspname, p.proname || '(' || oidvectortypes(p.proargtypes) || ')' \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema');";
    let mut cat = TargetCatalog::default();
    for r in (OneShot { tools, target }).rows(sql)? {
        let [kind, a, b]: [String; 3] = r
            .try_into()
            .map_err(|r: Vec<String>| bad_row("catalog", &r))?;
        match kind.as_str() {
            "N" => {
                cat.schemas.insert(a);
            }
            "R" => {
                cat.relations.insert(qualified(&a, &b));
            }
            "T" => {
                cat.types.insert(qualified(&a, &b));
            }
            "E" => {
                cat.extensions.insert(a);
            }
            "F" => {
                cat.functions.insert(qualified(&a, &b));
            }
            _ => {}
        }
    }
    Ok(cat)
}
