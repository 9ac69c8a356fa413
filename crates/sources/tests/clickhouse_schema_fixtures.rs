//! The schema rewriter on `SHOW CREATE` text of a current ClickHouse
//! (26.x, written by `scripts/clickhouse-fixtures.py` with chdb-core):
//! UUIDs of Atomic databases (also `TO INNER UUID`) are removed, the object
//! and the databases it reads from are renamed, and everything else
//! (projections, TTL, codecs, settings) is kept byte for byte.

use lifeboat_sources::clickhouse::schema::{rewrite_create, Rewrite};
use std::collections::BTreeMap;

fn fixture(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clickhouse/");
    std::fs::read_to_string(format!("{dir}{name}.sql")).expect("fixture")
}

fn renamed(sql: &str, name: &str) -> String {
    let rw = Rewrite {
        name: Some(("copy".into(), name.into())),
        databases: BTreeMap::from([("shop".to_string(), "copy".to_string())]),
    };
    rewrite_create(sql, &rw).sql
}

#[test]
fn modern_tables_lose_their_uuid_and_keep_projections_ttl_and_codecs() {
    let sql = fixture("events");
    assert!(sql.contains(" UUID '"), "the fixture shows the UUID: {sql}");
    let out = renamed(&sql, "events");
    assert!(out.starts_with("CREATE TABLE `copy`.`events`\n("), "{out}");
    assert!(!out.contains(" UUID '"), "{out}");
    // Everything after the header is unchanged.
    let body = |s: &str| s[s.find('(').unwrap()..].to_string();
    assert_eq!(body(&out), body(&sql));
    for kept in [
        "PROJECTION by_ts",
        "TTL toDateTime(ts)",
        "CODEC(Delta(8), ZSTD(1))",
        "`id` UUID,",
    ] {
        assert!(out.contains(kept), "{kept}: {out}");
    }
}

#[test]
fn modern_materialized_views_lose_inner_uuids_and_read_the_renamed_database() {
    let out = renamed(&fixture("mv"), "mv");
    assert!(
        out.starts_with("CREATE MATERIALIZED VIEW `copy`.`mv`\n("),
        "{out}"
    );
    assert!(!out.contains("UUID"), "{out}");
    assert!(out.contains("FROM `copy`.events"), "{out}");
    let out = renamed(&fixture("mv_to"), "mv_to");
    assert!(
        out.starts_with("CREATE MATERIALIZED VIEW `copy`.`mv_to` TO `copy`.totals\n("),
        "{out}"
    );
    let out = renamed(&fixture("v"), "v");
    assert!(out.starts_with("CREATE VIEW `copy`.`v`\n("), "{out}");
    assert!(out.contains("FROM `copy`.events"), "{out}");
}
