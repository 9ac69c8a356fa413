#!/usr/bin/env bash
# Files benchmark: lifeboat vs restic (and borg/rustic if installed) on the same
# generated tree, same machine, one run.  See bench/README.md.
#
#   bench/files.sh [--size-gb N | --corpus DIR] [--seed S] [--mutate-pct P] [--grow-kib K] [--warm] [--peers restic,borg] [--s3]
# --corpus DIR backs up a copy of DIR (e.g. parts of /usr) instead of generated data.
# --s3 puts both repositories (lifeboat, restic) on one local S3 server (moto_server).
# The third backup follows growing P% of the files by K KiB (default 5% by 4 KiB).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_GB=2
SEED=1
MUTATE_PCT=5
GROW_KIB=4
CORPUS=""
PEERS=""          # default: restic + any of borg/rustic already installed
S3=no             # --s3: repositories on a local moto_server (lifeboat and restic only)
S3_PORT=""
CMDLINE="bench/files.sh $*"

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --size-gb) SIZE_GB=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --mutate-pct) MUTATE_PCT=$2; shift 2 ;;
        --grow-kib) GROW_KIB=$2; shift 2 ;;
        --corpus) CORPUS=$(cd "$2" && pwd); shift 2 ;;
        --warm) DROP_CACHES=no; shift ;;
        --peers) PEERS=$2; shift 2 ;;
        --s3) S3=yes; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

FW=$WORK/files
DATA=$FW/data
PASS=$FW/password

# ------------------------------------------------------------------ tools
# Each tool implements <tool>_env (exports, run in a subshell) and
# <tool>_cmd STEP [ARG] which sets the array CMD to the command to measure.
# Edit here if a CLI changes.

s3_env() {
    export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
}

lifeboat_env() {
    export LIFEBOAT_REPOSITORY=$FW/repos/lifeboat LIFEBOAT_PASSWORD_FILE=$PASS
    export XDG_CACHE_HOME=$FW/cache/lifeboat
    if [[ $S3 == yes ]]; then s3_env; export LIFEBOAT_REPOSITORY=s3://bench/lifeboat; fi
}
lifeboat_cmd() {
    case $1 in
        init) CMD=("$LIFEBOAT" init) ;;
        backup) CMD=("$LIFEBOAT" backup "$DATA") ;;
        restore) CMD=("$LIFEBOAT" restore latest --to "$2") ;;
        verify) CMD=("$LIFEBOAT" verify --read-data) ;;
    esac
}

restic_env() {
    export RESTIC_REPOSITORY=$FW/repos/restic RESTIC_PASSWORD_FILE=$PASS
    export RESTIC_CACHE_DIR=$FW/cache/restic
    if [[ $S3 == yes ]]; then s3_env; export RESTIC_REPOSITORY=s3:$AWS_ENDPOINT_URL/bench/restic; fi
}
restic_cmd() {
    case $1 in
        init) CMD=(restic init) ;;
        backup) CMD=(restic backup "$DATA") ;;
        restore) CMD=(restic restore latest --target "$2") ;;
        verify) CMD=(restic check --read-data) ;;
    esac
}
restic_version() { restic version | head -1; }

borg_env() {
    export BORG_REPO=$FW/repos/borg BORG_PASSCOMMAND="cat $PASS" BORG_BASE_DIR=$FW/cache/borg
}
borg_cmd() {
    case $1 in
        init) CMD=(borg init --encryption=repokey-blake2) ;;
        backup) CMD=(borg create "::b$2" "$DATA") ;;   # default compression (lz4)
        restore) CMD=(bash -c 'cd "$1" && borg extract ::b3' _ "$2") ;;
        verify) CMD=(borg check --verify-data) ;;
    esac
}
borg_version() { borg --version; }

rustic_env() {
    export RUSTIC_REPOSITORY=$FW/repos/rustic RUSTIC_PASSWORD_FILE=$PASS
    export XDG_CACHE_HOME=$FW/cache/rustic
}
rustic_cmd() {
    case $1 in
        init) CMD=(rustic init) ;;
        backup) CMD=(rustic backup "$DATA") ;;
        restore) CMD=(rustic restore latest "$2") ;;
        verify) CMD=(rustic check --read-data) ;;
    esac
}
rustic_version() { rustic --version | head -1; }

