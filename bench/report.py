#!/usr/bin/env python3
"""Render a benchmark run directory (results.tsv + meta.txt) as Markdown.

    report.py files|postgres RUN_DIR
"""
import csv
import sys

MIB = 1024 * 1024


def load(run_dir):
    with open(f"{run_dir}/results.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    meta = []
    with open(f"{run_dir}/meta.txt") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta.append((k, v))
    return rows, meta


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def fmt(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def ok(row):
    return row is not None and row["status"] == "ok"


def ratio(a, b, key, scale=1.0):
    """a/b of a column, or why not."""
    if a is None:
        return "missing"
    if not ok(a):
        return "FAILED"
    if not ok(b):
        return "peer FAILED"
    x, y = num(a[key]), num(b[key])
    if x is None or y is None:
        return "n/a"
    if y == 0:
        return "n/a (÷0)"
    return f"{x / y:.2f}"


def median_row(rows, tool, prefix):
    """The run of `tool` whose step starts with `prefix` with the median wall
    time (any failed run wins: a failure is never hidden by a median)."""
    runs = [r for r in rows if r["tool"] == tool and r["step"].startswith(prefix)]
    if not runs:
        return None
    failed = [r for r in runs if not ok(r)]
    if failed:
        return failed[0]
    runs.sort(key=lambda r: num(r["wall_s"]) or 0)
    return runs[(len(runs) - 1) // 2]


def find(rows, tool, step):
    for r in rows:
        if r["tool"] == tool and r["step"] == step:
            return r
    return None


def header(title, meta):
    out = [f"# {title}", ""]
    for k, v in meta:
        if k == "data_bytes":
            continue
        if k == "command":
            v = f"`{v}`"
        out.append(f"- **{k}**: {v}")
    out.append("")
    return out


def results_table(rows, size_label, data_bytes=None):
    out = ["## Measurements", "",
           f"| step | tool | status | wall s | CPU s | peak RSS MiB | {size_label} | Δ MiB | MiB/s | notes |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    prev_size = {}
    for r in rows:
        size = num(r["size_bytes"])
        wall = num(r["wall_s"])
        rss = num(r["rss_kb"])
        delta = ""
        if size is not None and r["tool"] in prev_size and prev_size[r["tool"]] is not None:
            delta = fmt((size - prev_size[r["tool"]]) / MIB, 1)
        prev_size[r["tool"]] = size
        rate = ""
        nb = data_bytes
        if wall and nb and r["step"].startswith(("backup", "restore", "dump")) and ok(r):
            rate = fmt(nb / MIB / wall, 1)
        out.append(f"| {r['step']} | {r['tool']} | {r['status']} | {r['wall_s']} | {r['cpu_s']} | "
                   f"{fmt(rss / 1024 if rss is not None else None, 1)} | "
                   f"{fmt(size / MIB if size is not None else None, 1)} | {delta} | {rate} | {r['note']} |")
    out.append("")
    return out


def ratio_table(title, pairs):
    out = [f"## {title}", "",
           "Ratio = lifeboat ÷ peer; below 1.00 means lifeboat is faster / leaner / smaller.", "",
           "| comparison | wall | CPU | peak RSS | size |", "|---|---:|---:|---:|---:|"]
    for label, a, b in pairs:
        out.append(f"| {label} | {ratio(a, b, 'wall_s')} | {ratio(a, b, 'cpu_s')} | "
                   f"{ratio(a, b, 'rss_kb')} | {ratio(a, b, 'size_bytes')} |")
    out.append("")
    return out


def render_files(rows, meta):
    m = dict(meta)
    data_bytes = num(m.get("data_bytes"))
    tools = m.get("tools", "lifeboat restic").split()
    steps = []
    for r in rows:
        if r["step"] not in steps:
            steps.append(r["step"])
    out = header("lifeboat files benchmark", meta)
    out += results_table(rows, "repo MiB after", data_bytes)
    pairs = []
    for peer in [t for t in tools if t != "lifeboat"]:
        for s in steps:
            pairs.append((f"{s}: lifeboat / {peer}", find(rows, "lifeboat", s), find(rows, peer, s)))
    out += ratio_table("Ratios", pairs)
    out += ["MiB/s = data size ÷ wall time (for backups 2 and 3 this is the rate of "
            "scanning the whole tree). Repo size excludes the tools' local caches (noted per row). "
            "Peak RSS is the largest single process (kernel ru_maxrss via /usr/bin/time -v), not a sum.", ""]
    return out


def render_postgres(rows, meta):
    m = dict(meta)
    db_bytes = num(m.get("db_bytes"))
    out = header("lifeboat PostgreSQL logical benchmark", meta)
    out += results_table(rows, "output MiB", db_bytes)
    lb1 = find(rows, "lifeboat", "backup 1")
    lb2 = find(rows, "lifeboat", "backup 2 (unchanged)")
    dump = find(rows, "pg_dump -Fc", "dump")
    raw = find(rows, "pg_dump -Fc -Z0 (ref)", "dump")
    pairs = [("backup: lifeboat backup 1 / pg_dump -Fc", lb1, dump),
             ("backup: lifeboat backup 1 / pg_dump -Fc -Z0 >/dev/null", lb1, raw),
             ("restore: lifeboat restore / pg_restore (medians)", median_row(rows, "lifeboat", "restore"),
              median_row(rows, "pg_restore", "restore"))]
    rounds = sorted({r["step"] for r in rows if r["step"].startswith("restore #")})
    for step in rounds:
        pairs.append((f"restore {step[len('restore '):]}: lifeboat / pg_restore",
                      find(rows, "lifeboat", step), find(rows, "pg_restore", step)))
    out += ratio_table("Ratios", pairs)
    growth = "FAILED" if not (ok(lb1) and ok(lb2)) else "n/a"
    if ok(lb1) and ok(lb2) and num(lb1["size_bytes"]):
        s1, s2 = num(lb1["size_bytes"]), num(lb2["size_bytes"])
        growth = f"{(s2 - s1) / s1:.1%} of the first backup ({(s2 - s1) / MIB:.1f} MiB)"
    out += [f"- **Second backup of the unchanged database, repository growth**: {growth} "
            "(a second `pg_dump -Fc` file would add 100%).", "",
            "MiB/s = pg_database_size ÷ wall time. Sizes: dump file for pg_dump, repository (du -sb) "
            "for lifeboat. Peak RSS is the largest single process of the tree (e.g. lifeboat or the "
            "pg_dump it runs), measured by /usr/bin/time -v; the server's memory is not included.", ""]
    return out


def main():
    kind, run_dir = sys.argv[1], sys.argv[2]
    rows, meta = load(run_dir)
    out = render_files(rows, meta) if kind == "files" else render_postgres(rows, meta)
    print("\n".join(out))


if __name__ == "__main__":
    main()
