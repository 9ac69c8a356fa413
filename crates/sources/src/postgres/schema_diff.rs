//! Schema drift: a database's schema as objects, and the differences
//! between two of them (what `migrations check` reports).
//!
//! [`schema_objects`] reads `pg_dump --schema-only --no-owner
//! --no-privileges` (publications and subscriptions left out) and cuts it at
//! pg_dump's `-- Name: N; Type: T; Schema: S` headers into one definition
//! per object, keyed `T S.N` (pg_dump's `SET` and comment lines dropped,
//! lines inside dollar-quoted bodies kept whatever they start with);
//! [`diff_objects`] compares two such maps.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::conn::PgTarget;
use super::error::Result;
use super::tools::ClientTools;

/// How an object differs between the expected schema (the migrations) and
/// the actual one (a live database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The migrations define it; the database lacks it (a migration never applied).
    Missing,
    /// The database has it; no migration defines it (made by hand).
    Extra,
    /// Both have it, with different definitions.
    Different,
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// What kind of difference.
    pub kind: DriftKind,
    /// The object, as `TYPE schema.name` (pg_dump's names, e.g. `TABLE public.projects`).
    pub object: String,
    /// For [`DriftKind::Different`]: definition lines only the database has
    /// (`+ ...`) and only the migrations have (`- ...`).
    pub detail: Vec<String>,
}

