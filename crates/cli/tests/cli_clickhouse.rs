//! End-to-end tests of `kind = "clickhouse"` sources with the real binary
//! against a private `clickhouse-server` ([`TestServer`], stopped on drop,
//! also when a test fails): backup per partition with reuse of unchanged
//! partitions, restores (whole, another database name, one table, one
//! partition through REPLACE PARTITION), refusals, an exception in the
//! middle of an export, and `verify --restore-test`.

mod common;

use common::*;
use lifeboat_sources::clickhouse::server::{TestServer, PASSWORD};
use std::collections::BTreeMap;
use std::fs;

/// Write `lifeboat.toml` with one clickhouse source `ch` on `server`
/// (`extra` TOML lines added to the source).
fn configure(ws: &Workspace, server: &TestServer, extra: &str) {
    fs::write(
        ws.path("lifeboat.toml"),
        format!(
            "[[source]]\nname = \"ch\"\nkind = \"clickhouse\"\nurl = \"{}\"\nuser = \"default\"\npassword = \"env:LB_TEST_CH_PASSWORD\"\n{extra}\n",
            server.url()
        ),
    )
    .unwrap();
}

/// Run with the workspace's config and the server's password in the environment.
fn run(ws: &Workspace, args: &[&str]) -> Run {
    ws.run_env(
        args,
        &[
            ("LIFEBOAT_CONFIG", ws.path("lifeboat.toml").as_os_str()),
            ("LB_TEST_CH_PASSWORD", PASSWORD.as_ref()),
        ],
    )
}

