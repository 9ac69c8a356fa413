#!/usr/bin/env python3
"""Deterministic generator of a realistic file tree for backup benchmarks.

    gen_files.py --size-gb 2 --seed 1 OUT_DIR          # create a tree
    gen_files.py --mutate 5 --seed 1 OUT_DIR           # change ~5% of its files
    gen_files.py --mutate 5 --grow 4 --seed 1 DIR      # append 4 KiB to ~5% of the files

Byte mix (approximate):
  ~50% text       logs, source code, CSV, JSON        (compresses 3-6x)
  ~25% binary     packed numeric records, sqlite-like pages (compresses 2-4x)
  ~25% compressed random bytes standing in for jpeg/zip/mp4, real gzip logs
File sizes follow per-kind log-normal distributions (many small files, some
large ones up to ~200 MB), in a nested tree with a few empty dirs and symlinks.

Every file gets its own RNG seeded from (seed, kind, index), so the output is
byte-identical across runs and Python versions >= 3.9.  Python stdlib only.
"""
import argparse
import itertools
import math
import os
import random
import struct
import sys
import time
import zlib
from array import array

KB = 1024
MB = 1024 * 1024

# ---------------------------------------------------------------- vocabulary
WORDS = (
    "the of and to in is for on that with as by at from this be are it or an was "
    "which not have has can will all one more new data user file server request "
    "backup restore table index query error value time system service process "
    "config update delete insert select create check status report network disk "
    "memory cache node cluster primary replica shard lock commit transaction "
    "session token account project invoice order payment customer product price "
    "stock region country city street address email phone name first last date "
    "build test deploy release version branch merge review issue ticket alert "
    "metric latency throughput timeout retry failure success warning notice "
    "debug trace span worker queue job task schedule cron daily weekly monthly"
).split()
FIRST = ("anna ben carla dmitri elena farid grace hiro ines jonas kofi lena "
         "marco nadia oskar priya quinn rosa sven tara umar vera wei xenia yusuf zoe").split()
LAST = ("smith garcia muller rossi kim nguyen silva kowalski ivanov tanaka "
        "okafor jensen dubois novak haddad larsen costa berg sato moreau").split()
CITIES = ("Berlin Paris Lisbon Madrid Warsaw Prague Vienna Oslo Tokyo Osaka Lagos "
          "Nairobi Austin Denver Toronto Lima Santiago Mumbai Pune Sydney").split()
APPS = "nginx postgres api worker scheduler auth billing gateway".split()
MODULES = ("http db cache auth queue storage metrics scheduler mailer "
           "search billing sync").split()
LEVELS = ["INFO", "DEBUG", "WARN", "ERROR", "TRACE"]
LEVEL_W = [60, 25, 8, 2, 5]
MSGS = [
    "request completed", "cache miss for key", "connection established",
    "retrying after timeout", "user authenticated", "payload validated",
    "slow query detected", "job enqueued", "job finished", "flushing buffers",
    "checkpoint starting", "checkpoint complete", "rate limit exceeded",
    "upstream returned 502", "config reloaded", "session expired",
    "failed to parse header", "acquired advisory lock", "rotating log file",
    "health check ok",
]
PATHS = ["/api/v1/users", "/api/v1/orders", "/api/v1/projects", "/login",
         "/static/app.js", "/api/v2/search", "/healthz", "/api/v1/invoices",
         "/metrics", "/api/v1/files/upload"]
STATUS = ["ok", "pending", "failed", "refunded", "shipped", "cancelled"]
HTTP = [200] * 30 + [201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502]

SRC_EXT = ["py", "rs", "c", "go", "ts", "java"]


def words(rng, k):
    return " ".join(rng.choices(WORDS, k=k))


def finish(parts, n):
    b = "".join(parts).encode()
    return b[:n]


