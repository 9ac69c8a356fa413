#!/usr/bin/env bash
# Install what lifeboat's build, demo and tests need, when missing.
# Idempotent; safe to run on every invocation. Needs root for apt-get.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

# PostgreSQL server and client tools (tests start throwaway clusters).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then need_apt+=(postgresql postgresql-contrib); fi
have psql || need_apt+=(postgresql-client)
have runuser || need_apt+=(util-linux)
# A real PgBouncer for the transaction-pooler tests.
have pgbouncer || [ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
[ -x /usr/bin/time ] || need_apt+=(time)
# ClickHouse server and client (Debian's 18.16; tests start private servers).
[ -x /usr/sbin/clickhouse-server ] || [ -x /usr/bin/clickhouse-server ] || need_apt+=(clickhouse-server)
have clickhouse-client || need_apt+=(clickhouse-client)
have cc || need_apt+=(build-essential)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# A local S3 server for the S3 backend tests (tests start it themselves).
if ! have moto_server; then
  have pip3 || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; }
  echo "setup: installing moto[server]" >&2
  pip3 install -q 'moto[server]' 2>/dev/null || pip3 install -q --break-system-packages 'moto[server]'
fi

if ! have cargo; then
  echo "setup: cargo is missing; install Rust (https://rustup.rs) and run again" >&2
  exit 1
fi
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