/// `backup ch --json`: the snapshot's ClickHouse stats.
#[track_caller]
fn backup(ws: &Workspace) -> serde_json::Value {
    let r = run(ws, &["--json", "backup", "ch"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["snapshot"]["kind"], "clickhouse", "{v}");
    v
}

fn stat(v: &serde_json::Value, name: &str) -> u64 {
    v["snapshot"]["meta"]["stats"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no stats.{name} in {v}"))
}

/// Per table and partition of `db`: (rows, content hash), computed by the
/// server itself, for comparing a restored database with the original.
fn content(server: &TestServer, db: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let tables = server.sql(&format!(
        "SELECT name, engine FROM system.tables WHERE database = '{db}' AND engine NOT IN ('View', 'MaterializedView') AND name NOT LIKE '.inner%' ORDER BY name"
    ));
    for line in tables.lines() {
        let (name, engine) = line.split_once('\t').unwrap();
        let cols = server.sql(&format!(
            "SELECT name FROM system.columns WHERE database = '{db}' AND table = '{name}' AND default_kind IN ('', 'DEFAULT')"
        ));
        let args: Vec<String> = cols
            .lines()
            .map(|c| format!("toString(isNull(`{c}`)), ifNull(toString(`{c}`), '')"))
            .collect();
        let by = if engine.ends_with("MergeTree") {
            "_partition_id"
        } else {
            "'all'"
        };
        let rows = server.sql(&format!(
            "SELECT {by} AS p, count(), sum(cityHash64({})) FROM `{db}`.`{name}` GROUP BY p ORDER BY p",
            args.join(", ")
        ));
        for r in rows.lines() {
            let (p, rest) = r.split_once('\t').unwrap();
            out.insert(format!("{name}/{p}"), rest.to_string());
        }
    }
    // Views and materialized views: what they return.
    let views = server.sql(&format!(
        "SELECT name FROM system.tables WHERE database = '{db}' AND engine IN ('View', 'MaterializedView') ORDER BY name"
    ));
    for v in views.lines() {
        let r = server.sql(&format!(
            "SELECT count(), sum(cityHash64(toString(tuple(*)))) FROM `{db}`.`{v}`"
        ));
        out.insert(format!("{v}/view"), r.trim().to_string());
    }
    out
}

/// A database with a 12-partition MergeTree table of varied types, an
/// old-syntax MergeTree, an unpartitioned one, a Log table, a view, a
/// materialized view with an inner table and one writing `TO` a table.
fn create_shop(server: &TestServer, db: &str) {
    for sql in [
        format!("CREATE DATABASE {db}"),
        format!("CREATE TABLE {db}.events (d Date, id UInt64, n Nullable(Int32), tags Array(String), price Decimal(18, 4), ts DateTime, f Float64, lc LowCardinality(String), fs FixedString(3), e Enum8('x' = 1, 'y' = 2), tu Tuple(UInt8, Nullable(String)), doubled UInt64 MATERIALIZED id * 2) ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY (d, id)"),
        format!("CREATE TABLE {db}.legacy (d Date, id UInt64, s String) ENGINE = MergeTree(d, id, 8192)"),
        format!("CREATE TABLE {db}.flat (id UInt64, s String) ENGINE = MergeTree ORDER BY id"),
        format!("CREATE TABLE {db}.log (id UInt64, s String) ENGINE = Log"),
        format!("CREATE TABLE {db}.counts (k UInt64, c UInt64) ENGINE = SummingMergeTree ORDER BY k"),
        format!("CREATE MATERIALIZED VIEW {db}.by_lc ENGINE = SummingMergeTree PARTITION BY tuple() ORDER BY lc AS SELECT lc, count() AS c FROM {db}.events GROUP BY lc"),
        format!("CREATE MATERIALIZED VIEW {db}.to_counts TO {db}.counts AS SELECT toUInt64(id % 7) AS k, toUInt64(count()) AS c FROM {db}.events GROUP BY k"),
        format!("CREATE VIEW {db}.big AS SELECT id, price FROM {db}.events WHERE price > 10"),
        format!("INSERT INTO {db}.events (d, id, n, tags, price, ts, f, lc, fs, e, tu) SELECT toDate('2025-01-01') + number % 365, number, if(number % 3 = 0, NULL, toInt32(number)), arrayMap(x -> toString(x), range(number % 4)), toDecimal64(number / 7, 4), toDateTime('2025-01-01 00:00:00') + number * 37, number / 3 + 0.1, toString(number % 5), 'abc', if(number % 2 = 0, 'x', 'y'), (toUInt8(number % 200), if(number % 5 = 0, NULL, 'v')) FROM system.numbers LIMIT 20000"),
        format!("INSERT INTO {db}.events (d, id, n, tags, price, ts, f, lc, fs, e, tu) VALUES ('2025-03-03', 999999, -2147483648, ['', 'a\\tb'], -12345678901234.5678, '2025-03-03 03:03:03', 0.1, '', 'xyz', 'y', (0, NULL)), ('2025-03-04', 1000000, NULL, [], 0, '2025-03-04 00:00:00', 1e308, 'z', 'q\\0\\0', 'x', (255, ''))"),
        format!("INSERT INTO {db}.legacy SELECT toDate('2024-01-01') + number, number, toString(number) FROM system.numbers LIMIT 100"),
        format!("INSERT INTO {db}.flat SELECT number, toString(number * 7) FROM system.numbers LIMIT 1000"),
        format!("INSERT INTO {db}.log VALUES (1, 'one'), (2, 'two')"),
    ] {
        server.sql(&sql);
    }
}

#[test]
fn backup_reads_each_partition_once_and_reuses_unchanged_ones() {
    let Some(server) = TestServer::start() else {
        return;
    };
    create_shop(&server, "shop");
    let ws = Workspace::init();
    configure(&ws, &server, "databases = [\"shop\"]");
    let first = backup(&ws);
    // 12 months of events, 4 legacy months, flat, log, the inner table of by_lc, counts.
    let partitions = stat(&first, "partitions");
    assert_eq!(stat(&first, "partitions_read"), partitions, "{first}");
    assert_eq!(stat(&first, "partitions_reused"), 0);
    let meta = &first["snapshot"]["meta"];
    let events = meta["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "events")
        .unwrap();
    assert_eq!(
        events["partitions"].as_array().unwrap().len(),
        12,
        "{events}"
    );
    assert_eq!(events["kind"], "merge_tree");

    // Unchanged: nothing is exported again.
    let second = backup(&ws);
    assert_eq!(stat(&second, "partitions_read"), 0, "{second}");
    assert_eq!(stat(&second, "partitions_reused"), partitions);
    assert_eq!(second["snapshot"]["stats"]["new_blobs"], 0, "{second}");

    // A merge changes the parts, not the rows: still reused.
    server.sql("OPTIMIZE TABLE shop.events PARTITION 202502 FINAL");
    // One new row in one partition: only that one is read.
    server.sql("INSERT INTO shop.events (d, id, n, tags, price, ts, f, lc, fs, e, tu) VALUES ('2025-06-15', 5000000, 1, ['n'], 1.5, '2025-06-15 00:00:00', 2.5, 'new', 'abc', 'x', (1, 'n'))");
    // Its materialized views write into their tables too: those are read as well.
    let third = backup(&ws);
    assert_eq!(stat(&third, "partitions_read"), 3, "{third}");
    assert_eq!(stat(&third, "partitions_reused"), partitions - 3);
    assert_eq!(
        read_partitions(&third),
        [".inner.by_lc/all", "counts/all", "events/202506"]
    );
    // The snapshot that reused 17 partitions restores the whole database.
    let url = server.url();
    run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &url,
            "--database",
            "shop",
            "--as",
            "again",
        ],
    )
    .ok();
    assert_eq!(content(&server, "again"), content(&server, "shop"));
}

/// `table/partition` of every partition a backup exported (not reused).
fn read_partitions(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for db in v["snapshot"]["meta"]["databases"].as_array().unwrap() {
        for t in db["tables"].as_array().unwrap() {
            for p in t["partitions"].as_array().unwrap() {
                if p["reused"] == false {
                    out.push(format!(
                        "{}/{}",
                        t["name"].as_str().unwrap(),
                        p["id"].as_str().unwrap()
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_exception_in_the_middle_of_an_export_fails_the_backup_and_stores_nothing() {
    let Some(server) = TestServer::start() else {
        return;
    };
    server.sql("CREATE DATABASE big");
    server.sql("CREATE TABLE big.t (id UInt64) ENGINE = MergeTree ORDER BY id");
    server.sql("INSERT INTO big.t SELECT number FROM system.numbers LIMIT 3000000");
    let ws = Workspace::init();
    // A server-side limit (here a setting in the URL, as a shared server's
    // profile would set it) that the export runs into after ~8 MB of a 200 answer.
    fs::write(
        ws.path("lifeboat.toml"),
        format!(
            "[[source]]\nname = \"ch\"\nkind = \"clickhouse\"\nurl = \"{}/?max_result_rows=1000000\"\npassword = \"env:LB_TEST_CH_PASSWORD\"\ndatabases = [\"big\"]\n",
            server.url()
        ),
    )
    .unwrap();
    let r = run(&ws, &["backup", "ch"]);
    let msg = r.error(
        16,
        &[
            "Limit for result exceeded",
            "middle of a 200 response",
            "code 396",
        ],
    );
    assert!(!msg.contains(PASSWORD), "{msg}");
    assert!(
        ws.snapshots().is_empty(),
        "no snapshot after a failed export"
    );
    let r = run(&ws, &["--json", "backup", "ch"]);
    assert_eq!(r.code, 16);
    assert_eq!(r.json()["error"]["detail"], "ch_server", "{}", r.stdout);
}

/// Tables of `db`: name, engine, keys (for schema comparisons).
fn schema(server: &TestServer, db: &str) -> String {
    server.sql(&format!(
        "SELECT name, engine, partition_key, sorting_key FROM system.tables WHERE database = '{db}' ORDER BY name"
    ))
}

#[test]
fn restore_round_trips_every_table_view_and_partition_also_under_another_name() {
    let Some(source) = TestServer::start() else {
        return;
    };
    let Some(other) = TestServer::start() else {
        return;
    };
    create_shop(&source, "shop");
    let ws = Workspace::init();
    configure(&ws, &source, "databases = [\"shop\"]");
    backup(&ws);
    let original = content(&source, "shop");
    assert!(original.len() > 20, "{original:?}");

    // Onto another server, all databases, same names.
    let r = run(&ws, &["--json", "restore", "latest", "--to", &other.url()]);
    r.ok();
    assert_eq!(content(&other, "shop"), original);
    assert_eq!(schema(&other, "shop"), schema(&source, "shop"));
    // The restored views still work on new rows: the MVs were created after the load.
    other.sql("INSERT INTO shop.events (d, id, lc) VALUES ('2025-01-01', 1, 'zz')");
    assert_eq!(
        other
            .sql("SELECT sum(c) FROM shop.by_lc WHERE lc = 'zz'")
            .trim(),
        "1"
    );

    // Next to the original, under another name: views read the copy.
    run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &source.url(),
            "--database",
            "shop",
            "--as",
            "shop_copy",
        ],
    )
    .ok();
    assert_eq!(content(&source, "shop_copy"), original);
    assert!(
        source
            .sql("SHOW CREATE TABLE shop_copy.big")
            .contains("shop_copy"),
        "the view reads the copy"
    );

    // One table under another name.
    run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &source.url(),
            "--table",
            "shop.legacy",
            "--as",
            "legacy2",
        ],
    )
    .ok();
    let legacy = |t: &str| {
        content(&source, "shop")
            .into_iter()
            .filter(|(k, _)| k.starts_with(t))
            .map(|(k, v)| (k[t.len()..].to_string(), v))
            .collect::<Vec<_>>()
    };
    assert_eq!(legacy("legacy2/"), legacy("legacy/"));
}

#[test]
fn a_non_empty_target_is_refused_and_partitions_are_replaced_through_staging() {
    let Some(server) = TestServer::start() else {
        return;
    };
    create_shop(&server, "shop");
    let ws = Workspace::init();
    configure(&ws, &server, "databases = [\"shop\"]");
    backup(&ws);
    let original = content(&server, "shop");
    let url = server.url();

    // Restoring over the live database: refused, nothing changed.
    let r = run(&ws, &["restore", "latest", "--to", &url]);
    r.error(14, &["already hold", "--replace"]);
    assert_eq!(content(&server, "shop"), original);

    // A dry run prints the statements and changes nothing.
    let r = run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &url,
            "--database",
            "shop",
            "--as",
            "dry",
            "--dry-run",
        ],
    );
    r.ok();
    assert!(
        r.stdout
            .contains("would run: CREATE DATABASE IF NOT EXISTS `dry`"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("would run: INSERT INTO `dry`.`events` FORMAT Native"),
        "{}",
        r.stdout
    );
    assert_eq!(
        server
            .sql("SELECT count() FROM system.databases WHERE name = 'dry'")
            .trim(),
        "0"
    );

    // One partition damaged: junk in place of its rows.
    server.sql("ALTER TABLE shop.events DROP PARTITION 202503");
    server.sql("INSERT INTO shop.events (d, id) VALUES ('2025-03-09', 42)");
    let damaged = content(&server, "shop");
    assert_ne!(damaged, original);
    let r = run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &url,
            "--table",
            "shop.events",
            "--partition",
            "202503",
        ],
    );
    r.error(14, &["shop.events", "--replace"]);
    let r = run(
        &ws,
        &[
            "--json",
            "restore",
            "latest",
            "--to",
            &url,
            "--table",
            "shop.events",
            "--partition",
            "202503",
            "--replace",
        ],
    );
    r.ok();
    assert_eq!(r.json()["clickhouse"]["partitions"], 1, "{}", r.stdout);
    let events = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| k.starts_with("events/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(events(&content(&server, "shop")), events(&original));
    assert_eq!(
        server.sql("SELECT count() FROM system.tables WHERE database = 'shop' AND name LIKE '%staging%'").trim(),
        "0",
        "the staging table is dropped"
    );

    // An empty partition needs no --replace.
    server.sql("ALTER TABLE shop.events DROP PARTITION 202504");
    run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &url,
            "--table",
            "shop.events",
            "--partition",
            "202504",
        ],
    )
    .ok();
    assert_eq!(events(&content(&server, "shop")), events(&original));

    // --replace of a whole table: every partition replaced, extra ones dropped.
    server.sql("INSERT INTO shop.flat VALUES (5000, 'extra')");
    server.sql("INSERT INTO shop.legacy VALUES ('2030-01-01', 1, 'x')");
    run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &url,
            "--table",
            "shop.legacy",
            "--replace",
        ],
    )
    .ok();
    let legacy = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| k.starts_with("legacy/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(legacy(&content(&server, "shop")), legacy(&original));

    // Unknown tables and partitions are "not found" (18).
    run(
        &ws,
        &["restore", "latest", "--to", &url, "--table", "shop.nope"],
    )
    .error(18, &["shop.nope", "shop.events"]);
    run(
        &ws,
        &[
            "restore",
            "latest",
            "--to",
            &url,
            "--table",
            "shop.events",
            "--partition",
            "209901",
        ],
    )
    .error(18, &["209901", "202501"]);
}