# ---------------------------------------------------------------- text kinds
def gen_log(rng, n, t0=None):
    """Application log lines with timestamps, levels, ids and latencies."""
    t = t0 if t0 is not None else 1_704_067_200_000 + rng.getrandbits(34)  # ms
    app = rng.choice(APPS)
    parts, size = [], 0
    while size < n:
        B = 512
        lv = rng.choices(LEVELS, LEVEL_W, k=B)
        md = rng.choices(MODULES, k=B)
        ms = rng.choices(MSGS, k=B)
        pa = rng.choices(PATHS, k=B)
        hc = rng.choices(HTTP, k=B)
        rid = rng.randbytes(6 * B).hex()
        for i in range(B):
            t += rng.getrandbits(9)
            s, msec = divmod(t, 1000)
            d, s = divmod(s, 86400)
            h, s = divmod(s, 3600)
            m, s = divmod(s, 60)
            line = (f"2024-{1 + d // 28 % 12:02d}-{1 + d % 28:02d}T{h:02d}:{m:02d}:{s:02d}.{msec:03d}Z "
                    f"{lv[i]:5} {app}[{md[i]}] {ms[i]} method=GET path={pa[i]}/{rng.getrandbits(14)} "
                    f"status={hc[i]} dur_ms={rng.getrandbits(8) / 7:.2f} req={rid[12 * i:12 * i + 12]} "
                    f"user={rng.getrandbits(16)}\n")
            parts.append(line)
            size += len(line)
    return finish(parts, n)


SRC_TEMPLATES = [
    "{i}let {a} = {b}.{c}({d}, {n});\n",
    "{i}if {a} > {n} {{\n{i}    return Err(Error::{C}(\"{w}\"));\n{i}}}\n",
    "{i}for {a} in {b}.iter() {{\n{i}    {c}.push({a} * {n});\n{i}}}\n",
    "{i}// {w}\n",
    "{i}{a}.{c}(&{b})?;\n",
    "{i}match {a} {{\n{i}    {C}::{D} => {n},\n{i}    _ => {b}.len(),\n{i}}}\n",
    "{i}self.{a} = {b}.clone();\n",
    "{i}log::debug!(\"{w} {{}}\", {a});\n",
]


def gen_source(rng, n):
    """Code-like text: identifiers repeat within a file, keywords across files."""
    ident = [f"{rng.choice(WORDS)}_{rng.choice(WORDS)}" for _ in range(40)]
    types = [w.capitalize() + rng.choice(WORDS).capitalize() for w in rng.choices(WORDS, k=12)]
    parts = [f"// Copyright 2024 {rng.choice(FIRST).title()} {rng.choice(LAST).title()}\n"
             f"// SPDX-License-Identifier: Apache-2.0\n\nuse crate::{rng.choice(MODULES)}::{{{types[0]}, {types[1]}}};\n\n"]
    size = len(parts[0])
    while size < n:
        fn = (f"/// {words(rng, rng.randint(4, 14))}.\npub fn {rng.choice(ident)}("
              f"{rng.choice(ident)}: &{rng.choice(types)}, {rng.choice(ident)}: usize) -> Result<{rng.choice(types)}> {{\n")
        body = [fn]
        for _ in range(rng.randint(3, 18)):
            tpl = SRC_TEMPLATES[rng.getrandbits(3)]
            body.append(tpl.format(i="    " * rng.randint(1, 2), a=rng.choice(ident), b=rng.choice(ident),
                                   c=rng.choice(ident), d=rng.choice(ident), n=rng.getrandbits(10),
                                   C=rng.choice(types), D=rng.choice(types), w=words(rng, rng.randint(2, 8))))
        body.append("    Ok(Default::default())\n}\n\n")
        s = "".join(body)
        parts.append(s)
        size += len(s)
    return finish(parts, n)


