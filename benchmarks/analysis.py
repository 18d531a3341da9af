"""Full incident analysis against one full-scan aggregate over otel_traces, same store, same run.

The store is the committed sample data replicated with shifted ids (and times
shifted by microseconds): the same incidents at many times the traffic, up to
--spans spans (default 10 million). Prints what ran, on which machine, both
timings and the ratio (target: at most 5x).

Then (unless --no-chdb) the same store is copied into chDB under the
OpenTelemetry Collector ClickHouse exporter's DDL and the same analysis runs
there: chDB against DuckDB on the same data, and whether the answers agree.

Example: .venv/bin/python benchmarks/analysis.py --spans 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import duckdb

import faultlens.analyzer as fa
from faultlens.analyzer.facts._stored import store_facts

DATA = Path(__file__).resolve().parents[1] / "sample_traces" / "data"
BASELINE_SQL = """
    SELECT ServiceName, count(*) AS spans, sum(Duration) AS total_ns,
           quantile_cont(Duration, 0.95) AS p95_ns,
           sum(CASE WHEN StatusCode IN ('Error', 'STATUS_CODE_ERROR') THEN 1 ELSE 0 END) AS errors
    FROM otel_traces GROUP BY ServiceName"""


def build(db: Path, spans: int) -> tuple[int, int]:
    """Ingest the sample data once, then INSERT ... SELECT shifted copies up to ``spans``."""
    fa.ingest(sorted(DATA.glob("*/*/")), db=db)
    con = duckdb.connect(str(db))
    base = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
    copies = max(1, -(-spans // base))
    con.execute("CREATE TEMP TABLE t0 AS SELECT * FROM otel_traces")
    con.execute("CREATE TEMP TABLE l0 AS SELECT * FROM otel_logs")
    # Copy k rewrites the first 5 hex digits of every trace id and shifts time by k us.
    for table, src, ids in (("otel_traces", "t0", True), ("otel_logs", "l0", False)):
        cols = [r[0] for r in con.execute(f"DESCRIBE {src}").fetchall()]
        shifted = []
        for c in cols:
            q = f'"{c}"'
            if c == "Timestamp":
                shifted.append(f"{q} + to_microseconds(k) AS {q}")
            elif c == "TraceId":
                shifted.append(
                    f"CASE WHEN {q} = '' THEN '' ELSE printf('%05x', k) || {q}[6:] END AS {q}"
                )
            elif c == "RecordId":
                shifted.append(f"{q} || '-' || k AS {q}")
            else:
                shifted.append(q)
        del ids
        con.execute(
            f"INSERT INTO {table} SELECT {', '.join(shifted)} FROM {src}, range(1, {copies}) r(k)"
        )
    total = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
    con.close()
    return total, copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, help="keep the store here (default: a temp dir)")
    parser.add_argument(
        "--no-chdb", action="store_true", help="skip the chDB run of the same analysis"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.duckdb"
        if db.exists():
            db.unlink()
        t = time.perf_counter()
        total, copies = build(db, args.spans)
        built = time.perf_counter() - t
        # What ingest does after writing: derive and store the span facts. The copies
        # bypass ingest, so the same step runs here and is reported apart.
        t = time.perf_counter()
        with duckdb.connect(str(db)) as con:
            store_facts(con)
        facts = time.perf_counter() - t
        print(
            f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, DuckDB {duckdb.__version__}"
        )
        print(
            f"store: {total:,} spans ({copies} copies of the sample data), built in "
            f"{built:.1f} s, {db.stat().st_size / 2**20:.0f} MiB"
        )
        print(
            f"ingest-time span facts (what `faultlens ingest` stores after writing): {facts:.1f} s"
        )
        con = duckdb.connect(str(db), read_only=True)
        t = time.perf_counter()
        con.execute(BASELINE_SQL).fetchall()
        scan = time.perf_counter() - t
        con.close()
        t = time.perf_counter()
        a = fa.open(db)
        incidents = a.incidents()
        full = time.perf_counter() - t
        named = sum(1 for i in incidents if i.candidates)
        print(f"baseline: one full-scan aggregate over otel_traces: {scan:.2f} s")
        print(
            f"analysis: detection, ranking both views, FIT replay, blast radius, coupling: "
            f"{full:.2f} s, {len(incidents)} incidents, {named} with a culprit"
        )
        print(f"ratio analysis / full scan: {full / scan:.1f}x (target <= 5x)")
        print(
            f"ratio (ingest-time span facts + analysis) / full scan: {(full + facts) / scan:.1f}x"
        )
        if not args.no_chdb:
            compare_chdb(db, Path(tmp) / "chdb", incidents, full)


def compare_chdb(db: Path, directory: Path, incidents: list, duckdb_s: float) -> None:
    """The same analysis on chDB over the exporter's tables holding the same spans."""
    import chdb

    from faultlens.analyzer.store._clickhouse_ddl import load_from_duckdb
    from faultlens.analyzer.store._engines import open_engine

    t = time.perf_counter()
    with open_engine(f"chdb:{directory}", read_only=False) as engine:
        copied = load_from_duckdb(db, engine)
    loaded = time.perf_counter() - t
    print(
        f"chDB {chdb.__version__}: {copied['otel_traces']:,} spans copied into the exporter's "
        f"otel_traces (model identity resolved in SQL) in {loaded:.1f} s"
    )
    t = time.perf_counter()
    answer = fa.open(f"chdb:{directory}").incidents()
    chdb_s = time.perf_counter() - t
    same = [i.to_dict() for i in answer] == [i.to_dict() for i in incidents]
    print(f"analysis on chDB: {chdb_s:.2f} s, {len(answer)} incidents, same answer: {same}")
    print(f"ratio chDB / DuckDB: {chdb_s / duckdb_s:.1f}x")


if __name__ == "__main__":
    main()
