//! The archive inspector against real `pg_dump -Fc -Z0` output: its per-table
//! row counts must equal `count(*)` on the server, whatever the feed sizes.

use lifeboat_sources::postgres::archive::ArchiveInspector;
use lifeboat_sources::postgres::dump::dump_command;
use lifeboat_sources::postgres::{ClientTools, DumpOptions, ScratchCluster};

const KITCHEN_SINK: &str = include_str!("fixtures/kitchen_sink.sql");

#[test]
fn inspector_counts_match_count_star_for_every_table() {
    let bin = ClientTools::any(None)
        .expect("PostgreSQL installed")
        .bin_dir;
    let c = ScratchCluster::start(&bin).expect("scratch cluster starts");
    c.create_database("ks").unwrap();
    c.run_sql_in("ks", KITCHEN_SINK)
        .expect("kitchen sink loads");
    let target = c.target().with_database("ks");
    let out = dump_command(c.tools(), &target, &DumpOptions::default())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = out.stdout;

    // Expected: count(*) of every table that has data in the dump.
    let rows = c
        .run_sql_in(
            "ks",
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
        )
        .unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for r in rows {
        let (schema, name) = r[0].split_once('.').unwrap();
        let n = c
            .run_sql_in(
                "ks",
                &format!("SELECT count(*) FROM ONLY \"{schema}\".\"{name}\""),
            )
            .unwrap()[0][0]
            .parse::<u64>()
            .unwrap();
        expected.insert(r[0].clone(), n);
    }
    let large_objects: u64 = c
        .run_sql_in("ks", "SELECT count(*) FROM pg_largeobject_metadata")
        .unwrap()[0][0]
        .parse()
        .unwrap();
    assert!(expected.values().sum::<u64>() > 1000, "fixture has data");

    let mut all_blocks = Vec::new();
    for feed in [1usize, 7, 4096, archive.len()] {
        let mut insp = ArchiveInspector::new();
        for piece in archive.chunks(feed) {
            insp.feed(piece);
        }
        let summary = insp.finish().expect("archive parses");
        assert_eq!(summary.database, "ks");
        assert!(summary
            .server_version
            .starts_with(&c.tools().major.to_string()));
        let got: std::collections::BTreeMap<String, u64> = expected
            .keys()
            .map(|t| {
                (
                    t.clone(),
                    summary.table_rows.get(t).copied().unwrap_or(u64::MAX),
                )
            })
            .collect();
        assert_eq!(got, expected, "rows per table (feed {feed})");
        assert_eq!(summary.large_objects, large_objects);
        // Each recorded block offset points at a block header naming its
        // entry (type byte 1 = data, 3 = large objects; then the dump id),
        // whatever the feed size.
        let blocks = summary.data_blocks.expect("block offsets recorded");
        assert!(blocks.len() > 1, "{blocks:?}");
        let int_size = usize::from(archive[8]);
        for b in &blocks {
            let at = b.offset as usize;
            assert!(matches!(archive[at], 1 | 3), "block type at {at}");
            assert_eq!(archive[at + 1], 0, "dump id sign at {at}");
            let id = archive[at + 2..at + 2 + int_size]
                .iter()
                .rev()
                .fold(0i64, |v, &x| (v << 8) | i64::from(x));
            assert_eq!(id, b.dump_id, "dump id at {at} (feed {feed})");
        }
        assert!(blocks.windows(2).all(|w| w[0].offset < w[1].offset));
        all_blocks.push(blocks);
    }
    assert!(
        all_blocks.windows(2).all(|w| w[0] == w[1]),
        "same offsets for every feed size"
    );

    let mut truncated = ArchiveInspector::new();
    truncated.feed(&archive[..archive.len() - 10]);
    assert!(truncated.finish().unwrap_err().contains("truncated"));
    let mut foreign = ArchiveInspector::new();
    foreign.feed(b"not an archive at all");
    assert!(foreign.finish().is_err());
}
