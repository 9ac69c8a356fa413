#!/usr/bin/env bash
# Mutation testing with cargo-mutants: each mutant is a small change to the
# product code (an operator flipped, a function body replaced by a default);
# a mutant the tests do not notice ("missed") is a hole in the suite.
# Outside CI only: on 2 cores a whole crate takes hours. See TESTING.md.
#
#   scripts/mutants.sh                          # repo, storage and engine crates
#   scripts/mutants.sh -c repo                  # one crate (repo|storage|engine)
#   scripts/mutants.sh -c repo -f crates/repo/src/keys.rs -f crates/repo/src/pack.rs
#   scripts/mutants.sh -t 300                   # per-mutant timeout in seconds
#   scripts/mutants.sh -- --list                # extra arguments for cargo mutants
#
# Tests run are the mutated crate's own (unit + integration) tests; the CLI
# end-to-end suite is far too slow to run per mutant. Results go to
# target/mutants/<crate>/mutants.out (caught.txt, missed.txt, timeout.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

crates=()
files=()
timeout=600
while [ $# -gt 0 ]; do
    case "$1" in
        -c|--crate) crates+=("$2"); shift 2 ;;
        -f|--file) files+=("$2"); shift 2 ;;
        -t|--timeout) timeout="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "mutants.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#crates[@]} -gt 0 ] || crates=(repo storage engine)

if ! command -v cargo-mutants >/dev/null; then
    echo "mutants.sh: cargo-mutants is not installed: cargo install --locked cargo-mutants" >&2
    exit 1
fi

for crate in "${crates[@]}"; do
    case "$crate" in
        repo|storage|engine) ;;
        *) echo "mutants.sh: unknown crate $crate (repo, storage or engine)" >&2; exit 2 ;;
    esac
    args=(--package "lifeboat-$crate" --test-package "lifeboat-$crate"
          --profile release --timeout "$timeout" --jobs 1
          --output "target/mutants/$crate")
    for f in "${files[@]}"; do
        case "$f" in crates/"$crate"/*) args+=(--file "$f") ;; esac
    done
    if [ ${#files[@]} -gt 0 ] && [ ${#args[@]} -eq 12 ]; then
        continue # no selected file is in this crate
    fi
    mkdir -p "target/mutants/$crate"
    echo "== cargo mutants ${args[*]} $*"
    cargo mutants "${args[@]}" "$@" || true
    out="target/mutants/$crate/mutants.out"
    for kind in caught missed timeout unviable; do
        n=0
        [ -f "$out/$kind.txt" ] && n=$(wc -l < "$out/$kind.txt")
        printf '%-9s %s\n' "$kind" "$n"
    done
    if [ -s "$out/missed.txt" ]; then
        echo "missed:"; cat "$out/missed.txt"
    fi
done
