//! Restoring a custom-format archive with `pg_restore`, whole or in part.
//!
//! `pg_restore -t T` restores only the bare table: no indexes, constraints,
//! triggers, policies or sequences. A partial restore here instead reads the
//! archive's table of contents (`pg_restore -l`), selects every entry that
//! belongs to the chosen tables or schemas ([`select_entries`]), writes that list
//! to a file and runs `pg_restore -L list`. The TOC names an index without its
//! table and a foreign key without the table it references, so selection also
//! uses the [`DependencyInfo`] recorded at backup time, and a [`TargetCatalog`]
//! of the target so that only what is missing gets created.
//!
//! The archive arrives on pg_restore's stdin (the engine pipes repository bytes
//! in), or from a file: `pg_restore -j N` cannot read stdin.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use serde::{Deserialize, Serialize};

use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::query::{classify_failure, qualified, quote_literal, split_qualified};
use super::query::{DependencyInfo, TargetCatalog};
use super::tools::ClientTools;

/// How to restore. `tables`/`schemas` empty means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreOptions {
    /// Only these relations (`schema.table`, or `table` in any schema), with
    /// everything that belongs to them.
    pub tables: Vec<String>,
    /// Only these schemas, with everything in them.
    pub schemas: Vec<String>,
    /// Definitions only.
    pub schema_only: bool,
    /// Data only.
    pub data_only: bool,
    /// Drop objects before recreating them (`--clean --if-exists`).
    pub clean: bool,
    /// Parallel jobs (`-j`); needs the archive as a file, and excludes
    /// `single_transaction`.
    pub jobs: u32,
    /// Do not set object owners (`--no-owner`): objects belong to the restoring user.
    pub no_owner: bool,
    /// Do not restore GRANT/REVOKE (`--no-privileges`).
    pub no_privileges: bool,
    /// All or nothing (`--single-transaction`, implies exit on first error).
    pub single_transaction: bool,
    /// Stop at the first error (`--exit-on-error`). Without it pg_restore goes on
    /// and reports the count at the end; [`check_restore`] turns that into an error either way.
    pub exit_on_error: bool,
    /// Schemas whose definitions the target already owns (e.g. Supabase's `auth`
    /// and `storage`, see `dump::Profile::data_only_schemas`): only their data is restored.
    pub data_only_schemas: Vec<String>,
    /// Run with `session_replication_role = replica` so user triggers and FK
    /// checks do not fire while data loads (what `supabase db dump` data files do).
    pub replica_role: bool,
}

impl RestoreOptions {
    /// Whether this restore needs a filtered TOC list (`-L`) rather than the whole archive.
    pub fn needs_list(&self) -> bool {
        !self.tables.is_empty() || !self.schemas.is_empty() || !self.data_only_schemas.is_empty()
    }
}

/// One line of `pg_restore -l` output.
///
/// Format (pg_backup_archiver.c, `PrintTOCSummary`):
/// `<dumpId>; <catalog tableoid> <oid> <desc> <namespace or -> <tag> <owner>`.
/// Names are printed as is (not quoted), so a tag may contain spaces; the
/// description is recognised from the fixed list pg_dump uses, the namespace is
/// the next word and the owner the last (empty for e.g. extensions). Only the
/// dump id matters to `pg_restore -L`; the raw line is kept and written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    /// Dump id (what `-L` selects by).
    pub dump_id: u32,
    /// OID of the catalog the object lives in (e.g. 1259 = pg_class), 0 if none.
    pub catalog_oid: u32,
    /// OID of the object in the source database, 0 if none.
    pub oid: u32,
    /// Entry type, e.g. `TABLE`, `TABLE DATA`, `FK CONSTRAINT`.
    pub desc: String,
    /// Schema, `None` for `-`.
    pub namespace: Option<String>,
    /// Object tag: a name, or `table name` for constraints/triggers/policies,
    /// or `KIND name` for comments and ACLs.
    pub tag: String,
    /// Owner, `None` when empty.
    pub owner: Option<String>,
    /// The raw line.
    pub line: String,
}