#[test]
fn verify_restore_test_restores_into_scratch_databases_and_compares_every_partition() {
    let Some(server) = TestServer::start() else {
        return;
    };
    create_shop(&server, "shop");
    let ws = Workspace::init();
    configure(&ws, &server, "databases = [\"shop\"]");
    let b = backup(&ws);
    let partitions = stat(&b, "partitions");
    let r = run(&ws, &["--json", "verify", "--restore-test"]);
    r.ok();
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    let checks = v["restore_test"]["checks"].as_array().unwrap();
    let partition_checks: Vec<_> = checks
        .iter()
        .filter(|c| c["name"].as_str().unwrap().contains(" partition "))
        .collect();
    assert_eq!(partition_checks.len() as u64, partitions, "{v}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{v}");
    assert!(
        checks.iter().any(|c| c["name"] == "shop.big exists"),
        "views are checked: {v}"
    );
    assert_eq!(
        server
            .sql("SELECT count() FROM system.databases WHERE name LIKE 'lifeboat_verify%'")
            .trim(),
        "0",
        "the scratch databases are dropped"
    );
    // The record is stored with the snapshot.
    let snaps = ws.snapshots();
    assert_eq!(snaps[0]["restore_test"]["report"]["ok"], true, "{snaps:?}");

    // Text output names the result.
    let r = run(&ws, &["verify", "--restore-test", "--source", "ch"]);
    r.ok();
    assert!(r.stdout.contains("restore test passed"), "{}", r.stdout);
}
