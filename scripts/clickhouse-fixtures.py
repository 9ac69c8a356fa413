#!/usr/bin/env python3
"""Write SHOW CREATE text of a current ClickHouse (chdb-core, embedded 26.x)
as fixtures for lifeboat's schema rewriter: Atomic databases with UUIDs
shown, a materialized view with TO INNER UUID, projections, TTL, codecs.

    python3 -m venv /tmp/chdb && /tmp/chdb/bin/pip install chdb-core
    /tmp/chdb/bin/python scripts/clickhouse-fixtures.py crates/sources/tests/fixtures/clickhouse
"""
import sys
from pathlib import Path

from chdb import session

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
s = session.Session()


def q(sql):
    return s.query(sql, "TSVRaw").bytes().decode()


q("CREATE DATABASE IF NOT EXISTS shop ENGINE = Atomic")
q("""CREATE TABLE shop.events (id UUID, ts DateTime64(3) CODEC(Delta, ZSTD(1)), v Decimal(18, 4),
     tags Array(LowCardinality(String)), n Nullable(Float64), PROJECTION by_ts (SELECT id ORDER BY ts))
     ENGINE = ReplacingMergeTree(ts) PARTITION BY toYYYYMM(ts) ORDER BY id
     TTL toDateTime(ts) + INTERVAL 30 DAY SETTINGS deduplicate_merge_projection_mode = 'drop'""")
q("CREATE TABLE shop.totals (k UInt32, c UInt64) ENGINE = SummingMergeTree ORDER BY k")
q("CREATE MATERIALIZED VIEW shop.mv ENGINE = SummingMergeTree ORDER BY k AS SELECT toYYYYMM(ts) AS k, count() AS c FROM shop.events GROUP BY k")
q("CREATE MATERIALIZED VIEW shop.mv_to TO shop.totals AS SELECT toYYYYMM(ts) AS k, count() AS c FROM shop.events GROUP BY k")
q("CREATE VIEW shop.v AS SELECT id FROM shop.events WHERE v > 1")
uuid = " SETTINGS show_table_uuid_in_table_create_query_if_not_nil = 1"
for name in ["events", "totals", "mv", "mv_to", "v"]:
    (out / f"{name}.sql").write_text(q(f"SHOW CREATE TABLE shop.{name}{uuid}"))
(out / "VERSION").write_text(q("SELECT version()"))
