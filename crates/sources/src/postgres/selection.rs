//! Choosing the archive entries of a partial restore.
//!
//! `pg_restore -t T` restores only the bare table: no indexes, constraints,
//! triggers, policies or sequences. A partial restore here instead selects
//! every TOC entry that belongs to the chosen tables or schemas
//! ([`select_entries`]); the engine writes that list to a file and runs
//! `pg_restore -L list`. The TOC names an index without its table and a
//! foreign key without the table it references, so selection also uses the
//! [`DependencyInfo`] recorded at backup time, and a [`TargetCatalog`] of the
//! target so that only what is missing gets created.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::catalog::{DependencyInfo, TargetCatalog};
use super::error::{PgError, Result};
use super::ident::{qualified, split_qualified};
use super::restore_cmd::RestoreOptions;
use super::toc::{TocEntry, DATA_DESCS, RELATION_DESCS, SUBOBJECT_DESCS};

/// The outcome of [`select_entries`]: what will be restored and what was left out on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Entries to restore, in archive order.
    pub entries: Vec<TocEntry>,
    /// Entries that belong to the selection but were left out, with the reason
    /// (e.g. a foreign key to a table that is neither restored nor present).
    pub skipped: Vec<(String, String)>,
}

/// Whether `e`, in the platform-owned schema `ns`, is something a user
/// attached to a platform table (a trigger, a policy, row security) that the
/// target does not have yet.
fn is_user_attachment(e: &TocEntry, ns: &str, existing: &TargetCatalog) -> bool {
    match e.desc.as_str() {
        "TRIGGER" | "POLICY" => !existing.attachments.contains(&qualified(ns, &e.tag)),
        "ROW SECURITY" => true,
        _ => false,
    }
}

/// Whether `e` creates or comments an extension `existing` already has.
fn is_existing_extension(e: &TocEntry, existing: &TargetCatalog) -> bool {
    let name = match e.desc.as_str() {
        "EXTENSION" => Some(e.tag.as_str()),
        // A comment's tag quotes the name as SQL does (`EXTENSION "uuid-ossp"`).
        "COMMENT" if e.namespace.is_none() => e.tag.strip_prefix("EXTENSION "),
        _ => None,
    };
    name.is_some_and(|n| existing.extensions.contains(&split_qualified(n).1))
}

/// Whether `e` creates, comments or grants on one of the platform-owned
/// `schemas` itself (entries without a namespace).
fn is_platform_schema_entry(e: &TocEntry, schemas: &BTreeSet<&str>) -> bool {
    if e.namespace.is_some() {
        return false;
    }
    let name = match e.desc.as_str() {
        "SCHEMA" => Some(e.tag.as_str()),
        "COMMENT" | "ACL" => e.tag.strip_prefix("SCHEMA "),
        _ => None,
    };
    name.is_some_and(|n| schemas.contains(n))
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
    for e in entries.iter().filter(|e| e.listed()) {
        let desc = e.desc.as_str();
        let ns = e.namespace.as_deref();
        let key = ns.map(|ns| qualified(ns, &e.tag));
        // Platform-owned schemas: data only.
        if let Some(ns) = ns {
            if data_only_schemas.contains(ns)
                && !DATA_DESCS.contains(&desc)
                && !is_user_attachment(e, ns, existing)
            {
                continue;
            }
        }
        let existing_publication = desc == "PUBLICATION"
            && existing
                .attachments
                .contains(&format!("PUBLICATION {}", e.tag));
        // Into a platform, its extensions are its own (made by its admin):
        // not created or commented again.
        let platform_extension =
            !data_only_schemas.is_empty() && is_existing_extension(e, existing);
        if is_platform_schema_entry(e, &data_only_schemas)
            || existing_publication
            || platform_extension
        {
            continue;
        }
        if full {
            sel.entries.push(e.clone());
            continue;
        }
        let in_schema = ns.is_some_and(|ns| schemas.contains(ns));
        let keep = match desc {
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
                                    e.line(),
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
                                    e.line(),
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

/// Reorders the `TABLE DATA` entries of `entries` (in their own slots, the
/// rest untouched) so a table's rows load after the rows of the tables its
/// foreign keys reference (from `deps`), ties and cycles in archive order.
/// pg_restore runs a `-L` list in the list's order; data going into tables
/// whose foreign keys already exist (a platform's `auth` tables), loaded by
/// a user who cannot switch them off, then never trips a key. pg_dump orders
/// a full archive's data by name, not by key, as its keys come after it.
pub fn order_data_by_foreign_keys(entries: &mut [TocEntry], deps: &DependencyInfo) {
    let slots: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].desc == "TABLE DATA")
        .collect();
    let names: Vec<String> = slots
        .iter()
        .map(|&i| qualified(entries[i].schema(), &entries[i].tag))
        .collect();
    let parents: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            let refs = deps
                .tables
                .get(n)
                .map(|t| &t.foreign_keys[..])
                .unwrap_or(&[]);
            refs.iter()
                .filter_map(|f| names.iter().position(|m| *m == f.references))
                .filter(|p| names[*p] != *n)
                .collect()
        })
        .collect();
    let mut done = vec![false; slots.len()];
    let mut order = Vec::with_capacity(slots.len());
    while order.len() < slots.len() {
        let ready = |i: usize| !done[i] && parents[i].iter().all(|p| done[*p]);
        let next = (0..slots.len())
            .find(|&i| ready(i))
            .or_else(|| (0..slots.len()).find(|&i| !done[i]))
            .expect("an entry is left");
        done[next] = true;
        order.push(next);
    }
    let data: Vec<TocEntry> = order.iter().map(|&k| entries[slots[k]].clone()).collect();
    for (slot, e) in slots.into_iter().zip(data) {
        entries[slot] = e;
    }
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