# run_step TOOL STEP KIND [ARG] -- measure one step in a subshell with the tool's env
run_step() {
    local tool=$1 step=$2 name rc=0; shift 2
    name=$tool-$(tr -c 'a-z0-9\n' _ <<<"$step")
    ( "${tool}_env"; "${tool}_cmd" "$@"; measure "$name" "${CMD[@]}" ) || rc=$?
    parse_time "$name" "$rc"   # the subshell's M_* are gone; re-read them
    # a tool that "succeeds" without a repository (e.g. a stub CLI) did not succeed
    if [[ $M_STATUS == ok && -z $(repo_size "$tool") ]]; then M_STATUS="FAILED (no repository)"; fi
}

# repo_size TOOL -- bytes of its repository (on disk, or its prefix in the S3 bucket); empty if none
repo_size() {
    if [[ $S3 != yes ]]; then size_of "$FW/repos/$1"; return; fi
    python3 - "$S3_PORT" "$1" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", aws_access_key_id="bench",
                  aws_secret_access_key="bench-secret", region_name="us-east-1")
total, n = 0, 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=sys.argv[2] + "/"):
    for o in page.get("Contents", []):
        total += o["Size"]; n += 1
print(total if n else "")
PY
}

# start_s3 -- a moto_server on a free port with the bucket "bench"; stopped on exit
start_s3() {
    command -v moto_server >/dev/null || pip install -q 'moto[server]' >/dev/null
    S3_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    moto_server -H 127.0.0.1 -p "$S3_PORT" >"$RUN_DIR/moto.log" 2>&1 &
    S3_PID=$!
    trap 'kill $S3_PID 2>/dev/null' EXIT
    for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/" && break; sleep 0.1; done
    curl -s -X PUT "http://127.0.0.1:$S3_PORT/bench" >/dev/null || die "moto_server did not start"
    log "S3: moto_server on port $S3_PORT (pid $S3_PID)"
}

cache_note() {
    local c
    c=$(size_of "$FW/cache/$1")
    [[ -n $c ]] && awk -v c="$c" 'BEGIN { printf "cache %.0f MiB", c / 1048576 }'
    return 0
}

# restored_root OUT -- where the data landed (tools differ: full path or basename)
restored_root() {
    local out=$1
    for c in "$out$DATA" "$out/$(basename "$DATA")" "$out"; do
        [[ -d $c && -n $(ls -A "$c") && ! -d $c/$(basename "$DATA") ]] && { echo "$c"; return; }
    done
    echo "$out"
}

# --------------------------------------------------------------- the steps
prepare_data() {
    if [[ -n $CORPUS ]]; then
        log "copying corpus $CORPUS to $DATA"
        rm -rf "$DATA"; mkdir -p "$FW"
        cp -a "$CORPUS" "$DATA"
        return
    fi
    local pristine=$FW/pristine-g$SIZE_GB-s$SEED stamp
    stamp="$(md5sum "$BENCH_DIR/gen_files.py" | cut -c1-12) size=$SIZE_GB seed=$SEED"
    if [[ ! -f $pristine/.complete || $(cat "$pristine/.complete") != "$stamp" ]]; then
        rm -rf "$pristine"
        log "generating ${SIZE_GB} GB of test data (seed $SEED) into $pristine"
        mkdir -p "$FW"
        nice -n 10 python3 "$BENCH_DIR/gen_files.py" --size-gb "$SIZE_GB" --seed "$SEED" "$pristine.tmp"
        mv "$pristine.tmp" "$pristine"
        echo "$stamp" >"$pristine/.complete"
    fi
    log "copying pristine data to $DATA"
    rm -rf "$DATA"
    cp -a "$pristine" "$DATA"
    rm -f "$DATA/.complete"
}

step_init() {
    local tool=$1
    if [[ $tool == lifeboat && ! -x $LIFEBOAT ]]; then fail_row lifeboat init "binary missing: $LIFEBOAT"; return; fi
    run_step "$tool" init init
    emit "$tool" init "$(repo_size "$tool")" ""
}

step_backup() {  # step_backup TOOL N STEPNAME
    local tool=$1 n=$2 step=$3
    run_step "$tool" "$step" backup "$n"
    emit "$tool" "$step" "$(repo_size "$tool")" "$(cache_note "$tool")"
}

step_verify() {
    local tool=$1
    run_step "$tool" "verify --read-data" verify
    emit "$tool" "verify --read-data" "$(repo_size "$tool")" ""
}

