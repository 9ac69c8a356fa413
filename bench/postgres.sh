#!/usr/bin/env bash
# PostgreSQL logical benchmark: lifeboat logical backup/restore vs pg_dump -Fc /
# pg_restore on a throwaway PostgreSQL 15 cluster, same machine, one run.
#
#   bench/postgres.sh [--size-gb N] [--seed S] [--warm] [--reload] [--rounds R]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_GB=2
SEED=1
RELOAD=no
ROUNDS=3
PG_MAJOR=15
CMDLINE="bench/postgres.sh $*"

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --size-gb) SIZE_GB=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --warm) DROP_CACHES=no; shift ;;
        --reload) RELOAD=yes; shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PGW=$WORK/pg                 # cluster (owned by the postgres OS user)
PGDATA=$PGW/data
PB=$WORK/pgbench             # dumps, lifeboat repository, logs (root)
CONFIG=$WORK/lifeboat.toml
DB=bench
PGPID=""

# ---------------------------------------------------------------- cluster
ensure_postgres() {
    [[ -x $PGBIN/initdb ]] || ensure_cmd "$PGBIN/initdb" "postgresql-$PG_MAJOR"
    id postgres >/dev/null 2>&1 || die "no postgres OS user (install postgresql-$PG_MAJOR)"
    export PATH=$PGBIN:$PATH   # lifeboat and we use the same pg_dump/pg_restore as the server
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_pg() { runuser -u postgres -- "$@"; }

init_cluster() {
    log "initdb into $PGDATA"
    rm -rf "$PGW"; mkdir -p "$PGW/sock"; chown -R postgres: "$PGW"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$PGW/initdb.log"
}

start_cluster() {
    PGPORT=$(free_port)
    log "starting PostgreSQL $PG_MAJOR on 127.0.0.1:$PGPORT (default settings)"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGW/server.log" -w -t 120 \
        -o "-p $PGPORT -k $PGW/sock -c listen_addresses=127.0.0.1" start >/dev/null
    PGPID=$(head -1 "$PGDATA/postmaster.pid")
    trap stop_cluster EXIT
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/$DB"
}

stop_cluster() {
    [[ -n $PGPID ]] || return 0
    log "stopping PostgreSQL (pid $PGPID)"
    kill -INT "$PGPID" 2>/dev/null || true          # fast shutdown
    for _ in $(seq 1 120); do kill -0 "$PGPID" 2>/dev/null || { PGPID=""; return 0; }; sleep 0.5; done
    log "postmaster $PGPID did not stop; sending SIGQUIT"
    kill -QUIT "$PGPID" 2>/dev/null || true
    PGPID=""
}

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
scalar() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# --------------------------------------------------------------- the data
load_stamp() { echo "$(cat "$BENCH_DIR/gen_pg.py" "$BENCH_DIR/gen_files.py" | md5sum | cut -c1-12) size=$SIZE_GB seed=$SEED"; }

load_data() {
    log "loading ~${SIZE_GB} GB into database $DB"
    local t0=$SECONDS tbl
    psql_q -d postgres -c "CREATE DATABASE $DB"
    python3 "$BENCH_DIR/gen_pg.py" --schema | psql_q -d "$DB"
    for tbl in users events metrics blobs; do
        log "  COPY $tbl ($(python3 "$BENCH_DIR/gen_pg.py" --size-gb "$SIZE_GB" --rows "$tbl") rows)"
        nice -n 10 python3 "$BENCH_DIR/gen_pg.py" --size-gb "$SIZE_GB" --seed "$SEED" "$tbl" |
            psql_q -d "$DB" -c "COPY $tbl FROM STDIN"
    done
    log "  indexes, VACUUM ANALYZE, CHECKPOINT"
    python3 "$BENCH_DIR/gen_pg.py" --indexes | psql_q -d "$DB"
    psql_q -d "$DB" -c "SELECT setval('events_id_seq', (SELECT max(id) FROM events))" >/dev/null
    psql_q -d "$DB" -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT"
    log "  loaded in $((SECONDS - t0))s"
    load_stamp >"$PGW/loaded.stamp"
}

prepare_cluster() {
    if [[ $RELOAD == no && -f $PGW/loaded.stamp && $(cat "$PGW/loaded.stamp") == "$(load_stamp)" ]]; then
        log "reusing loaded cluster in $PGW (--reload to rebuild)"
        rm -f "$PGDATA/postmaster.pid"
        start_cluster
    else
        init_cluster
        start_cluster
        load_data
    fi
    local d
    for d in restored_pgdump restored_lifeboat; do psql_q -d postgres -c "DROP DATABASE IF EXISTS $d"; done
}

# table_fingerprint DB -- order-independent checksum + row count per table, and the schema
fingerprint() {
    psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "
        SELECT 'users', count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint) FROM users t
        UNION ALL SELECT 'events', count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint) FROM events t
        UNION ALL SELECT 'metrics', count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint) FROM metrics t
        UNION ALL SELECT 'blobs', count(*), sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint) FROM blobs t"
    pg_dump -s -d "$1" | grep -Ev '^(--|\\(un)?restrict |$)'   # \restrict keys are random per dump (PG 15.14+)
}

# verify_restore TOOL DB -- sets VERIFY_NOTE; downgrades M_STATUS on mismatch
verify_restore() {
    local got=$PB/fingerprint-$1.txt
    if ! fingerprint "$2" >"$got" 2>&1; then
        M_STATUS="FAILED (verify)"; VERIFY_NOTE="cannot read $2"; return
    fi
    if diff -q "$PB/fingerprint-source.txt" "$got" >/dev/null; then
        VERIFY_NOTE="rows+checksums+schema identical"
    else
        M_STATUS="FAILED (verify)"
        VERIFY_NOTE="differs from source, see diff $PB/fingerprint-source.txt $got"
    fi
}