/// Entry descriptions pg_dump emits (PostgreSQL 10–18), longest first so
/// `TABLE DATA` wins over `TABLE`.
const DESCS: &[&str] = &[
    "PUBLICATION TABLES IN SCHEMA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "MATERIALIZED VIEW DATA",
    "SUBSCRIPTION TABLE",
    "FOREIGN DATA WRAPPER",
    "PROCEDURAL LANGUAGE",
    "DATABASE PROPERTIES",
    "TEXT SEARCH TEMPLATE",
    "TEXT SEARCH PARSER",
    "PUBLICATION TABLE",
    "MATERIALIZED VIEW",
    "SEQUENCE OWNED BY",
    "CHECK CONSTRAINT",
    "STATISTICS DATA",
    "OPERATOR FAMILY",
    "OPERATOR CLASS",
    "SECURITY LABEL",
    "BLOB METADATA",
    "ACCESS METHOD",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "ROW SECURITY",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "USER MAPPING",
    "DEFAULT ACL",
    "PUBLICATION",
    "SUBSCRIPTION",
    "SHELL TYPE",
    "STATISTICS",
    "CONSTRAINT",
    "CONVERSION",
    "TABLE DATA",
    "SEARCHPATH",
    "STDSTRINGS",
    "TRANSFORM",
    "AGGREGATE",
    "COLLATION",
    "EXTENSION",
    "PROCEDURE",
    "FUNCTION",
    "OPERATOR",
    "SEQUENCE",
    "DATABASE",
    "ENCODING",
    "TRIGGER",
    "COMMENT",
    "DEFAULT",
    "DOMAIN",
    "POLICY",
    "SCHEMA",
    "SERVER",
    "BLOBS",
    "INDEX",
    "TABLE",
    "BLOB",
    "CAST",
    "RULE",
    "TYPE",
    "VIEW",
    "ACL",
];

/// Descriptions of relations `-t` can name.
const RELATION_DESCS: &[&str] = &[
    "TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "FOREIGN TABLE",
    "SEQUENCE",
];

/// Entries whose tag is `<relation> <name>` or just `<relation>`.
const SUBOBJECT_DESCS: &[&str] = &[
    "DEFAULT",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "TRIGGER",
    "POLICY",
    "RULE",
    "ROW SECURITY",
];

/// Entries that carry data.
const DATA_DESCS: &[&str] = &[
    "TABLE DATA",
    "SEQUENCE SET",
    "MATERIALIZED VIEW DATA",
    "BLOBS",
    "LARGE OBJECT",
];

/// Parses one line of `pg_restore -l` output; `None` for comments and blank lines.
pub fn parse_toc_line(line: &str) -> Option<TocEntry> {
    let trimmed = line.trim_end_matches(['\n', '\r']);
    if trimmed.trim_start().starts_with(';') || trimmed.trim().is_empty() {
        return None;
    }
    let (id, rest) = trimmed.split_once("; ")?;
    let dump_id = id.trim().parse().ok()?;
    let mut it = rest.splitn(3, ' ');
    let catalog_oid = it.next()?.parse().ok()?;
    let oid = it.next()?.parse().ok()?;
    let rest = it.next()?;
    let desc = DESCS
        .iter()
        .find(|d| {
            rest.strip_prefix(**d)
                .is_some_and(|r| r.is_empty() || r.starts_with(' '))
        })
        .map(|d| d.to_string())
        .unwrap_or_else(|| rest.split(' ').next().unwrap_or_default().to_string());
    let rest = rest[desc.len()..].strip_prefix(' ').unwrap_or_default();
    let (namespace, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (tag, owner) = match rest.rfind(' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    Some(TocEntry {
        dump_id,
        catalog_oid,
        oid,
        desc,
        namespace: (namespace != "-").then(|| namespace.to_string()),
        tag: tag.to_string(),
        owner: (!owner.is_empty()).then(|| owner.to_string()),
        line: trimmed.to_string(),
    })
}

/// Parses a whole `pg_restore -l` listing.
pub fn parse_toc(listing: &str) -> Vec<TocEntry> {
    listing.lines().filter_map(parse_toc_line).collect()
}

