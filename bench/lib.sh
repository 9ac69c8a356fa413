# Shared helpers for the lifeboat benchmarks; sourced by files.sh and postgres.sh.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$BENCH_DIR")
WORK=$(mkdir -p "${BENCH_WORK:-$BENCH_DIR/work}" && cd "${BENCH_WORK:-$BENCH_DIR/work}" && pwd)
RESULTS_DIR=$BENCH_DIR/results
LIFEBOAT=${LIFEBOAT:-$REPO_ROOT/target/release/lifeboat}
case $LIFEBOAT in /*) ;; */*) LIFEBOAT=$REPO_ROOT/$LIFEBOAT ;; esac
DROP_CACHES=auto   # auto | yes | no  (--warm sets no)

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ensure_cmd CMD DEBIAN_PACKAGE: install the package if CMD is missing.
ensure_cmd() {
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2 (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$2" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$2" >/dev/null; } ||
        die "could not install $2"
}

ensure_time() { [[ -x /usr/bin/time ]] || ensure_cmd /usr/bin/time time; }

# ---------------------------------------------------------------- page cache
# Decide once whether caches can be dropped; sets CACHE_MODE for the report.
setup_cache_mode() {
    if [[ $DROP_CACHES != no ]] && sync && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
        DROP_CACHES=yes
        CACHE_MODE="cold: page cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every measured step"
    else
        [[ $DROP_CACHES == yes ]] && die "cannot drop page cache (need root, not in a container that forbids it)"
        DROP_CACHES=no
        CACHE_MODE="warm: page cache NOT dropped; input pre-read once so every tool sees the same warm cache"
    fi
}

drop_caches() {
    sync
    [[ $DROP_CACHES == yes ]] && echo 3 >/proc/sys/vm/drop_caches
    return 0
}

# ------------------------------------------------------------------ measure
# measure LOGNAME CMD...   Runs CMD under /usr/bin/time -v (after dropping caches).
# Sets M_STATUS (ok | FAILED (exit N)), M_WALL (s), M_CPU (user+sys s), M_RSS (KiB).
# Peak RSS is the largest single process of the tree (kernel ru_maxrss), not a sum.
# Never aborts the script; returns the command's exit status.
measure() {
    local name=$1; shift
    local tf=$RUN_DIR/$name.time lf=$RUN_DIR/$name.log rc
    drop_caches
    log "run $name: $*"
    set +e
    /usr/bin/time -v -o "$tf" "$@" >"$lf" 2>&1
    rc=$?
    set -e
    parse_time "$name" "$rc"
    if [[ $rc != 0 ]]; then
        log "  $name FAILED (exit $rc); last lines of $lf:"
        tail -n 5 "$lf" | sed 's/^/    /' >&2
    fi
    log "  $name: ${M_WALL:-?}s wall, ${M_CPU:-?}s cpu, ${M_RSS:-?} KiB peak RSS, $M_STATUS"
    return $rc
}

# parse_time NAME RC -- read $RUN_DIR/NAME.time (written by /usr/bin/time -v) into M_*
parse_time() {
    local tf=$RUN_DIR/$1.time
    M_WALL="" M_CPU="" M_RSS=""
    if [[ -s $tf ]]; then
        M_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; printf "%.2f", s}' "$tf")
        M_CPU=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$tf")
        M_RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf")
    fi
    if [[ $2 == 0 ]]; then M_STATUS=ok; else M_STATUS="FAILED (exit $2)"; fi
}

# emit TOOL STEP SIZE_BYTES NOTE  -- append the last measurement to $TSV
emit() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$M_STATUS" "${M_WALL:-}" "${M_CPU:-}" \
        "${M_RSS:-}" "${3:-}" "${4:-}" >>"$TSV"
}

# fail_row TOOL STEP REASON -- record a step that could not even be attempted
fail_row() {
    printf '%s\t%s\t%s\t\t\t\t\t%s\n' "$1" "$2" "FAILED" "$3" >>"$TSV"
}

size_of() { if [[ -e $1 ]]; then du -sb "$1" | cut -f1; else echo ""; fi; }

# ---------------------------------------------------------------- reporting
new_run() {  # new_run NAME: sets RUN_DIR, TSV, META
    RUN_STAMP=$(date +%Y-%m-%d-%H%M)
    RUN_DIR=$WORK/runs/$1-$RUN_STAMP
    rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR" "$RESULTS_DIR"
    TSV=$RUN_DIR/results.tsv
    META=$RUN_DIR/meta.txt
    printf 'tool\tstep\tstatus\twall_s\tcpu_s\trss_kb\tsize_bytes\tnote\n' >"$TSV"
    : >"$META"
}

meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

machine_facts() {
    meta "date" "$(date -u '+%Y-%m-%d %H:%M UTC')"
    meta "host" "$(uname -srm)"
    meta "nproc" "$(nproc)"
    meta "cpu" "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    meta "memory" "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    meta "work dir" "$WORK ($(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}'))"
    meta "page cache" "$CACHE_MODE"
    local lbv
    lbv=$("$LIFEBOAT" --version 2>/dev/null | head -1) || true
    meta "lifeboat" "${lbv:-unavailable} ($LIFEBOAT, git $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit'))"
}

render_report() {  # render_report KIND OUTFILE
    python3 "$BENCH_DIR/report.py" "$1" "$RUN_DIR" >"$2"
    cat "$2"
    log "report written to $2 (raw data: $RUN_DIR)"
}