# ------------------------------------------------------------------ steps
step_pg_dump() {
    local f=$PB/bench.dump
    measure pg_dump-Fc pg_dump -Fc -f "$f" -d "$DB" || true
    emit "pg_dump -Fc" dump "$(size_of "$f")" "default compression (gzip -6), single file"
    measure pg_dump-Fc-Z0 bash -c 'pg_dump -Fc -Z0 -d "$1" | wc -c >"$2"' _ "$DB" "$PB/raw.size" || true
    emit "pg_dump -Fc -Z0 (ref)" dump "$(cat "$PB/raw.size" 2>/dev/null)" "uncompressed, to /dev/null (size counted)"
}

# step_pg_restore ROUND -- pg_restore -d (1 job, default) into a fresh database
step_pg_restore() {
    psql_q -d postgres -c "DROP DATABASE IF EXISTS restored_pgdump" -c "CREATE DATABASE restored_pgdump"
    measure "pg_restore-$1" pg_restore -d restored_pgdump "$PB/bench.dump" || true
    VERIFY_NOTE=""
    [[ $M_STATUS == ok ]] && verify_restore pg_restore restored_pgdump
    emit pg_restore "restore #$1" "" "pg_restore -d (1 job)${VERIFY_NOTE:+; $VERIFY_NOTE}"
}

write_lifeboat_config() {
    cat >"$CONFIG" <<EOF
[repository]
url = "$PB/repo"
password_file = "$PB/password"

[[source]]
name = "main"
kind = "postgres"
url = "env:DATABASE_URL"
EOF
    printf 'lifeboat-bench-password\n' >"$PB/password"
    chmod 600 "$PB/password"
}

# lifeboat_step NAME ARGS... -- one lifeboat command, never aborts
lifeboat_step() {
    local name=$1; shift
    if [[ ! -x $LIFEBOAT ]]; then M_STATUS="FAILED (no binary)" M_WALL="" M_CPU="" M_RSS=""; return; fi
    LIFEBOAT_CONFIG=$CONFIG measure "$name" "$LIFEBOAT" "$@" || true
    if [[ $M_STATUS == ok && ! -d $PB/repo ]]; then M_STATUS="FAILED (no repository)"; fi
}

step_lifeboat() {
    lifeboat_step lifeboat-init init
    emit lifeboat init "$(size_of "$PB/repo")" ""
    lifeboat_step lifeboat-backup1 backup main --kind logical
    emit lifeboat "backup 1" "$(size_of "$PB/repo")" "repository size"
    lifeboat_step lifeboat-backup2 backup main --kind logical
    emit lifeboat "backup 2 (unchanged)" "$(size_of "$PB/repo")" "repository size"
}

# step_lifeboat_restore ROUND -- lifeboat restore into a fresh database
step_lifeboat_restore() {
    psql_q -d postgres -c "DROP DATABASE IF EXISTS restored_lifeboat" -c "CREATE DATABASE restored_lifeboat"
    lifeboat_step "lifeboat-restore-$1" restore latest --to "postgres://postgres@127.0.0.1:$PGPORT/restored_lifeboat"
    VERIFY_NOTE=""
    [[ $M_STATUS == ok ]] && verify_restore lifeboat restored_lifeboat
    local how
    how=$(grep -o 'restored with .*' "$RUN_DIR/lifeboat-restore-$1.log" 2>/dev/null | head -1) || true
    emit lifeboat "restore #$1" "" "into a pre-created empty database${how:+, $how}${VERIFY_NOTE:+; $VERIFY_NOTE}"
}

# The restores alternate, ROUNDS times each (the report takes the medians):
# on a shared machine a single pair of runs can differ by 30%.
step_restores() {
    local r
    for r in $(seq 1 "$ROUNDS"); do
        step_pg_restore "$r"
        step_lifeboat_restore "$r"
    done
}

main() {
    ensure_time
    ensure_postgres
    setup_cache_mode
    new_run postgres
    rm -rf "$PB"; mkdir -p "$PB"
    prepare_cluster
    write_lifeboat_config

    local dbsize
    dbsize=$(scalar "$DB" "SELECT pg_database_size('$DB')")
    meta "command" "$CMDLINE"
    machine_facts
    meta "server" "$(scalar "$DB" 'SHOW server_version') (default settings, shared_buffers $(scalar "$DB" 'SHOW shared_buffers'), port $PGPORT)"
    meta "pg_dump" "$(pg_dump --version)"
    meta "database" "$DB: $((dbsize / 1048576)) MiB pg_database_size; $(scalar "$DB" "SELECT string_agg(format('%s %s rows / %s MiB', relname, n_live_tup, pg_total_relation_size(relid) / 1048576), ', ' ORDER BY relname) FROM pg_stat_user_tables")"
    meta "db_bytes" "$dbsize"
    meta "lifeboat config" "$CONFIG (DATABASE_URL=postgres://postgres@127.0.0.1:PORT/$DB)"
    log "computing source fingerprint"
    fingerprint "$DB" >"$PB/fingerprint-source.txt"
    # (the fingerprint reads every table, so in --warm mode the cache is warm for all tools)

    meta "load before" "$(uptime)"
    step_pg_dump
    step_lifeboat
    step_restores
    meta "load after" "$(uptime)"

    render_report postgres "$RESULTS_DIR/postgres-$RUN_STAMP.md"
}

main
