#!/usr/bin/env bash
# Prune benchmark: lifeboat `forget --keep-last K --prune` vs restic
# `forget --keep-last K --prune` on the same history: N snapshots of a
# directory of F files where each snapshot rewrites C of them.
# Peak RSS and wall time by /usr/bin/time -v.
#   bench/prune.sh [--snapshots N] [--files F] [--changed C] [--keep K]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=100 F=400 C=20 K=10 FILE_KIB=256
while [[ $# -gt 0 ]]; do
    case $1 in
        --snapshots) N=$2; shift 2 ;;
        --files) F=$2; shift 2 ;;
        --changed) C=$2; shift 2 ;;
        --keep) K=$2; shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done
ensure_time
[[ -x $LIFEBOAT ]] || die "build first: cargo build --release"
command -v restic >/dev/null || ensure_cmd restic restic
PW=$WORK/prune
rm -rf "$PW"; mkdir -p "$PW/data" "$PW/times"
echo "bench-password" >"$PW/pass"
export LIFEBOAT_REPOSITORY=$PW/lifeboat LIFEBOAT_PASSWORD_FILE=$PW/pass
export RESTIC_REPOSITORY=$PW/restic RESTIC_PASSWORD_FILE=$PW/pass RESTIC_CACHE_DIR=$PW/cache
"$LIFEBOAT" init >/dev/null
restic init >/dev/null 2>&1
write() { head -c $((FILE_KIB * 1024)) /dev/urandom >"$PW/data/f$1"; }
for i in $(seq 1 "$F"); do write "$i"; done
log "history: $N snapshots of $F x ${FILE_KIB} KiB files, $C rewritten per snapshot"
for s in $(seq 1 "$N"); do
    for j in $(seq 1 "$C"); do write $(( (s * C + j) % F + 1 )); done
    "$LIFEBOAT" -q backup "$PW/data" >/dev/null
    restic backup -q "$PW/data" >/dev/null
done
du_l=$(du -sm "$PW/lifeboat" | cut -f1); du_r=$(du -sm "$PW/restic" | cut -f1)
run() {
    local name=$1; shift
    /usr/bin/time -v -o "$PW/times/$name" "$@" >"$PW/times/$name.log" 2>&1 || die "$name failed: $(tail -3 "$PW/times/$name.log")"
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$PW/times/$name")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$PW/times/$name")
    printf '| %s | %s | %s MiB |\n' "$name" "$wall" "$rss"
}
echo "repositories before: lifeboat ${du_l} MiB, restic ${du_r} MiB"
echo "| step | wall | peak RSS |"
echo "|---|---|---|"
run "lifeboat forget --keep-last $K --prune" "$LIFEBOAT" forget --keep-last "$K" --prune
run "restic forget --keep-last $K --prune" restic forget --keep-last "$K" --prune
echo "repositories after: lifeboat $(du -sm "$PW/lifeboat" | cut -f1) MiB, restic $(du -sm "$PW/restic" | cut -f1) MiB"
run "lifeboat verify --read-data" "$LIFEBOAT" verify --read-data
