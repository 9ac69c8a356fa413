#!/usr/bin/env python3
"""Deterministic COPY-format row generator for the PostgreSQL benchmark.

    gen_pg.py --size-gb 2 --seed 1 --schema          # print CREATE TABLE statements
    gen_pg.py --size-gb 2 --seed 1 --indexes         # print CREATE INDEX statements
    gen_pg.py --size-gb 2 --seed 1 TABLE             # COPY text rows for TABLE on stdout

Tables and their share of the target pg_database_size (indexes included):
  events   ~40%  jsonb payload + short notes        (compressible, ~4x)
  metrics  ~20%  numeric time series                 (medium entropy)
  users    ~10%  names, emails, free-text bios       (compressible)
  blobs    ~25%  bytea of random bytes               (incompressible)
Bytes-per-row constants were calibrated on PostgreSQL 15 (see bench/README.md).
Python stdlib only; output is byte-identical for a given seed and size.
"""
import argparse
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_files import CITIES, FIRST, LAST, PATHS, WORDS  # noqa: E402

GIB = 1024 ** 3

# table: (share of target size, on-disk bytes per row incl. indexes, calibrated)
TABLES = {
    "users":   (0.10, 380),
    "events":  (0.40, 440),
    "metrics": (0.20, 150),
    "blobs":   (0.25, 28_500),
}

SCHEMA = """
CREATE TABLE users (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    country     char(2) NOT NULL,
    plan        text NOT NULL,
    created_at  timestamptz NOT NULL,
    bio         text
);
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    ts          timestamptz NOT NULL,
    user_id     integer NOT NULL,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    note        text
);
CREATE TABLE metrics (
    ts          timestamptz NOT NULL,
    host        text NOT NULL,
    cpu         float8 NOT NULL,
    mem         bigint NOT NULL,
    disk_read   bigint NOT NULL,
    disk_write  bigint NOT NULL,
    net_in      bigint NOT NULL,
    net_out     bigint NOT NULL,
    load1       real NOT NULL
);
CREATE TABLE blobs (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    mime        text NOT NULL,
    created_at  timestamptz NOT NULL,
    data        bytea NOT NULL
);
"""
# primary keys are created with the tables; these come after the load
INDEXES = """
CREATE UNIQUE INDEX users_email_idx ON users (email);
CREATE INDEX events_user_ts_idx ON events (user_id, ts);
CREATE INDEX metrics_host_ts_idx ON metrics (host, ts);
ALTER TABLE events ADD CONSTRAINT events_user_fk FOREIGN KEY (user_id) REFERENCES users (id);
"""

KINDS = ["page_view", "click", "login", "logout", "signup", "purchase", "search",
         "api_call", "upload", "download", "error", "settings_change"]
PLANS = ["free"] * 6 + ["pro"] * 3 + ["team", "enterprise"]
COUNTRIES = ["DE", "FR", "PT", "ES", "PL", "CZ", "AT", "NO", "JP", "NG", "KE", "US", "CA", "PE",
             "CL", "IN", "AU", "BR", "GB", "IT"]
UAS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
       "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Safari/605.1.15",
       "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0",
       "curl/8.5.0", "python-requests/2.31.0", "okhttp/4.12.0"]
MIMES = ["image/jpeg", "image/png", "application/pdf", "application/zip", "application/octet-stream"]
HOSTS = [f"{r}-{k}-{i:02d}" for r in ("eu", "us", "ap") for k in ("web", "db", "worker") for i in range(6)]
T0 = 1_704_067_200  # 2024-01-01