def gen_csv(rng, n):
    parts = ["id,created_at,first_name,last_name,email,city,amount,currency,status,note\n"]
    size, i = len(parts[0]), rng.getrandbits(20)
    while size < n:
        B = 256
        fi = rng.choices(FIRST, k=B)
        la = rng.choices(LAST, k=B)
        ci = rng.choices(CITIES, k=B)
        st = rng.choices(STATUS, k=B)
        for j in range(B):
            i += 1
            line = (f"{i},2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i * 7 % 60:02d}:{i * 13 % 60:02d},"
                    f"{fi[j]},{la[j]},{fi[j]}.{la[j]}{rng.getrandbits(10)}@example.com,{ci[j]},"
                    f"{rng.getrandbits(20) / 100:.2f},EUR,{st[j]},{words(rng, rng.getrandbits(3))}\n")
            parts.append(line)
            size += len(line)
    return finish(parts, n)


def gen_json(rng, n):
    """Pretty-printed API cache documents."""
    parts, size = ["[\n"], 2
    while size < n:
        uid = rng.getrandbits(24)
        obj = (f'  {{\n    "id": {uid},\n    "name": "{rng.choice(FIRST)} {rng.choice(LAST)}",\n'
               f'    "email": "{rng.choice(FIRST)}{uid}@example.org",\n'
               f'    "city": "{rng.choice(CITIES)}",\n    "active": {"true" if rng.random() < .8 else "false"},\n'
               f'    "score": {rng.random() * 100:.4f},\n    "tags": ["{rng.choice(WORDS)}", "{rng.choice(WORDS)}"],\n'
               f'    "token": "{rng.randbytes(8).hex()}",\n'
               f'    "bio": "{words(rng, rng.randint(5, 30))}"\n  }},\n')
        parts.append(obj)
        size += len(obj)
    parts.append("]\n")
    return finish(parts, n)


# -------------------------------------------------------------- binary kinds
def small_values(rng, count, bits):
    """`count` bytes, each uniformly in [0, 2**bits) -- low-entropy bytes, fast."""
    mask = (1 << bits) - 1
    table = bytes(i & mask for i in range(256))
    return rng.randbytes(count).translate(table)


def gen_records(rng, n):
    """32-byte time-series records, column values with realistic patterns:
    u32 id (sequential), u32 ts (monotone, small deltas), f64 value (random walk),
    u16 sensor (few values), u16 flags (mostly 0), u32 counter (slowly growing),
    8 bytes of low-entropy status/padding."""
    R = 32
    cnt = n // R + 1
    out = bytearray(cnt * R)
    start = rng.getrandbits(24)
    ids = array("I", range(start, start + cnt)).tobytes()
    deltas = small_values(rng, cnt, 4)
    ts = array("I", itertools.accumulate(deltas, initial=1_700_000_000))[1:].tobytes()
    steps = small_values(rng, cnt, 5)
    walk = itertools.accumulate((b - 16 for b in steps), initial=rng.getrandbits(12))
    vals = array("d", (w * 0.125 for w in itertools.islice(walk, 1, None))).tobytes()
    sensor = array("H", iter(small_values(rng, cnt, 3))).tobytes()
    flags = array("H", (0 if b else 1 for b in small_values(rng, cnt, 6))).tobytes()
    ctr = array("I", itertools.accumulate(small_values(rng, cnt, 2))).tobytes()
    pad = small_values(rng, cnt * 8, 1)
    for col, off, width in ((ids, 0, 4), (ts, 4, 4), (vals, 8, 8), (sensor, 16, 2),
                            (flags, 18, 2), (ctr, 20, 4), (pad, 24, 8)):
        for k in range(width):
            out[off + k::R] = col[k::width]
    return bytes(out[:n])


