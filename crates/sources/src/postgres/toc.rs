//! The table of contents of a custom-format archive: one model for every use.
//!
//! [`TocEntry`] is what [`ArchiveInspector`](super::archive::ArchiveInspector)
//! reads from the archive's own TOC as it streams past (no `pg_restore -l`
//! round trip, and it works on a stream). Selection for a partial restore
//! runs on it ([`super::selection`]), the `-L` list file handed to
//! `pg_restore` is written from it ([`write_list_file`]), and a dry run prints
//! its entries in `pg_restore -l` form ([`TocEntry::line`]).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{PgError, Result};

/// One TOC entry, in archive order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    /// Dump id (what `pg_restore -L` selects by).
    pub dump_id: i64,
    /// OID of the catalog the object lives in (e.g. 1259 = pg_class), 0 if none.
    pub catalog_oid: u32,
    /// OID of the object in the source database, 0 if none.
    pub oid: u32,
    /// Entry type, e.g. `TABLE`, `TABLE DATA`, `FK CONSTRAINT`.
    pub desc: String,
    /// Schema, `None` when the object has none.
    pub namespace: Option<String>,
    /// Object tag: a name, or `table name` for constraints/triggers/policies,
    /// or `KIND name` for comments and ACLs.
    pub tag: String,
    /// Owner, `None` when empty.
    pub owner: Option<String>,
    /// Dump ids this entry depends on.
    pub deps: Vec<i64>,
    /// The restore section pg_restore files it under.
    #[serde(default)]
    pub section: Section,
}

/// The section of the restore a TOC entry belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Definitions created before the data (tables, types, functions).
    #[default]
    PreData,
    /// Table data, large objects, sequence values.
    Data,
    /// Indexes, constraints, triggers, ACLs, materialized view data.
    PostData,
}

impl Section {
    /// The section stored in the archive as `number` (2 pre-data, 3 data,
    /// 4 post-data); an entry of no section (comments, ACLs) belongs to the
    /// section of the entry before it, `previous`, as in pg_restore's
    /// `--section` handling.
    pub fn from_archive(number: i64, previous: Section) -> Section {
        match number {
            2 => Section::PreData,
            3 => Section::Data,
            4 => Section::PostData,
            _ => previous,
        }
    }
}

impl TocEntry {
    /// The schema, or "" when none.
    pub fn schema(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    /// The entry as `pg_restore -l` prints it (`PrintTOCSummary`):
    /// `<dumpId>; <catalog oid> <oid> <desc> <namespace or -> <tag> <owner>`,
    /// line breaks in names replaced by spaces as pg_restore does.
    pub fn line(&self) -> String {
        let clean = |s: &str| s.replace(['\n', '\r'], " ");
        format!(
            "{}; {} {} {} {} {} {}",
            self.dump_id,
            self.catalog_oid,
            self.oid,
            self.desc,
            self.namespace.as_deref().map_or("-".into(), clean),
            clean(&self.tag),
            self.owner.as_deref().map(clean).unwrap_or_default()
        )
    }

    /// Whether `pg_restore -l` lists this entry (and `-L` can select it).
    /// Not listed: the session settings pg_restore always applies (`ENCODING`,
    /// `STDSTRINGS`, `SEARCHPATH`) and the database's own entries (its
    /// definition, properties, comment, ACL, label), which belong to `--create`.
    pub fn listed(&self) -> bool {
        let database_own = matches!(self.desc.as_str(), "COMMENT" | "ACL" | "SECURITY LABEL")
            && self.namespace.is_none()
            && self.tag.starts_with("DATABASE ");
        !database_own
            && !matches!(
                self.desc.as_str(),
                "DATABASE" | "DATABASE PROPERTIES" | "ENCODING" | "STDSTRINGS" | "SEARCHPATH"
            )
    }
}

/// Descriptions of relations `-t` can name.
pub(crate) const RELATION_DESCS: &[&str] = &[
    "TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "FOREIGN TABLE",
    "SEQUENCE",
];

/// Entries whose tag is `<relation> <name>` or just `<relation>`.
pub(crate) const SUBOBJECT_DESCS: &[&str] = &[
    "DEFAULT",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "TRIGGER",
    "POLICY",
    "RULE",
    "ROW SECURITY",
];

/// Entries that carry data.
pub(crate) const DATA_DESCS: &[&str] = &[
    "TABLE DATA",
    "SEQUENCE SET",
    "MATERIALIZED VIEW DATA",
    "BLOBS",
    "LARGE OBJECT",
];

/// Writes a `-L` list file (0600): one line per entry, in order. pg_restore
/// reads only the dump id before the first `;` of each line.
pub fn write_list_file(entries: &[TocEntry], path: &Path) -> Result<()> {
    let mut text = String::from("; selected by lifeboat\n");
    for e in entries {
        text.push_str(&e.line());
        text.push('\n');
    }
    crate::process::create_private(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| PgError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_of_no_section_takes_the_section_before_it() {
        assert_eq!(Section::from_archive(3, Section::PreData), Section::Data);
        assert_eq!(Section::from_archive(4, Section::Data), Section::PostData);
        assert_eq!(
            Section::from_archive(2, Section::PostData),
            Section::PreData
        );
        for previous in [Section::PreData, Section::Data, Section::PostData] {
            assert_eq!(Section::from_archive(1, previous), previous);
        }
    }

    #[test]
    fn lines_read_like_pg_restore_list() {
        let e = TocEntry {
            dump_id: 3321,
            catalog_oid: 2606,
            oid: 16420,
            desc: "CONSTRAINT".into(),
            namespace: Some("public".into()),
            tag: "projects projects\npkey".into(),
            owner: Some("postgres".into()),
            deps: vec![],
            section: Section::PostData,
        };
        assert_eq!(
            e.line(),
            "3321; 2606 16420 CONSTRAINT public projects projects pkey postgres"
        );
        let x = TocEntry {
            dump_id: 3,
            catalog_oid: 3079,
            oid: 16391,
            desc: "EXTENSION".into(),
            tag: "citext".into(),
            ..TocEntry::default()
        };
        assert_eq!(x.line(), "3; 3079 16391 EXTENSION - citext ");
    }
}