/// The `pg_restore -l` command; reads the archive from stdin when `archive` is None.
pub fn toc_list_command(tools: &ClientTools, archive: Option<&Path>) -> Command {
    let mut cmd = crate::process::command(&tools.pg_restore);
    cmd.arg("--list");
    match archive {
        Some(a) => {
            cmd.arg(a).stdin(Stdio::null());
        }
        None => {
            cmd.stdin(Stdio::piped());
        }
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Reads the table of contents of an archive file.
pub fn toc_list(tools: &ClientTools, archive_path: &Path) -> Result<Vec<TocEntry>> {
    let out = toc_list_command(tools, Some(archive_path))
        .output()
        .map_err(|source| PgError::Spawn {
            program: tools.pg_restore.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(PgError::ToolFailed {
            tool: "pg_restore --list".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(parse_toc(&String::from_utf8_lossy(&out.stdout)))
}

/// Writes a `-L` list file: the raw lines of `entries`, in order.
pub fn write_list_file(entries: &[TocEntry], path: &Path) -> Result<()> {
    let mut text = String::from("; selected by lifeboat\n");
    for e in entries {
        text.push_str(&e.line);
        text.push('\n');
    }
    use std::io::Write;
    crate::process::create_private(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| PgError::io(format!("writing {}", path.display()), e))
}

/// The outcome of [`select_entries`]: what will be restored and what was left out on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Entries to restore, in archive order.
    pub entries: Vec<TocEntry>,
    /// Entries that belong to the selection but were left out, with the reason
    /// (e.g. a foreign key to a table that is neither restored nor present).
    pub skipped: Vec<(String, String)>,
}

/// Selects the TOC entries a partial restore needs: for each chosen relation its
/// definition, data, defaults, constraints, indexes, triggers, rules, policies,
/// row security, comments, ACLs, extended statistics, owned sequences (with their
/// values), partitions, and the schemas, user types and extensions it needs that
/// `existing` lacks; for each chosen schema everything in it. Foreign keys are
/// kept only when the referenced table is restored too or already exists.
///
/// With no tables and schemas, everything is selected (only `data_only_schemas`
/// filtering applies). Errors when a requested name matches nothing.
pub fn select_entries(
    entries: &[TocEntry],
    opts: &RestoreOptions,
    deps: &DependencyInfo,
    existing: &TargetCatalog,
) -> Result<Selection> {
    let full = opts.tables.is_empty() && opts.schemas.is_empty();
    let schemas: BTreeSet<&str> = opts.schemas.iter().map(String::as_str).collect();
    let data_only_schemas: BTreeSet<&str> =
        opts.data_only_schemas.iter().map(String::as_str).collect();
    let requested: Vec<(Option<String>, String)> =
        opts.tables.iter().map(|t| split_qualified(t)).collect();

    // 1. Relations chosen directly.
    let mut rels: BTreeSet<String> = BTreeSet::new();
    let mut matched = vec![false; requested.len()];
    let mut schema_seen: BTreeSet<&str> = BTreeSet::new();
    for e in entries {
        let Some(ns) = e.namespace.as_deref() else {
            if e.desc == "SCHEMA" && schemas.contains(e.tag.as_str()) {
                schema_seen.insert(schemas.get(e.tag.as_str()).copied().unwrap_or_default());
            }
            continue;
        };
        if let Some(s) = schemas.get(ns) {
            schema_seen.insert(s);
        }
        if !RELATION_DESCS.contains(&e.desc.as_str()) {
            continue;
        }
        let mut hit = full || schemas.contains(ns);
        for (i, (rs, rn)) in requested.iter().enumerate() {
            if *rn == e.tag && rs.as_deref().is_none_or(|s| s == ns) {
                matched[i] = true;
                hit = true;
            }
        }
        if hit {
            rels.insert(qualified(ns, &e.tag));
        }
    }
    let mut missing: Vec<String> = opts
        .tables
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(t, _)| t.clone())
        .collect();
    missing.extend(
        opts.schemas
            .iter()
            .filter(|s| !schema_seen.contains(s.as_str()))
            .cloned(),
    );
    if !missing.is_empty() {
        return Err(PgError::NotInArchive { names: missing });
    }

    // 2. Partitions / inheritance children, then owned sequences.
    let in_toc: BTreeSet<String> = entries
        .iter()
        .filter(|e| RELATION_DESCS.contains(&e.desc.as_str()))
        .filter_map(|e| e.namespace.as_deref().map(|ns| qualified(ns, &e.tag)))
        .collect();
    let mut queue: Vec<String> = rels.iter().cloned().collect();
    while let Some(r) = queue.pop() {
        for child in deps.children_of(&r) {
            if in_toc.contains(child) && rels.insert(child.to_string()) {
                queue.push(child.to_string());
            }
        }
    }
    let mut types: BTreeSet<String> = BTreeSet::new();
    let mut functions: BTreeSet<String> = BTreeSet::new();
    for r in rels.clone() {
        if let Some(t) = deps.tables.get(&r) {
            rels.extend(t.owned_sequences.iter().cloned());
            types.extend(t.types.iter().cloned());
            functions.extend(t.functions.iter().cloned());
        }
    }

    // Names of selected relations per schema, longest first for prefix matching.
    let mut by_schema: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &rels {
        // Keys are "schema.name"; the schema is the namespace of a TOC entry, and
        // TOC entries were the source of every key, so split at the known namespace.
        if let Some(e) = entries.iter().find(|e| {
            e.namespace.as_deref().is_some_and(|ns| {
                r.len() > ns.len() && r.starts_with(ns) && r[ns.len()..].starts_with('.')
            })
        }) {
            let ns = e.namespace.as_deref().unwrap_or_default();
            by_schema.entry(ns).or_default().push(&r[ns.len() + 1..]);
        }
    }
    for names in by_schema.values_mut() {
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }
    let owner_of = |ns: &str, tag: &str| -> Option<String> {
        by_schema.get(ns).and_then(|names| {
            names
                .iter()
                .find(|n| tag == **n || (tag.starts_with(**n) && tag[n.len()..].starts_with(' ')))
                .map(|n| qualified(ns, n))
        })
    };
    let on_target = |ns: &str, tag: &str| -> Option<String> {
        by_schema.get(ns).and_then(|names| {
            names
                .iter()
                .find(|n| tag.ends_with(&format!(" ON {n}")))
                .map(|n| qualified(ns, n))
        })
    };
    let exists_or_restored = |r: &str| rels.contains(r) || existing.relations.contains(r);

    // Schemas and extensions to create.
    let mut needed_schemas: BTreeSet<String> = schemas.iter().map(|s| s.to_string()).collect();
    for r in rels.iter().chain(types.iter()).chain(functions.iter()) {
        if let Some((s, _)) = r.split_once('.') {
            needed_schemas.insert(s.to_string());
        }
    }
    let create_schema =
        |s: &str| full || (needed_schemas.contains(s) && !existing.schemas.contains(s));
    let create_extension = |x: &str| full || (!opts.data_only && !existing.extensions.contains(x));

    let mut sel = Selection::default();
    for e in entries {
        let desc = e.desc.as_str();
        let ns = e.namespace.as_deref();
        let key = ns.map(|ns| qualified(ns, &e.tag));
        // Platform-owned schemas: data only.
        if let Some(ns) = ns {
            if data_only_schemas.contains(ns) && !DATA_DESCS.contains(&desc) {
                continue;
            }
        }
        if full {
            sel.entries.push(e.clone());
            continue;
        }
        let in_schema = ns.is_some_and(|ns| schemas.contains(ns));
        let keep = match desc {
            "ENCODING" | "STDSTRINGS" | "SEARCHPATH" => true,
            "SCHEMA" => create_schema(&e.tag),
            "EXTENSION" => create_extension(&e.tag),
            "TABLE DATA" | "SEQUENCE SET" | "SEQUENCE OWNED BY" | "MATERIALIZED VIEW DATA" => {
                key.as_ref().is_some_and(|k| rels.contains(k))
            }
            d if RELATION_DESCS.contains(&d) => key.as_ref().is_some_and(|k| rels.contains(k)),
            "FK CONSTRAINT" => {
                match ns.and_then(|ns| owner_of(ns, &e.tag)) {
                    Some(table) => {
                        // tag is "<table name> <constraint name>"
                        let table_name = &table[ns.unwrap_or_default().len() + 1..];
                        let con = e.tag[table_name.len()..].trim_start();
                        let refd = deps
                            .tables
                            .get(&table)
                            .and_then(|t| t.foreign_keys.iter().find(|f| f.name == con))
                            .map(|f| f.references.clone());
                        match refd {
                            Some(r) if !exists_or_restored(&r) => {
                                sel.skipped.push((
                                    e.line.clone(),
                                    format!("foreign key references {r}, which is neither restored nor present in the target"),
                                ));
                                false
                            }
                            _ => true,
                        }
                    }
                    None => false,
                }
            }
            d if SUBOBJECT_DESCS.contains(&d) => {
                ns.and_then(|ns| owner_of(ns, &e.tag)).is_some() || in_schema
            }
            "INDEX" => {
                in_schema
                    || ns
                        .and_then(|ns| deps.table_of_index(ns, &e.tag))
                        .is_some_and(|t| rels.contains(t))
            }
            "INDEX ATTACH" | "TABLE ATTACH" => {
                let table = match desc {
                    "TABLE ATTACH" => key.clone(),
                    _ => ns
                        .and_then(|ns| deps.table_of_index(ns, &e.tag))
                        .map(str::to_string),
                };
                match table {
                    Some(t) if rels.contains(&t) => {
                        let parent = deps.tables.get(&t).and_then(|d| d.parent.clone());
                        match parent {
                            Some(p) if desc == "TABLE ATTACH" && !exists_or_restored(&p) => {
                                sel.skipped.push((
                                    e.line.clone(),
                                    format!("partition parent {p} is neither restored nor present; restored as a plain table"),
                                ));
                                false
                            }
                            Some(p) if desc == "INDEX ATTACH" => rels.contains(&p),
                            _ => true,
                        }
                    }
                    _ => false,
                }
            }
            "STATISTICS" => {
                in_schema
                    || key
                        .as_ref()
                        .and_then(|k| deps.table_of_statistics(k))
                        .is_some_and(|t| rels.contains(t))
            }
            "TYPE" | "DOMAIN" | "SHELL TYPE" => {
                in_schema
                    || key
                        .as_ref()
                        .is_some_and(|k| types.contains(k) && !existing.types.contains(k))
            }
            "COMMENT" | "ACL" | "SECURITY LABEL" => {
                in_schema
                    || describes_selected(
                        e,
                        &rels,
                        deps,
                        &types,
                        existing,
                        &create_schema,
                        &create_extension,
                        &on_target,
                    )
            }
            "FUNCTION" | "PROCEDURE" => {
                in_schema
                    || key
                        .as_ref()
                        .is_some_and(|k| functions.contains(k) && !existing.functions.contains(k))
            }
            "BLOB" | "BLOBS" | "LARGE OBJECT" | "BLOB METADATA" => false,
            _ => in_schema,
        };
        if keep {
            sel.entries.push(e.clone());
        }
    }
    Ok(sel)
}

/// Whether a COMMENT/ACL/SECURITY LABEL entry (tag `KIND name`) is about a selected object.
#[allow(clippy::too_many_arguments)]
fn describes_selected(
    e: &TocEntry,
    rels: &BTreeSet<String>,
    deps: &DependencyInfo,
    types: &BTreeSet<String>,
    existing: &TargetCatalog,
    create_schema: &dyn Fn(&str) -> bool,
    create_extension: &dyn Fn(&str) -> bool,
    on_target: &dyn Fn(&str, &str) -> Option<String>,
) -> bool {
    let tag = e.tag.as_str();
    let ns = e.namespace.as_deref().unwrap_or_default();
    for kind in [
        "MATERIALIZED VIEW ",
        "FOREIGN TABLE ",
        "TABLE ",
        "VIEW ",
        "SEQUENCE ",
    ] {
        if let Some(name) = tag.strip_prefix(kind) {
            return rels.contains(&qualified(ns, name));
        }
    }
    if let Some(col) = tag.strip_prefix("COLUMN ") {
        // "COLUMN table.column": find the selected table the column belongs to.
        return rels.iter().any(|r| {
            r.strip_prefix(ns)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|t| col.starts_with(t) && col[t.len()..].starts_with('.'))
        });
    }
    for kind in ["CONSTRAINT ", "TRIGGER ", "POLICY ", "RULE "] {
        if tag.starts_with(kind) {
            return on_target(ns, tag).is_some();
        }
    }
    if let Some(idx) = tag.strip_prefix("INDEX ") {
        return deps
            .table_of_index(ns, idx)
            .is_some_and(|t| rels.contains(t));
    }
    if let Some(s) = tag.strip_prefix("SCHEMA ") {
        return create_schema(s);
    }
    if let Some(x) = tag.strip_prefix("EXTENSION ") {
        return create_extension(x);
    }
    for kind in ["TYPE ", "DOMAIN "] {
        if let Some(t) = tag.strip_prefix(kind) {
            let k = qualified(ns, t);
            return types.contains(&k) && !existing.types.contains(&k);
        }
    }
    false
}

/// The `pg_restore` command restoring into `target`'s database.
///
/// Reads the archive from stdin (piped) when `archive` is None; `jobs > 1` is only
/// used with a file. `list_file` is a `-L` list from [`write_list_file`]. The
/// database name is passed as a `dbname=` connection string (no secrets); the
/// host, user and password come from the environment.
pub fn restore_command(
    tools: &ClientTools,
    target: &PgTarget,
    opts: &RestoreOptions,
    list_file: Option<&Path>,
    archive: Option<&Path>,
) -> Command {
    let mut cmd = crate::process::command(&tools.pg_restore);
    cmd.arg("--no-password");
    if let Some(db) = target.database() {
        cmd.arg(format!("--dbname=dbname={}", quote_literal(db)));
    } else {
        // pg_restore needs -d to restore rather than print SQL; an empty
        // connection string leaves everything to the environment and libpq defaults.
        cmd.arg("--dbname=");
    }
    if opts.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    if opts.no_owner {
        cmd.arg("--no-owner");
    }
    if opts.no_privileges {
        cmd.arg("--no-privileges");
    }
    if opts.schema_only {
        cmd.arg("--schema-only");
    }
    if opts.data_only {
        cmd.arg("--data-only");
    }
    let parallel = archive.is_some() && opts.jobs > 1;
    if parallel {
        cmd.arg(format!("--jobs={}", opts.jobs));
    } else if opts.single_transaction {
        cmd.arg("--single-transaction");
    }
    if opts.exit_on_error {
        cmd.arg("--exit-on-error");
    }
    if let Some(l) = list_file {
        cmd.arg(format!("--use-list={}", l.display()));
    }
    target.apply_env(&mut cmd);
    if opts.replica_role {
        cmd.env("PGOPTIONS", "-c session_replication_role=replica");
    }
    match archive {
        Some(a) => {
            cmd.arg(a).stdin(Stdio::null());
        }
        None => {
            cmd.stdin(Stdio::piped());
        }
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Turns pg_restore's exit status and stderr into a result: connection problems
/// become their specific errors; `errors ignored on restore: N` (or any failure)
/// becomes [`PgError::RestoreErrors`] with the first error line.
pub fn check_restore(target: &PgTarget, status: ExitStatus, stderr: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let specific = classify_failure("pg_restore", target, &status.to_string(), stderr);
    if !matches!(specific, PgError::ToolFailed { .. }) {
        return Err(specific);
    }
    let count = stderr
        .lines()
        .find_map(|l| l.split("errors ignored on restore:").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let first = stderr
        .lines()
        .find(|l| l.contains("error:") && !l.contains("errors ignored on restore"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| format!("pg_restore exited with {status}"));
    let mut detail = first;
    // The line after "error:" from pg_restore usually carries the failing command.
    if let Some(cmd) = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("Command was:"))
    {
        detail.push_str(&format!(" ({})", cmd.trim()));
    }
    Err(PgError::RestoreErrors {
        count,
        first: detail,
    })
}

/// Drops selected entries that depend (per the archive's TOC dependencies)
/// on a relation that is neither restored nor already in the target, such
/// as a rule on a chosen table that writes into a table left out, and
/// anything depending on a dropped entry. Each is reported in `skipped`.
pub fn drop_unsatisfied(
    mut selection: Selection,
    toc: &[crate::postgres::archive::TocInfo],
    existing: &TargetCatalog,
) -> Selection {
    let by_id: BTreeMap<i64, &crate::postgres::archive::TocInfo> =
        toc.iter().map(|t| (t.dump_id, t)).collect();
    let mut kept: BTreeSet<i64> = selection
        .entries
        .iter()
        .map(|e| i64::from(e.dump_id))
        .collect();
    let mut dropped: BTreeSet<i64> = BTreeSet::new();
    let unmet = |dep: &i64, kept: &BTreeSet<i64>, dropped: &BTreeSet<i64>| -> Option<String> {
        let d = by_id.get(dep)?;
        let name = qualified(&d.namespace, &d.tag);
        let missing_relation = RELATION_DESCS.contains(&d.desc.as_str())
            && !kept.contains(dep)
            && !existing.relations.contains(&name);
        (missing_relation || dropped.contains(dep)).then(|| format!("{} {name}", d.desc))
    };
    loop {
        let newly: Vec<(i64, String)> = kept
            .iter()
            .filter_map(|id| {
                let info = by_id.get(id)?;
                info.deps
                    .iter()
                    .find_map(|dep| unmet(dep, &kept, &dropped))
                    .map(|what| (*id, what))
            })
            .collect();
        if newly.is_empty() {
            break;
        }
        for (id, what) in newly {
            kept.remove(&id);
            dropped.insert(id);
            let info = by_id[&id];
            selection.skipped.push((
                format!("{} {}", info.desc, qualified(&info.namespace, &info.tag)),
                format!("depends on {what}, which is neither restored nor present in the target"),
            ));
        }
    }
    selection
        .entries
        .retain(|e| kept.contains(&i64::from(e.dump_id)));
    selection
}

/// With `--clean`, pg_restore also tries to drop each partition's copy of an
/// inherited constraint, which PostgreSQL refuses ("cannot drop inherited
/// constraint"); dropping the parent's constraint removes them anyway.
/// Returns true when those are the only errors in pg_restore's output.
pub fn only_inherited_constraint_drop_errors(stderr: &str) -> bool {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR:")).collect();
    !errors.is_empty()
        && errors
            .iter()
            .all(|l| l.contains("cannot drop inherited constraint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_entries() {
        let e = parse_toc_line("215; 1259 16390 TABLE public projects postgres").unwrap();
        assert_eq!(
            (e.dump_id, e.catalog_oid, e.oid, e.desc.as_str()),
            (215, 1259, 16390, "TABLE")
        );
        assert_eq!(e.namespace.as_deref(), Some("public"));
        assert_eq!(e.tag, "projects");
        assert_eq!(e.owner.as_deref(), Some("postgres"));

        let e = parse_toc_line("3330; 0 16390 TABLE DATA public projects postgres").unwrap();
        assert_eq!(e.desc, "TABLE DATA");
        assert_eq!(e.tag, "projects");

        let e =
            parse_toc_line("3321; 2606 16420 CONSTRAINT public projects projects_pkey postgres")
                .unwrap();
        assert_eq!(e.desc, "CONSTRAINT");
        assert_eq!(e.tag, "projects projects_pkey");

        let e = parse_toc_line("3325; 1259 16430 INDEX public projects_name_idx postgres").unwrap();
        assert_eq!(
            (e.desc.as_str(), e.tag.as_str()),
            ("INDEX", "projects_name_idx")
        );

        let e =
            parse_toc_line("3340; 2620 16440 TRIGGER public projects trg_name postgres").unwrap();
        assert_eq!(
            (e.desc.as_str(), e.tag.as_str()),
            ("TRIGGER", "projects trg_name")
        );

        let e = parse_toc_line(
            "3498; 2606 16727 FK CONSTRAINT billing invoices invoices_project_id_fkey postgres",
        )
        .unwrap();
        assert_eq!(e.desc, "FK CONSTRAINT");
        assert_eq!(e.namespace.as_deref(), Some("billing"));
    }

    #[test]
    fn parses_names_with_spaces_empty_owner_and_comments() {
        let e = parse_toc_line("226; 1259 16647 TABLE public Audit Log postgres").unwrap();
        assert_eq!(e.tag, "Audit Log");
        let e = parse_toc_line("3; 3079 16391 EXTENSION - citext ").unwrap();
        assert_eq!(e.desc, "EXTENSION");
        assert_eq!(e.namespace, None);
        assert_eq!(e.tag, "citext");
        assert_eq!(e.owner, None);
        let e = parse_toc_line(
            "3687; 0 0 ACL billing FUNCTION add_tax(amount numeric, rate numeric) postgres",
        )
        .unwrap();
        assert_eq!(e.tag, "FUNCTION add_tax(amount numeric, rate numeric)");
        let e =
            parse_toc_line("3689; 0 0 SEQUENCE OWNED BY billing invoice_no_seq postgres").unwrap();
        assert_eq!(e.desc, "SEQUENCE OWNED BY");
        let e =
            parse_toc_line("3670; 0 16754 MATERIALIZED VIEW DATA public project_totals postgres")
                .unwrap();
        assert_eq!(e.desc, "MATERIALIZED VIEW DATA");
        assert_eq!(parse_toc_line(";     dbname: ks"), None);
        assert_eq!(parse_toc_line(""), None);
        assert_eq!(
            parse_toc(";\n; x\n8; 2615 16577 SCHEMA - billing postgres\n").len(),
            1
        );
    }

    fn toc() -> Vec<TocEntry> {
        parse_toc(
            "8; 2615 16577 SCHEMA - billing postgres
3683; 0 0 COMMENT - SCHEMA billing postgres
3; 3079 16391 EXTENSION - citext 
3685; 0 0 COMMENT - EXTENSION citext 
952; 1247 16579 TYPE public mood postgres
235; 1259 16717 TABLE billing invoices postgres
224; 1259 16624 TABLE public projects postgres
3695; 0 0 ACL public TABLE projects postgres
222; 1259 16610 TABLE public users postgres
221; 1259 16609 SEQUENCE public users_id_seq postgres
3701; 0 0 SEQUENCE OWNED BY public users_id_seq postgres
3439; 2604 16613 DEFAULT public users id postgres
3667; 0 16717 TABLE DATA billing invoices postgres
3657; 0 16624 TABLE DATA public projects postgres
3655; 0 16610 TABLE DATA public users postgres
3709; 0 0 SEQUENCE SET public users_id_seq postgres
3483; 2606 16726 CONSTRAINT billing invoices invoices_pkey postgres
3461; 2606 16633 CONSTRAINT public projects projects_pkey postgres
3455; 2606 16620 CONSTRAINT public users users_pkey postgres
3457; 1259 16641 INDEX public projects_name_idx postgres
3710; 0 0 COMMENT public INDEX projects_name_idx postgres
3501; 2620 16664 TRIGGER public projects projects_audit postgres
3498; 2606 16727 FK CONSTRAINT billing invoices invoices_project_id_fkey postgres
3496; 2606 16636 FK CONSTRAINT public projects projects_owner_id_fkey postgres
3650; 3256 16668 POLICY public projects projects_owner_read postgres
3648; 0 16624 ROW SECURITY public projects postgres
3673; 2613 16768 BLOB - 16768 postgres
",
        )
    }

    fn deps() -> DependencyInfo {
        use super::super::query::{ForeignKey, TableDeps};
        let mut d = DependencyInfo::default();
        d.tables.insert(
            "public.projects".into(),
            TableDeps {
                schema: "public".into(),
                name: "projects".into(),
                indexes: vec!["projects_name_idx".into(), "projects_pkey".into()],
                foreign_keys: vec![ForeignKey {
                    name: "projects_owner_id_fkey".into(),
                    references: "public.users".into(),
                }],
                ..TableDeps::default()
            },
        );
        d.tables.insert(
            "public.users".into(),
            TableDeps {
                schema: "public".into(),
                name: "users".into(),
                owned_sequences: vec!["public.users_id_seq".into()],
                types: vec!["public.mood".into()],
                ..TableDeps::default()
            },
        );
        d.tables.insert(
            "billing.invoices".into(),
            TableDeps {
                schema: "billing".into(),
                name: "invoices".into(),
                foreign_keys: vec![ForeignKey {
                    name: "invoices_project_id_fkey".into(),
                    references: "public.projects".into(),
                }],
                ..TableDeps::default()
            },
        );
        d
    }

    fn ids(sel: &Selection) -> Vec<u32> {
        sel.entries.iter().map(|e| e.dump_id).collect()
    }

    #[test]
    fn one_table_brings_its_objects_but_not_dangling_fks() {
        let opts = RestoreOptions {
            tables: vec!["public.projects".into()],
            ..RestoreOptions::default()
        };
        let existing = TargetCatalog {
            schemas: ["public".to_string()].into(),
            extensions: ["plpgsql".to_string()].into(),
            ..TargetCatalog::default()
        };
        let sel = select_entries(&toc(), &opts, &deps(), &existing).unwrap();
        // citext extension + comment (missing in target), table, ACL, data, pkey,
        // index + comment, trigger, policy, row security. Not the FK to users.
        assert_eq!(
            ids(&sel),
            vec![3, 3685, 224, 3695, 3657, 3461, 3457, 3710, 3501, 3650, 3648]
        );
        assert_eq!(sel.skipped.len(), 1);
        assert!(sel.skipped[0].1.contains("public.users"));
    }

    #[test]
    fn two_tables_keep_the_fk_between_them_and_owned_sequences() {
        let opts = RestoreOptions {
            tables: vec!["projects".into(), "public.users".into()],
            ..RestoreOptions::default()
        };
        let existing = TargetCatalog {
            schemas: ["public".to_string()].into(),
            extensions: ["citext".to_string()].into(),
            types: ["public.mood".to_string()].into(),
            ..TargetCatalog::default()
        };
        let sel = select_entries(&toc(), &opts, &deps(), &existing).unwrap();
        let got = ids(&sel);
        for id in [224, 222, 221, 3701, 3439, 3655, 3709, 3455, 3496] {
            assert!(got.contains(&id), "missing {id} in {got:?}");
        }
        for id in [3, 952, 235, 3498, 3673] {
            assert!(!got.contains(&id), "unexpected {id}");
        }
        assert!(sel.skipped.is_empty());
    }

    #[test]
    fn schema_selection_and_missing_names() {
        let opts = RestoreOptions {
            schemas: vec!["billing".into()],
            ..RestoreOptions::default()
        };
        let sel = select_entries(&toc(), &opts, &deps(), &TargetCatalog::default()).unwrap();
        let got = ids(&sel);
        for id in [8, 3683, 235, 3667, 3483] {
            assert!(got.contains(&id), "missing {id}");
        }
        assert!(!got.contains(&3498), "FK to a table that is not there");
        let opts = RestoreOptions {
            tables: vec!["public.nope".into()],
            ..RestoreOptions::default()
        };
        let err = select_entries(&toc(), &opts, &deps(), &TargetCatalog::default()).unwrap_err();
        assert!(matches!(err, PgError::NotInArchive { ref names } if names == &["public.nope"]));
    }

    #[test]
    fn data_only_schemas_drop_definitions() {
        let opts = RestoreOptions {
            data_only_schemas: vec!["billing".into()],
            ..RestoreOptions::default()
        };
        assert!(opts.needs_list());
        let sel = select_entries(&toc(), &opts, &deps(), &TargetCatalog::default()).unwrap();
        let got = ids(&sel);
        assert!(got.contains(&3667));
        assert!(!got.contains(&235) && !got.contains(&3483) && !got.contains(&3498));
        assert!(got.contains(&224));
    }

    #[test]
    fn restore_errors_surface() {
        use std::os::unix::process::ExitStatusExt;
        let t = PgTarget::parse("postgres://u@h/db").unwrap();
        let stderr = "pg_restore: error: could not execute query: ERROR:  relation \"x\" already exists\nCommand was: CREATE TABLE x ();\npg_restore: warning: errors ignored on restore: 2\n";
        let err = check_restore(&t, ExitStatus::from_raw(256), stderr).unwrap_err();
        match err {
            PgError::RestoreErrors { count, first } => {
                assert_eq!(count, 2);
                assert!(first.contains("already exists"));
            }
            other => panic!("{other:?}"),
        }
        assert!(check_restore(&t, ExitStatus::from_raw(0), "").is_ok());
    }
}