step_restore() {
    local tool=$1 out=$FW/restore/$1 root note
    rm -rf "$out"; mkdir -p "$out"
    run_step "$tool" restore restore "$out"
    local status=$M_STATUS
    if [[ $status == ok ]]; then
        root=$(restored_root "$out")
        if diff -r --no-dereference "$DATA" "$root" >"$RUN_DIR/$tool-restore.diff" 2>&1; then
            note="diff -r: identical"
        else
            M_STATUS="FAILED (diff)"
            note="diff -r: $(wc -l <"$RUN_DIR/$tool-restore.diff") differences, see $RUN_DIR/$tool-restore.diff"
        fi
    else
        note=""
    fi
    emit "$tool" restore "$(repo_size "$tool")" "$note"
    rm -rf "$out"
}

choose_tools() {
    TOOLS=(lifeboat restic)
    if [[ $S3 == yes ]]; then
        ensure_cmd restic restic
        return
    elif [[ -n $PEERS ]]; then
        IFS=, read -r -a extra <<<"$PEERS"
        TOOLS=(lifeboat "${extra[@]}")
    else
        command -v borg >/dev/null && TOOLS+=(borg)
        command -v rustic >/dev/null && TOOLS+=(rustic)
    fi
    for t in "${TOOLS[@]}"; do
        case $t in
            lifeboat) ;;
            restic) ensure_cmd restic restic ;;
            borg) ensure_cmd borg borgbackup ;;
            rustic) command -v rustic >/dev/null || die "rustic not installed (no Debian package; install it yourself)" ;;
            *) die "unknown peer $t" ;;
        esac
    done
}

main() {
    ensure_time
    choose_tools
    setup_cache_mode
    new_run files
    [[ $S3 == yes ]] && start_s3
    prepare_data
    rm -rf "$FW/repos" "$FW/cache" "$FW/restore"
    mkdir -p "$FW/repos" "$FW/cache"
    printf 'lifeboat-bench-password\n' >"$PASS"
    [[ $DROP_CACHES == no ]] && { log "pre-reading data (warm cache)"; tar cf - -C "$DATA" . >/dev/null; }

    meta "command" "$CMDLINE"
    [[ $S3 == yes ]] && meta "storage" "both repositories on one local S3 server (moto_server $(pip show moto 2>/dev/null | awk '/^Version/ {print $2}'), in memory, loopback)"
    machine_facts
    local origin="gen_files.py --size-gb $SIZE_GB --seed $SEED"
    [[ -n $CORPUS ]] && origin="copy of $CORPUS"
    meta "data" "$(du -sb "$DATA" | cut -f1) bytes in $(find "$DATA" -type f | wc -l) files, $(find "$DATA" -type d | wc -l) dirs (widest $(find "$DATA" -type d -exec sh -c 'ls -A "$1" | wc -l' _ {} \; | sort -n | tail -1) entries), $(find "$DATA" -type l | wc -l) symlinks ($origin)"
    meta "load" "$(uptime | sed 's/.*load average/load average/') at start"
    meta "data_bytes" "$(du -sb "$DATA" | cut -f1)"
    for t in "${TOOLS[@]}"; do [[ $t == lifeboat ]] || meta "$t" "$("${t}_version")"; done
    meta "tools" "${TOOLS[*]}"

    local t
    for t in "${TOOLS[@]}"; do step_init "$t"; done
    if [[ " ${TOOLS[*]} " == *" restic "* ]]; then
        meta "restic settings" "defaults: compression auto, repository $(restic_env; restic cat config 2>/dev/null | tr -d ' \n' | grep -o '"version":[0-9]*' || echo '?')"
    fi
    for t in "${TOOLS[@]}"; do step_backup "$t" 1 "backup 1 (initial)"; done
    for t in "${TOOLS[@]}"; do step_backup "$t" 2 "backup 2 (unchanged)"; done
    log "growing ${MUTATE_PCT}% of files by ${GROW_KIB} KiB"
    meta "mutation" "$(nice -n 10 python3 "$BENCH_DIR/gen_files.py" --mutate "$MUTATE_PCT" --grow "$GROW_KIB" --seed "$SEED" "$DATA")"
    for t in "${TOOLS[@]}"; do step_backup "$t" 3 "backup 3 (${MUTATE_PCT}% grew ${GROW_KIB} KiB)"; done
    for t in "${TOOLS[@]}"; do step_restore "$t"; done
    for t in "${TOOLS[@]}"; do step_verify "$t"; done
    meta "load" "$(uptime | sed 's/.*load average/load average/') at end"

    local suffix=""; [[ $S3 == yes ]] && suffix=-s3
    render_report files "$RESULTS_DIR/files$suffix-$RUN_STAMP.md"
}

main
