//! Comparing two databases by content: what restore tests, `verify --restore-test`
//! and `drill` use to prove a restore is faithful.
//!
//! - [`normalized_schema_dump`]: `pg_dump --schema-only --no-owner` with the lines
//!   that legitimately differ between two dumps of equal databases removed.
//! - [`table_checksums`]: per table (partitions included) the row count and an
//!   order-independent md5 of the rows' text forms, plus every sequence's state
//!   and the large objects, all computed server-side under fixed session settings
//!   (UTC, ISO dates, full float precision) so equal data gives equal sums.

use std::collections::BTreeMap;
use std::process::Stdio;

use super::catalog::SYSTEM_SCHEMA_FILTER;
use super::conn::PgTarget;
use super::error::{PgError, Result};
use super::ident::{qualified, quote_ident, quote_literal};
use super::psql::{OneShot, Sql};
use super::tools::ClientTools;

/// Key under which [`table_checksums`] reports large objects.
pub const LARGE_OBJECTS_KEY: &str = "pg_largeobject";

/// Prefix of keys under which [`table_checksums`] reports sequences
/// (`sequence:schema.name` → (last_value, "is_called=t|f")).
pub const SEQUENCE_KEY_PREFIX: &str = "sequence:";

/// Session settings that make text forms of values independent of the client.
const STABLE_SETTINGS: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
    SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
    SET lc_monetary = 'C';";

/// `pg_dump --schema-only --no-owner` of the target database, normalised:
/// without the `Dumped from/by` version comments, `\restrict`/`\unrestrict`
/// (random per-dump keys in recent minor releases), and runs of blank lines.
pub fn normalized_schema_dump(tools: &ClientTools, target: &PgTarget) -> Result<String> {
    let mut cmd = crate::process::command(&tools.pg_dump);
    cmd.args(["--schema-only", "--no-owner", "--no-password"]);
    target.apply_env(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let out = super::child::output_of(cmd, "pg_dump", target, None)?;
    Ok(normalize_schema_sql(&String::from_utf8_lossy(&out)))
}

/// The normalisation [`normalized_schema_dump`] applies, for SQL from elsewhere.
pub fn normalize_schema_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut blank = false;
    for line in sql.lines() {
        let skip = line.starts_with("-- Dumped from database version")
            || line.starts_with("-- Dumped by pg_dump version")
            || line.starts_with("\\restrict ")
            || line.starts_with("\\unrestrict ");
        if skip {
            continue;
        }
        if line.trim().is_empty() {
            if blank {
                continue;
            }
            blank = true;
        } else {
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Row count and content checksum of every user table (partitions and inheritance
/// children counted on their own, `FROM ONLY`), populated materialized view,
/// sequence and of the large objects, keyed by `schema.name`
/// (see [`LARGE_OBJECTS_KEY`], [`SEQUENCE_KEY_PREFIX`]).
pub fn table_checksums(
    tools: &ClientTools,
    target: &PgTarget,
) -> Result<BTreeMap<String, (i64, String)>> {
    let list_sql = format!(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (c.relkind IN ('r', 'S') OR (c.relkind = 'm' AND c.relispopulated)) \
           AND {SYSTEM_SCHEMA_FILTER} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 1, 2;"
    );
    let rels = OneShot { tools, target }.rows(&list_sql)?;
    let mut parts = Vec::new();
    for r in &rels {
        let [schema, name, kind] = r.as_slice() else {
            continue;
        };
        let key = qualified(schema, name);
        let rel = format!("{}.{}", quote_ident(schema), quote_ident(name));
        if kind == "S" {
            parts.push(format!(
                "SELECT {}, last_value, 'is_called=' || is_called::text FROM {rel}",
                quote_literal(&format!("{SEQUENCE_KEY_PREFIX}{key}"))
            ));
        } else {
            parts.push(format!(
                "SELECT {}, count(*), coalesce(md5(string_agg(md5(t::text), '' \
                 ORDER BY md5(t::text))), '') FROM ONLY {rel} t",
                quote_literal(&key)
            ));
        }
    }
    parts.push(format!(
        "SELECT {}, count(*), coalesce(md5(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' \
         ORDER BY oid)), '') FROM pg_largeobject_metadata",
        quote_literal(LARGE_OBJECTS_KEY)
    ));
    let sql = format!("{STABLE_SETTINGS}\n{};", parts.join("\nUNION ALL "));
    let mut out = BTreeMap::new();
    for r in (OneShot { tools, target }).rows(&sql)? {
        let [key, count, sum]: [String; 3] = r.try_into().map_err(|_| PgError::Parse {
            what: "checksum row".into(),
            detail: "unexpected field count".into(),
        })?;
        let count = count.trim().parse().map_err(|_| PgError::Parse {
            what: "checksum count".into(),
            detail: count.clone(),
        })?;
        out.insert(key, (count, sum));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_drops_volatile_lines() {
        let a = "--\n-- Dumped from database version 15.18\n-- Dumped by pg_dump version 15.18\n\\restrict abc\n\n\n\nCREATE TABLE t ();\n\\unrestrict abc\n";
        let b = "--\n-- Dumped from database version 15.2\n-- Dumped by pg_dump version 17.1\n\\restrict xyz\n\nCREATE TABLE t ();\n\\unrestrict xyz\n";
        assert_eq!(normalize_schema_sql(a), normalize_schema_sql(b));
        assert!(normalize_schema_sql(a).contains("CREATE TABLE t ();"));
    }
}