/// Drops selected entries that depend (per the archive's TOC dependencies)
/// on a relation that is neither restored nor already in the target, such
/// as a rule on a chosen table that writes into a table left out, and
/// anything depending on a dropped entry. Each is reported in `skipped`.
pub fn drop_unsatisfied(
    mut selection: Selection,
    toc: &[TocEntry],
    existing: &TargetCatalog,
) -> Selection {
    let by_id: BTreeMap<i64, &TocEntry> = toc.iter().map(|t| (t.dump_id, t)).collect();
    let mut kept: BTreeSet<i64> = selection.entries.iter().map(|e| e.dump_id).collect();
    let mut dropped: BTreeSet<i64> = BTreeSet::new();
    let unmet = |dep: &i64, kept: &BTreeSet<i64>, dropped: &BTreeSet<i64>| -> Option<String> {
        let d = by_id.get(dep)?;
        let name = qualified(d.schema(), &d.tag);
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
                format!("{} {}", info.desc, qualified(info.schema(), &info.tag)),
                format!("depends on {what}, which is neither restored nor present in the target"),
            ));
        }
    }
    selection.entries.retain(|e| kept.contains(&e.dump_id));
    selection
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::catalog::{ForeignKey, TableDeps};

    fn e(
        dump_id: i64,
        catalog_oid: u32,
        oid: u32,
        desc: &str,
        ns: Option<&str>,
        tag: &str,
    ) -> TocEntry {
        TocEntry {
            dump_id,
            catalog_oid,
            oid,
            desc: desc.into(),
            namespace: ns.map(str::to_string),
            tag: tag.into(),
            owner: Some("postgres".into()),
            deps: Vec::new(),
            ..TocEntry::default()
        }
    }

    fn toc() -> Vec<TocEntry> {
        vec![
            e(8, 2615, 16577, "SCHEMA", None, "billing"),
            e(3683, 0, 0, "COMMENT", None, "SCHEMA billing"),
            e(3, 3079, 16391, "EXTENSION", None, "citext"),
            e(3685, 0, 0, "COMMENT", None, "EXTENSION citext"),
            e(952, 1247, 16579, "TYPE", Some("public"), "mood"),
            e(235, 1259, 16717, "TABLE", Some("billing"), "invoices"),
            e(224, 1259, 16624, "TABLE", Some("public"), "projects"),
            e(3695, 0, 0, "ACL", Some("public"), "TABLE projects"),
            e(222, 1259, 16610, "TABLE", Some("public"), "users"),
            e(221, 1259, 16609, "SEQUENCE", Some("public"), "users_id_seq"),
            e(
                3701,
                0,
                0,
                "SEQUENCE OWNED BY",
                Some("public"),
                "users_id_seq",
            ),
            e(3439, 2604, 16613, "DEFAULT", Some("public"), "users id"),
            e(3667, 0, 16717, "TABLE DATA", Some("billing"), "invoices"),
            e(3657, 0, 16624, "TABLE DATA", Some("public"), "projects"),
            e(3655, 0, 16610, "TABLE DATA", Some("public"), "users"),
            e(3709, 0, 0, "SEQUENCE SET", Some("public"), "users_id_seq"),
            e(
                3483,
                2606,
                16726,
                "CONSTRAINT",
                Some("billing"),
                "invoices invoices_pkey",
            ),
            e(
                3461,
                2606,
                16633,
                "CONSTRAINT",
                Some("public"),
                "projects projects_pkey",
            ),
            e(
                3455,
                2606,
                16620,
                "CONSTRAINT",
                Some("public"),
                "users users_pkey",
            ),
            e(
                3457,
                1259,
                16641,
                "INDEX",
                Some("public"),
                "projects_name_idx",
            ),
            e(
                3710,
                0,
                0,
                "COMMENT",
                Some("public"),
                "INDEX projects_name_idx",
            ),
            e(
                3501,
                2620,
                16664,
                "TRIGGER",
                Some("public"),
                "projects projects_audit",
            ),
            e(
                3498,
                2606,
                16727,
                "FK CONSTRAINT",
                Some("billing"),
                "invoices invoices_project_id_fkey",
            ),
            e(
                3496,
                2606,
                16636,
                "FK CONSTRAINT",
                Some("public"),
                "projects projects_owner_id_fkey",
            ),
            e(
                3650,
                3256,
                16668,
                "POLICY",
                Some("public"),
                "projects projects_owner_read",
            ),
            e(3648, 0, 16624, "ROW SECURITY", Some("public"), "projects"),
            e(3673, 2613, 16768, "BLOB", None, "16768"),
        ]
    }

    fn deps() -> DependencyInfo {
        use super::super::catalog::{ForeignKey, TableDeps};
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

    fn ids(sel: &Selection) -> Vec<i64> {
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
    fn data_loads_after_the_data_of_the_tables_it_references() {
        let mut toc = vec![
            e(1, 1259, 1, "TABLE", Some("auth"), "users"),
            e(2, 0, 0, "TABLE DATA", Some("auth"), "identities"),
            e(3, 0, 0, "TABLE DATA", Some("auth"), "refresh_tokens"),
            e(4, 0, 0, "TABLE DATA", Some("auth"), "sessions"),
            e(
                5,
                0,
                0,
                "SEQUENCE SET",
                Some("auth"),
                "refresh_tokens_id_seq",
            ),
            e(6, 0, 0, "TABLE DATA", Some("auth"), "users"),
            e(7, 0, 0, "TABLE DATA", Some("public"), "loop_a"),
            e(8, 0, 0, "TABLE DATA", Some("public"), "loop_b"),
        ];
        let fk = |from: &str, to: &[&str]| {
            (
                from.to_string(),
                TableDeps {
                    foreign_keys: to
                        .iter()
                        .map(|t| ForeignKey {
                            name: format!("fk_{t}"),
                            references: t.to_string(),
                        })
                        .collect(),
                    ..TableDeps::default()
                },
            )
        };
        let deps = DependencyInfo {
            tables: [
                fk("auth.identities", &["auth.users"]),
                fk("auth.sessions", &["auth.users"]),
                fk("auth.refresh_tokens", &["auth.sessions"]),
                fk("auth.users", &["auth.users"]),
                fk("public.loop_a", &["public.loop_b"]),
                fk("public.loop_b", &["public.loop_a"]),
            ]
            .into_iter()
            .collect(),
        };
        order_data_by_foreign_keys(&mut toc, &deps);
        let ids: Vec<i64> = toc.iter().map(|e| e.dump_id).collect();
        // users first, sessions before refresh_tokens; other entries keep
        // their slots; a cycle keeps archive order.
        assert_eq!(ids, [1, 6, 2, 4, 5, 3, 7, 8]);
    }

    #[test]
    fn into_a_platform_user_attachments_stay_and_the_platform_own_objects_go() {
        let toc = vec![
            e(1, 2615, 1, "SCHEMA", None, "auth"),
            e(2, 0, 0, "COMMENT", None, "SCHEMA auth"),
            e(3, 0, 0, "ACL", None, "SCHEMA auth"),
            e(4, 1259, 4, "TABLE", Some("auth"), "users"),
            e(5, 0, 0, "TABLE DATA", Some("auth"), "users"),
            e(
                6,
                2620,
                6,
                "TRIGGER",
                Some("auth"),
                "users on_auth_user_created",
            ),
            e(
                7,
                2620,
                7,
                "TRIGGER",
                Some("auth"),
                "users platform_trigger",
            ),
            e(
                8,
                3256,
                8,
                "POLICY",
                Some("auth"),
                "users Users read themselves",
            ),
            e(9, 6104, 9, "PUBLICATION", None, "supabase_realtime"),
            e(10, 6104, 10, "PUBLICATION", None, "mine"),
            e(11, 1259, 11, "TABLE", Some("public"), "profiles"),
        ];
        let opts = RestoreOptions {
            data_only_schemas: vec!["auth".into()],
            ..RestoreOptions::default()
        };
        let existing = TargetCatalog {
            attachments: [
                "auth.users platform_trigger",
                "PUBLICATION supabase_realtime",
            ]
            .map(String::from)
            .into(),
            ..TargetCatalog::default()
        };
        let sel = select_entries(&toc, &opts, &DependencyInfo::default(), &existing).unwrap();
        assert_eq!(ids(&sel), [5, 6, 8, 10, 11]);
    }
}
