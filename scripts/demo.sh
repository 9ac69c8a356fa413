#!/usr/bin/env bash
# The main job on an embedded default: a throwaway PostgreSQL with sample
# data and a local repository. Builds lifeboat, takes a logical backup (and a
# second one, which adds almost nothing), restores it into a new database,
# shows that schema and every table's rows match, runs a restore test in a
# scratch cluster, and backs up and restores a config directory.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -q
lb="$PWD/target/release/lifeboat"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d /tmp/lifeboat-demo.XXXXXX)
chmod 755 "$work"
pgpid=""
cleanup() {
  if [ -n "$pgpid" ]; then kill -INT "$pgpid" 2>/dev/null || true; while kill -0 "$pgpid" 2>/dev/null; do sleep 0.1; done; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

step "throwaway PostgreSQL ($("$pgbin/postgres" --version))"
mkdir -p "$work/pg" && [ "$(id -u)" != 0 ] || chown postgres "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -A trust -U postgres -E UTF8 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
pgpid=$(head -1 "$work/pg/data/postmaster.pid")
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
psql -qc "CREATE DATABASE shop"
psql -q -d shop -f crates/sources/tests/fixtures/kitchen_sink.sql >/dev/null
psql -d shop -Atc "SELECT 'sample database: ' || count(*) || ' tables, ' || pg_size_pretty(pg_database_size('shop')) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')"

step "config"
mkdir -p "$work/app/migrations"
printf 'APP_NAME=shop\nSTRIPE_SECRET_KEY=sk_live_do_not_store\n' > "$work/app/.env"
printf 'create table t (id int);\n' > "$work/app/migrations/001_init.sql"
head -c 24 /dev/urandom | base64 > "$work/password"
cat > "$work/lifeboat.toml" <<TOML
[repository]
url = "repo"
password_file = "password"

[[source]]
name = "shop"
kind = "postgres"
url = "env:DATABASE_URL"
verify = { critical_tables = ["public.users", "public.projects"], assertions = ["SELECT count(*) > 0 FROM billing.invoices"] }

[[source]]
name = "config"
kind = "files"
paths = ["app"]
TOML
cat "$work/lifeboat.toml"
export LIFEBOAT_CONFIG="$work/lifeboat.toml" DATABASE_URL="postgres://postgres@127.0.0.1:$port/shop"

step "lifeboat init"
"$lb" init
step "lifeboat backup shop (logical: pg_dump streamed into the repository)"
"$lb" backup shop
step "lifeboat backup shop (unchanged database: almost nothing new is stored)"
"$lb" backup shop
step "lifeboat snapshots"
"$lb" snapshots
step "lifeboat restore latest --to postgres://.../shop_restored"
"$lb" restore latest --source shop --to "postgres://postgres@127.0.0.1:$port/shop_restored"

step "compare the restored database with the original"
checksums() {
  psql -d "$1" -At <<'SQL'
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM ONLY %I.%I t',
              n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1 \gexec
SQL
}
schema() { pg_dump -s -d "$1" | grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict' -e '^$'; }
checksums shop > "$work/a.txt"; checksums shop_restored > "$work/b.txt"
schema shop > "$work/a.sql"; schema shop_restored > "$work/b.sql"
diff "$work/a.txt" "$work/b.txt" && echo "rows: identical in all $(wc -l < "$work/a.txt") tables (count + md5 of every row)"
diff "$work/a.sql" "$work/b.sql" && echo "schema: identical ($(wc -l < "$work/a.sql") lines of pg_dump --schema-only)"
head -5 "$work/a.txt" | sed 's/^/  /'

step "lifeboat verify --restore-test (scratch cluster, row counts recorded at backup time, critical tables, assertions)"
"$lb" verify --restore-test
step "lifeboat dump export latest --format custom (stock pg_restore reads it)"
"$lb" dump export latest --source shop -o "$work/shop.dump"
pg_restore --list "$work/shop.dump" | sed -n "2,5p"

step "lifeboat backup config / restore (.env secrets are redacted by design)"
cd "$work"
"$lb" backup config
"$lb" restore latest --source config --to "$work/restored"
diff -r --exclude=.env "$work/app" "$work/restored/app" && echo "config files: identical"
cat "$work/restored/app/.env"
step "lifeboat verify --read-data"
"$lb" verify --read-data
