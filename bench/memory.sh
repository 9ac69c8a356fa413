#!/usr/bin/env bash
# Memory benchmark: peak RSS of each lifeboat command against the repository
# size (1,000 vs 300,000 one-blob files) and the number of snapshots (1 vs
# many of a small source). Prints bytes per blob and per snapshot.
#
#   bench/memory.sh [--small N] [--large N] [--snapshots N] [--no-restore]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMALL=1000
LARGE=300000
SNAPS=200
RESTORE=yes
CMDLINE="bench/memory.sh $*"
DROP_CACHES=no   # memory, not I/O, is measured: keep the cache warm

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --small) SMALL=$2; shift 2 ;;
        --large) LARGE=$2; shift 2 ;;
        --snapshots) SNAPS=$2; shift 2 ;;
        --no-restore) RESTORE=no; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

MW=$WORK/memory
STEPS=("backup (first)" "backup (unchanged)" "verify" "verify --read-data" "snapshots" "ls" "restore")

# gen_files DIR N -- N files of distinct small content, 1,000 per directory
gen_files() {
    python3 - "$1" "$2" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d" % i), "w") as f:
        f.write("lifeboat memory benchmark file %d\n" % i)
EOF
}

# lb ARGS... -- lifeboat on the current repository
lb() { "$LIFEBOAT" --quiet "$@"; }

# new_repo DIR -- a new repository, then opened with its raw key (no KDF per command)
new_repo() {
    rm -rf "$1" "$MW/key"
    unset LIFEBOAT_KEY_FILE
    export LIFEBOAT_REPOSITORY=$1 LIFEBOAT_PASSWORD_FILE=$MW/password
    lb init >/dev/null
    lb key export -o "$MW/key" >/dev/null
    unset LIFEBOAT_PASSWORD_FILE
    export LIFEBOAT_KEY_FILE=$MW/key
}

# rss NAME CMD... -- run under /usr/bin/time -v, record peak RSS (KiB) and wall time
rss() {
    local name=$1; shift
    measure "$name" "$@" || die "$name failed (see $RUN_DIR/$name.log)"
    printf '%s\t%s\t%s\n' "$name" "$M_RSS" "$M_WALL" >>"$TSV"
}

# run_size N -- every command against a repository of N one-blob files
run_size() {
    local n=$1 data=$MW/data-$1 out=$MW/restore-$1
    [[ -f $data/.complete ]] || { rm -rf "$data"; log "generating $n files"; gen_files "$data" "$n"; touch "$data/.complete"; }
    new_repo "$MW/repo-$n"
    rss "$n:backup (first)" "$LIFEBOAT" --quiet backup "$data"
    rss "$n:backup (unchanged)" "$LIFEBOAT" --quiet backup "$data"
    rss "$n:verify" "$LIFEBOAT" --quiet verify
    rss "$n:verify --read-data" "$LIFEBOAT" --quiet verify --read-data
    rss "$n:snapshots" "$LIFEBOAT" --quiet snapshots
    rss "$n:ls" "$LIFEBOAT" --quiet ls latest
    if [[ $RESTORE == yes ]]; then
        rm -rf "$out"
        rss "$n:restore" "$LIFEBOAT" --quiet restore latest --to "$out"
        diff -r --no-dereference "$data" "$out/$(basename "$data")" >/dev/null || die "restore of $n files differs"
        rm -rf "$out"
    fi
    meta "blobs-$n" "$(lb --json verify | python3 -c 'import json,sys; print(json.load(sys.stdin)["report"]["blobs"])' 2>/dev/null || echo "?")"
}

# run_snapshots N -- commands against N snapshots of a small source
run_snapshots() {
    local n=$1 data=$MW/data-snap i
    [[ -d $data ]] || gen_files "$data" 20
    new_repo "$MW/repo-snap-$n"
    for ((i = 1; i < n; i++)); do lb backup "$data" --time "2026-01-01T00:00:00Z" --tag "t$i" >/dev/null; done
    rss "snap$n:backup" "$LIFEBOAT" --quiet backup "$data"
    rss "snap$n:snapshots" "$LIFEBOAT" --quiet snapshots
    rss "snap$n:verify" "$LIFEBOAT" --quiet verify
    rss "snap$n:ls" "$LIFEBOAT" --quiet ls latest
}

report() {
    python3 - "$TSV" "$SMALL" "$LARGE" "$SNAPS" "$META" <<'EOF'
import sys
tsv, small, large, snaps, meta = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rows = {}
for line in open(tsv):
    name, rss, wall = line.rstrip("\n").split("\t")
    rows[name] = (int(rss), float(wall))
m = dict(l.rstrip("\n").split("\t", 1) for l in open(meta))
bs, bl = m.get("blobs-%d" % small, "?"), m.get("blobs-%d" % large, "?")
print("| command | RSS %s files | RSS %s files | bytes per blob | wall %s files |" % (f"{small:,}", f"{large:,}", f"{large:,}"))
print("|---|---:|---:|---:|---:|")
for step in ["backup (first)", "backup (unchanged)", "verify", "verify --read-data", "snapshots", "ls", "restore"]:
    a, b = rows.get(f"{small}:{step}"), rows.get(f"{large}:{step}")
    if not a or not b:
        continue
    per = (b[0] - a[0]) * 1024 / (large - small)
    print(f"| `{step}` | {a[0]/1024:.1f} MiB | {b[0]/1024:.1f} MiB | **{per:.0f}** | {b[1]:.2f} s |")
print(f"\nblobs in the repository: {bs} ({small:,} files), {bl} ({large:,} files); bytes per blob = (RSS{large} - RSS{small}) / {large - small:,} files")
print(f"\n| command | RSS 1 snapshot | RSS {snaps} snapshots | bytes per snapshot |")
print("|---|---:|---:|---:|")
for step in ["backup", "snapshots", "verify", "ls"]:
    a, b = rows.get(f"snap1:{step}"), rows.get(f"snap{snaps}:{step}")
    if a and b:
        print(f"| `{step}` | {a[0]/1024:.1f} MiB | {b[0]/1024:.1f} MiB | {(b[0]-a[0])*1024/(snaps-1):.0f} |")
EOF
}

main() {
    ensure_time
    setup_cache_mode
    new_run memory
    : >"$TSV"
    mkdir -p "$MW"
    printf 'lifeboat-bench-password\n' >"$MW/password"
    meta "command" "$CMDLINE"
    machine_facts
    run_size "$SMALL"
    run_size "$LARGE"
    run_snapshots 1
    run_snapshots "$SNAPS"
    local out=$RESULTS_DIR/memory-$RUN_STAMP.md
    {
        echo "# Memory: $CMDLINE"
        echo
        sed 's/^/- /; s/\t/: /' "$META"
        echo
        report
    } >"$out"
    cat "$out"
    log "report written to $out (raw data: $RUN_DIR)"
}

main