def gen_sqlite(rng, n):
    """sqlite-like 4 KiB pages: header, cell pointers, text/int cells packed at
    the end of the page, zero free space in the middle (fill 40-95%)."""
    P = 4096
    pages = []
    header = b"SQLite format 3\x00" + struct.pack(">HBBBBBBII", P, 1, 1, 0, 64, 32, 32, 1, n // P)
    text = gen_csv(rng, min(n, 8 * MB))  # row material for cells
    pos = rng.randrange(len(text)) if text else 0
    for pno in range(max(1, n // P)):
        fill = rng.randint(40, 95) * P // 100
        cells, used = [], 0
        while used < fill - 200:
            ln = rng.randint(40, 180)
            if pos + ln > len(text):
                pos = 0
            row = text[pos:pos + ln]
            pos += ln
            cell = struct.pack(">HI", len(row) + 4, pno * 64 + len(cells)) + row
            cells.append(cell)
            used += len(cell) + 2
        body = b"".join(reversed(cells))
        ptrs = b"".join(struct.pack(">H", P - 1 - i) for i in range(len(cells)))
        hdr = struct.pack(">BHHHB", 0x0D, 0, len(cells), P - len(body), 0)
        if pno == 0:
            hdr = header + hdr
        page = hdr + ptrs
        page = page + bytes(P - len(page) - len(body)) + body
        pages.append(page[:P])
    return b"".join(pages)[:n]


# ---------------------------------------------------------- compressed kinds
MAGIC = {"jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
         "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
         "mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"}


def gen_random(ext):
    def g(rng, n):
        m = MAGIC[ext]
        return (m + rng.randbytes(max(0, n - len(m))))[:n]
    return g


def gen_gzip(rng, n):
    """A real gzip'd log file of about n bytes (log text compresses ~4x at level 1)."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    out, size = [], 0
    t = 1_704_067_200_000 + rng.getrandbits(34)
    while size < n:
        chunk = gen_log(rng, 1 * MB, t)
        t += 1000 * 3600
        c = comp.compress(chunk)
        out.append(c)
        size += len(c)
    out.append(comp.flush())
    return b"".join(out)


# -------------------------------------------------------------- the catalog
# kind: (category, share of total bytes, generator, median size, sigma, min, max)
KINDS = {
    "log":    ("text", 0.20, gen_log, 256 * KB, 1.6, 1 * KB, 64 * MB),
    "source": ("text", 0.08, gen_source, 8 * KB, 1.0, 300, 400 * KB),
    "csv":    ("text", 0.12, gen_csv, 64 * KB, 1.8, 1 * KB, 64 * MB),
    "json":   ("text", 0.10, gen_json, 12 * KB, 1.2, 200, 4 * MB),
    "rec":    ("binary", 0.12, gen_records, 1 * MB, 1.5, 4 * KB, 100 * MB),
    "sqlite": ("binary", 0.13, gen_sqlite, 512 * KB, 1.8, 8 * KB, 200 * MB),
    "jpg":    ("compressed", 0.08, gen_random("jpg"), 2500 * KB, 0.5, 30 * KB, 20 * MB),
    "zip":    ("compressed", 0.06, gen_random("zip"), 4 * MB, 1.5, 2 * KB, 200 * MB),
    "mp4":    ("compressed", 0.07, gen_random("mp4"), 30 * MB, 0.8, 1 * MB, 200 * MB),
    "gz":     ("compressed", 0.04, gen_gzip, 200 * KB, 1.2, 1 * KB, 32 * MB),
}
# one big file per category, sized 8% of the total (capped at 200 MB)
BIG = {"log": "var/log/archive/app-2023.log", "sqlite": "srv/db/warehouse.sqlite",
       "mp4": "srv/media/video/allhands-recording.mp4"}


_r = random.Random("srcdirs")
SRC_DIRS = ["."] + sorted({"/".join(_r.choices(MODULES, k=_r.randint(1, 3))) for _ in range(30)})


def path_for(kind, i, rng):
    u = rng.choice(["anna", "ben", "dev", "ops"])
    if kind == "log":
        a = rng.choice(APPS)
        return f"var/log/{a}/{a}-2024-{1 + i % 12:02d}-{1 + i % 28:02d}-{i}.log"
    if kind == "source":
        proj = ["lifeline", "atlas", "orbit", "kestrel", "tundra"][i % 5]
        # deep trees: up to six nested module levels below the source dirs
        deep = "/".join(f"m{(i >> k) % 3}" for k in range(0, 2 * (i % 7), 2))
        return os.path.normpath("/".join(["home/dev/projects", proj, "src", rng.choice(SRC_DIRS), deep,
                                          f"{rng.choice(WORDS)}_{i}.{rng.choice(SRC_EXT)}"]))
    if kind == "csv":
        return f"srv/data/exports/{2020 + i % 5}/{1 + i % 12:02d}/export_{i}.csv"
    if kind == "json":
        # one wide directory (thousands of entries), like a mail or cache spool
        return f"srv/data/api-cache/{i:07d}.json"
    if kind == "rec":
        return f"srv/data/timeseries/sensor-{i % 17}/segment-{i:06d}.bin"
    if kind == "sqlite":
        return f"home/{u}/.local/share/{rng.choice(APPS)}/store-{i}.db"
    if kind == "jpg":
        return f"home/{u}/Pictures/{2018 + i % 7}/{1 + i % 12:02d}/IMG_{4000 + i}.jpg"
    if kind == "zip":
        return f"home/{u}/Downloads/{rng.choice(WORDS)}-{i}.zip"
    if kind == "mp4":
        return f"srv/media/video/clip-{i}.mp4"
    if kind == "gz":
        a = rng.choice(APPS)
        return f"var/log/{a}/archive/{a}-{i}.log.gz"
    raise ValueError(kind)


def plan(total, seed):
    """List of (relpath, kind, size, file_seed), deterministic."""
    files = []
    for kind, (_cat, share, _g, median, sigma, lo, hi) in KINDS.items():
        budget = int(total * share)
        if kind in BIG:
            big = min(200 * MB, int(total * 0.08), budget)
            files.append((BIG[kind], kind, big, f"{seed}/{kind}/big"))
            budget -= big
        rng = random.Random(f"{seed}/{kind}/plan")
        i = 0
        while budget > lo:
            size = int(min(hi, max(lo, rng.lognormvariate(math.log(median), sigma))))
            size = min(size, budget)
            files.append((path_for(kind, i, rng), kind, size, f"{seed}/{kind}/{i}"))
            budget -= size
            i += 1
    return files


def write_file(out, rel, kind, size, fseed):
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = KINDS[kind][2](random.Random(fseed), size)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def extras(out, files):
    """A few empty directories and relative symlinks (never dangling)."""
    for d in ["home/dev/projects/atlas/target", "srv/data/tmp", "var/spool/empty",
              "home/ops/.cache/empty/nested"]:
        os.makedirs(os.path.join(out, d), exist_ok=True)
    by_kind = {}
    for rel, kind, _s, _f in files:
        by_kind.setdefault(kind, rel)
    links = [("home/dev/current", "home/dev/projects/atlas")]
    for kind, name in (("log", "var/log/latest.log"), ("csv", "srv/data/latest.csv"),
                       ("jpg", "home/anna/wallpaper.jpg")):
        if kind in by_kind:
            links.append((name, by_kind[kind]))
    for link, target in links:
        lp = os.path.join(out, link)
        tp = os.path.join(out, target)
        os.makedirs(os.path.dirname(lp), exist_ok=True)
        os.makedirs(tp, exist_ok=True) if link == "home/dev/current" else None
        if not os.path.lexists(lp):
            os.symlink(os.path.relpath(tp, os.path.dirname(lp)), lp)


def generate(out, size_gb, seed):
    if os.path.exists(out) and os.listdir(out):
        sys.exit(f"gen_files: {out} exists and is not empty")
    files = plan(int(size_gb * 1024 ** 3), seed)
    t0, written = time.time(), 0
    for n, (rel, kind, size, fseed) in enumerate(files, 1):
        written += write_file(out, rel, kind, size, fseed)
        if n % 2000 == 0:
            print(f"  {n}/{len(files)} files, {written / MB:.0f} MiB", file=sys.stderr)
    extras(out, files)
    cats = {}
    for _rel, kind, size, _f in files:
        cats[KINDS[kind][0]] = cats.get(KINDS[kind][0], 0) + size
    mix = ", ".join(f"{c} {v / written:.0%}" for c, v in sorted(cats.items()))
    print(f"generated {len(files)} files, {written / MB:.0f} MiB ({mix}) in {time.time() - t0:.1f}s")


# -------------------------------------------------------------------- mutate
TEXT_EXT = {"log": gen_log, "csv": gen_csv, "json": gen_json,
            **{e: gen_source for e in SRC_EXT}}


def mutate_one(path, rng):
    ext = path.rsplit(".", 1)[-1]
    size = os.path.getsize(path)
    if ext in ("log", "csv"):                       # append new lines
        add = max(200, min(4 * MB, size // 10))
        with open(path, "ab") as f:
            f.write(TEXT_EXT[ext](rng, add))
        return "append", add
    if ext in TEXT_EXT:                             # edit in the middle (shifts content)
        with open(path, "rb") as f:
            data = f.read()
        cut = rng.randrange(len(data) + 1)
        old = rng.randint(0, max(1, len(data) // 20))
        new = TEXT_EXT[ext](rng, rng.randint(50, max(100, len(data) // 10)))
        with open(path, "wb") as f:
            f.write(data[:cut] + new + data[cut + old:])
        return "edit", len(new)
    if ext == "gz":                                 # append a gzip member
        with open(path, "ab") as f:
            f.write(gen_gzip(rng, max(1 * KB, size // 10)))
        return "append", size // 10
    if ext in ("bin", "db", "sqlite") or size > 8 * MB:  # rewrite pages in place
        pages = max(1, size // 4096)
        k = max(1, pages // rng.randint(20, 100))
        gen = gen_records if ext == "bin" else gen_sqlite if ext in ("db", "sqlite") else None
        with open(path, "r+b") as f:
            for p in sorted(rng.sample(range(pages), min(k, pages))):
                f.seek(p * 4096)
                f.write(gen(rng, 4096) if gen else rng.randbytes(4096))
        return "pages", k * 4096
    with open(path, "wb") as f:                     # small media: replaced entirely
        f.write(gen_random(ext)(rng, size) if ext in MAGIC else rng.randbytes(size))
    return "rewrite", size


def grow(out, pct, kib, seed):
    """Append KIB KiB of random bytes to ~PCT% of the files (any tree, e.g. a --corpus copy)."""
    files = []
    for root, dirs, names in os.walk(out):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    rng = random.Random(f"{seed}/grow/{pct}")
    k = max(1, round(len(files) * pct / 100))
    for p in sorted(rng.sample(files, k)):
        with open(p, "ab") as f:
            f.write(random.Random(f"{seed}/grow/{os.path.relpath(p, out)}").randbytes(kib * KB))
    print(f"grew {k}/{len(files)} files by {kib} KiB each")


def mutate(out, pct, seed):
    files = []
    for root, dirs, names in os.walk(out):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    rng = random.Random(f"{seed}/mutate/{pct}")
    k = max(1, round(len(files) * pct / 100))
    stats, changed = {}, 0
    for p in sorted(rng.sample(files, k)):
        how, nbytes = mutate_one(p, random.Random(f"{seed}/mutate/{os.path.relpath(p, out)}"))
        stats[how] = stats.get(how, 0) + 1
        changed += nbytes
    print(f"mutated {k}/{len(files)} files ({', '.join(f'{v} {h}' for h, v in sorted(stats.items()))}), "
          f"~{changed / MB:.1f} MiB new content")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutate", type=float, metavar="PCT", help="change ~PCT%% of the files of an existing tree")
    ap.add_argument("--grow", type=int, metavar="KIB", help="with --mutate: append KIB KiB to each chosen file instead")
    a = ap.parse_args()
    if a.mutate is not None and a.grow:
        grow(a.out, a.mutate, a.grow, a.seed)
    elif a.mutate is not None:
        mutate(a.out, a.mutate, a.seed)
    else:
        generate(a.out, a.size_gb, a.seed)


if __name__ == "__main__":
    main()
