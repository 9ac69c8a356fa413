#!/usr/bin/env bash
# The main job on an embedded default: build lifeboat, create a throwaway
# repository, back up a sample directory, change it, back up again, restore
# the first snapshot and show that it matches, then verify the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -q
lb="$PWD/target/release/lifeboat"
work=$(mktemp -d /tmp/lifeboat-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export LIFEBOAT_REPOSITORY="$work/repo"
export LIFEBOAT_PASSWORD_FILE="$work/password"
head -c 24 /dev/urandom | base64 > "$LIFEBOAT_PASSWORD_FILE"

step() { printf '\n== %s\n' "$*"; }

step "sample data"
mkdir -p "$work/app/config" "$work/app/migrations" "$work/app/empty"
for i in $(seq 1 20); do printf -- '-- migration %d\ncreate table t%d (id int);\n' "$i" "$i" > "$work/app/migrations/$(printf %03d "$i")_init.sql"; done
printf 'APP_NAME=demo\nSTRIPE_SECRET_KEY=sk_live_do_not_store\n' > "$work/app/.env"
printf '[server]\nport = 8080\n' > "$work/app/config/app.toml"
ln -s config/app.toml "$work/app/current.toml"
head -c 5000000 /dev/urandom > "$work/app/blob.bin"
du -sh "$work/app"

step "lifeboat init"
"$lb" init
step "lifeboat backup (first)"
"$lb" backup "$work/app"
step "lifeboat backup (unchanged: nothing new is stored)"
"$lb" backup "$work/app"
echo "more" >> "$work/app/config/app.toml"
step "lifeboat backup (one file changed)"
"$lb" backup "$work/app"
step "lifeboat snapshots"
"$lb" snapshots
first=$("$lb" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
sed -i '$d' "$work/app/config/app.toml"
step "lifeboat restore ${first:0:8} --to $work/restored"
"$lb" restore "$first" --to "$work/restored"
step "compare restored tree with the original (.env secrets are redacted by design)"
diff -r --exclude=.env "$work/app" "$work/restored/app" && echo "identical (content)"
cat "$work/restored/app/.env"
step "lifeboat verify --read-data"
"$lb" verify --read-data