def ts(sec, frac=None):
    d, s = divmod(int(sec) - T0, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    y, d = divmod(d, 336)
    base = f"{2024 + y}-{1 + d // 28:02d}-{1 + d % 28:02d} {h:02d}:{m:02d}:{s:02d}"
    return base + (f".{frac:06d}+00" if frac is not None else "+00")


def rows_for(table, size_gb):
    share, per_row = TABLES[table]
    return max(10, int(size_gb * GIB * share / per_row))


def n_users(size_gb):
    return rows_for("users", size_gb)


def gen_users(rng, n, size_gb):
    w = sys.stdout.write
    for i in range(1, n + 1):
        fi, la = rng.choice(FIRST), rng.choice(LAST)
        bio = " ".join(rng.choices(WORDS, k=rng.randint(15, 70)))
        w(f"{i}\t{fi.title()} {la.title()}\t{fi}.{la}.{i}@{rng.choice(['example.com', 'mail.test', 'corp.example'])}\t"
          f"{rng.choice(COUNTRIES)}\t{rng.choice(PLANS)}\t{ts(T0 - rng.getrandbits(26))}\t"
          f"{bio if rng.random() < 0.85 else chr(92) + 'N'}\n")


def gen_events(rng, n, size_gb):
    w = sys.stdout.write
    users = n_users(size_gb)
    t = T0 * 1000
    for i in range(1, n + 1):
        t += rng.getrandbits(7)
        kind = rng.choice(KINDS)
        payload = (f'{{"ip": "10.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}", '
                   f'"ua": "{rng.choice(UAS)}", "path": "{rng.choice(PATHS)}/{rng.getrandbits(16)}", '
                   f'"status": {rng.choice((200, 200, 200, 201, 204, 302, 400, 404, 500))}, '
                   f'"ms": {rng.getrandbits(10) / 10}, "session": "{rng.randbytes(8).hex()}", '
                   f'"tags": ["{rng.choice(WORDS)}", "{rng.choice(WORDS)}"], '
                   f'"props": {{"city": "{rng.choice(CITIES)}", "plan": "{rng.choice(PLANS)}", '
                   f'"ref": "{rng.choice(WORDS)}-{rng.getrandbits(12)}"}}}}')
        note = " ".join(rng.choices(WORDS, k=rng.randint(2, 14))) if rng.random() < 0.6 else "\\N"
        w(f"{i}\t{ts(t // 1000, (t % 1000) * 1000)}\t{1 + rng.randrange(users)}\t{kind}\t{payload}\t{note}\n")


def gen_metrics(rng, n, size_gb):
    w = sys.stdout.write
    state = {h: [rng.random() * 50, rng.getrandbits(33), 0, 0, 0, 0] for h in HOSTS}
    t = T0
    for i in range(n):
        host = HOSTS[i % len(HOSTS)]
        if i % len(HOSTS) == 0:
            t += 10
        s = state[host]
        s[0] = min(100.0, max(0.0, s[0] + rng.uniform(-3, 3)))
        s[1] += rng.getrandbits(20) - (1 << 19)
        s[2] += rng.getrandbits(16)
        s[3] += rng.getrandbits(17)
        s[4] += rng.getrandbits(18)
        s[5] += rng.getrandbits(18)
        w(f"{ts(t)}\t{host}\t{s[0]:.3f}\t{s[1]}\t{s[2]}\t{s[3]}\t{s[4]}\t{s[5]}\t{s[0] / 25:.2f}\n")


def gen_blobs(rng, n, size_gb):
    w = sys.stdout.write
    for i in range(1, n + 1):
        size = int(min(1 << 20, max(1024, rng.lognormvariate(math.log(16 * 1024), 1.0))))
        w(f"{i}\tfile_{i}.bin\t{rng.choice(MIMES)}\t{ts(T0 + i * 37)}\t\\\\x{rng.randbytes(size).hex()}\n")


GEN = {"users": gen_users, "events": gen_events, "metrics": gen_metrics, "blobs": gen_blobs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", nargs="?", choices=list(GEN))
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--schema", action="store_true")
    ap.add_argument("--indexes", action="store_true")
    ap.add_argument("--rows", action="store_true", help="print the row count of TABLE")
    a = ap.parse_args()
    if a.schema:
        print(SCHEMA)
    elif a.indexes:
        print(INDEXES)
    elif a.rows:
        print(rows_for(a.table, a.size_gb))
    else:
        GEN[a.table](random.Random(f"{a.seed}/{a.table}"), rows_for(a.table, a.size_gb), a.size_gb)


if __name__ == "__main__":
    main()
