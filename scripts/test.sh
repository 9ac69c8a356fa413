#!/usr/bin/env bash
# Set up what is missing, then build once (release) and run every test,
# plus formatting and lint checks. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --no-fail-fast -- --test-threads=2
echo "all tests passed"