/// The schema of `target`'s database as object → normalised definition,
/// leaving out the schemas matching `exclude_schemas` (pg_dump patterns).
pub fn schema_objects(
    tools: &ClientTools,
    target: &PgTarget,
    exclude_schemas: &[&str],
) -> Result<BTreeMap<String, String>> {
    let mut cmd = crate::process::command(&tools.pg_dump);
    cmd.args([
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-publications",
        "--no-subscriptions",
        "--no-password",
    ]);
    for s in exclude_schemas {
        cmd.arg(format!("--exclude-schema={s}"));
    }
    target.apply_env(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let out = super::child::output_of(cmd, "pg_dump", target, None)?;
    Ok(split_objects(&String::from_utf8_lossy(&out)))
}

/// Cuts a plain schema dump into objects at its `-- Name:` headers.
pub fn split_objects(sql: &str) -> BTreeMap<String, String> {
    let mut objects: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    // The closing tag of the dollar quote a line starts in: its lines are a
    // body (a function's, a DO block's), kept verbatim whatever they start with.
    let mut quote: Option<String> = None;
    for line in sql.lines() {
        let in_body = quote.is_some();
        quote = dollar_quote_after(line, quote);
        if in_body {
            if let Some(key) = &current {
                let body = objects.get_mut(key).expect("entry made at its header");
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if let Some(header) = line.strip_prefix("-- Name: ") {
            let key = object_key(header);
            objects.entry(key.clone()).or_default();
            current = Some(key);
            continue;
        }
        let noise = line.starts_with("--")
            || line.trim().is_empty()
            || line.starts_with("SET ")
            || line.starts_with("SELECT pg_catalog.set_config(")
            || line.starts_with("\\restrict ")
            || line.starts_with("\\unrestrict ");
        if let (Some(key), false) = (&current, noise) {
            let body = objects.get_mut(key).expect("entry made at its header");
            body.push_str(line);
            body.push('\n');
        }
    }
    objects
}

/// The dollar quote (its tag, e.g. `$$` or `$body$`) open at the end of
/// `line`, given the one `open` at its start: SQL's lexical rules for what
/// matters here (single-quoted strings, `--` comments, quoted identifiers and
/// dollar quotes; a tag never follows an identifier character, so `$1` and
/// `a$b` are not tags).
fn dollar_quote_after(line: &str, mut open: Option<String>) -> Option<String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if let Some(tag) = &open {
            match line[i..].find(tag.as_str()) {
                Some(p) => {
                    i += p + tag.len();
                    open = None;
                    continue;
                }
                None => return open,
            }
        }
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            q @ (b'\'' | b'"') => {
                // A string never spans lines in pg_dump's DDL outside bodies.
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'$' if i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') => {
                let end = b[i + 1..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                    .map(|p| i + 1 + p);
                let tag_ok = |e: usize| b[e] == b'$' && (e == i + 1 || !b[i + 1].is_ascii_digit());
                match end {
                    Some(e) if tag_ok(e) => {
                        open = Some(line[i..=e].to_string());
                        i = e + 1;
                    }
                    _ => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    open
}

/// A plain dump without the objects whose pg_dump type is one of `types`
/// (each object runs from its `-- Name:` header to the next one).
pub fn without_types(sql: &str, types: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut skip = false;
    for line in sql.lines() {
        if let Some(header) = line.strip_prefix("-- Name: ") {
            skip = header
                .split("; ")
                .filter_map(|p| p.strip_prefix("Type: "))
                .any(|t| types.contains(&t));
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `profiles; Type: TABLE; Schema: public; Owner: -` → `TABLE public.profiles`.
fn object_key(header: &str) -> String {
    let mut name = header;
    let (mut kind, mut schema) = ("", "-");
    for (i, part) in header.split("; ").enumerate() {
        if i == 0 {
            name = part;
        } else if let Some(t) = part.strip_prefix("Type: ") {
            kind = t;
        } else if let Some(s) = part.strip_prefix("Schema: ") {
            schema = s;
        }
    }
    match schema {
        "-" => format!("{kind} {name}"),
        s => format!("{kind} {s}.{name}"),
    }
}

/// Every object that differs between `expected` (built from migrations) and
/// `actual` (the database checked), sorted by object.
pub fn diff_objects(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> Vec<Drift> {
    let keys: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (expected.get(k), actual.get(k)) {
            (Some(_), None) => Some(drift(DriftKind::Missing, k, Vec::new())),
            (None, Some(_)) => Some(drift(DriftKind::Extra, k, Vec::new())),
            (Some(e), Some(a)) if e != a => Some(drift(DriftKind::Different, k, line_diff(e, a))),
            _ => None,
        })
        .collect()
}

fn drift(kind: DriftKind, object: &str, detail: Vec<String>) -> Drift {
    Drift {
        kind,
        object: object.to_string(),
        detail,
    }
}

/// Lines only `actual` has (`+ `), then lines only `expected` has (`- `).
fn line_diff(expected: &str, actual: &str) -> Vec<String> {
    let e: BTreeSet<&str> = expected.lines().map(str::trim).collect();
    let a: BTreeSet<&str> = actual.lines().map(str::trim).collect();
    let added = actual
        .lines()
        .map(str::trim)
        .filter(|l| !e.contains(l))
        .map(|l| format!("+ {l}"));
    let removed = expected
        .lines()
        .map(str::trim)
        .filter(|l| !a.contains(l))
        .map(|l| format!("- {l}"));
    added.chain(removed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n\
--\n-- Name: projects; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.projects (\n    id bigint NOT NULL\n);\n\n\
--\n-- Name: pgcrypto; Type: EXTENSION; Schema: -; Owner: -\n--\n\nCREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;\n";

    #[test]
    fn a_dump_is_cut_into_objects_at_its_headers() {
        let o = split_objects(DUMP);
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            ["EXTENSION pgcrypto", "TABLE public.projects"]
        );
        assert_eq!(
            o["TABLE public.projects"],
            "CREATE TABLE public.projects (\n    id bigint NOT NULL\n);\n"
        );
    }

    #[test]
    fn missing_extra_and_different_objects_are_reported() {
        let expected = split_objects(DUMP);
        let mut actual = expected.clone();
        actual.remove("EXTENSION pgcrypto");
        actual.insert(
            "TABLE public.notes".into(),
            "CREATE TABLE public.notes ();\n".into(),
        );
        actual.insert(
            "TABLE public.projects".into(),
            "CREATE TABLE public.projects (\n    id bigint NOT NULL,\n    archived boolean\n);\n"
                .into(),
        );
        let d = diff_objects(&expected, &actual);
        let kinds: Vec<(DriftKind, &str)> = d.iter().map(|d| (d.kind, d.object.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (DriftKind::Missing, "EXTENSION pgcrypto"),
                (DriftKind::Extra, "TABLE public.notes"),
                (DriftKind::Different, "TABLE public.projects"),
            ]
        );
        assert_eq!(
            d[2].detail,
            [
                "+ id bigint NOT NULL,",
                "+ archived boolean",
                "- id bigint NOT NULL"
            ]
        );
        assert!(diff_objects(&expected, &expected).is_empty());
    }

    #[test]
    fn lines_inside_a_function_body_are_kept_whatever_they_start_with() {
        let dump = "--\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: -\n--\n\n\
CREATE FUNCTION public.f() RETURNS void\n    LANGUAGE plpgsql\n    AS $_$\nBEGIN\n\
SET work_mem = '64MB';\n-- not a header\nPERFORM $1, 'it''s $$';\nEND\n$_$;\n\n\
SET default_table_access_method = heap;\n\
--\n-- Name: g(); Type: FUNCTION; Schema: public; Owner: -\n--\n\n\
CREATE FUNCTION public.g() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n";
        let o = split_objects(dump);
        assert_eq!(
            o["FUNCTION public.f()"],
            "CREATE FUNCTION public.f() RETURNS void\n    LANGUAGE plpgsql\n    AS $_$\nBEGIN\n\
SET work_mem = '64MB';\n-- not a header\nPERFORM $1, 'it''s $$';\nEND\n$_$;\n"
        );
        assert_eq!(
            o["FUNCTION public.g()"],
            "CREATE FUNCTION public.g() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
        );
        let changed = dump.replace("'64MB'", "'1GB'");
        let d = diff_objects(&o, &split_objects(&changed));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].object, "FUNCTION public.f()");
        assert_eq!(
            d[0].detail,
            ["+ SET work_mem = '1GB';", "- SET work_mem = '64MB';"]
        );
    }

    #[test]
    fn objects_of_a_type_are_cut_out_of_a_dump() {
        let cut = without_types(DUMP, &["EXTENSION"]);
        assert!(cut.contains("CREATE TABLE public.projects"), "{cut}");
        assert!(!cut.contains("CREATE EXTENSION"), "{cut}");
    }
}
