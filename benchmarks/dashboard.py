"""Dashboard page render time on a 1-million-span store (budget: 3 s per page).

Builds the store once (under bench-out/): ingests two committed sample runs of
one scenario, then replicates them in SQL with shifted trace IDs and times
(each copy lands a few microseconds after the original, so the run keeps its
incidents and holds N times the traffic) until it holds at least --spans spans.
Then times every page under ``streamlit.testing.v1.AppTest``: cold (caches
cleared, connection opened afresh) and warm (the same session run again), on
the small sample store (the baseline) and on the big one.

    .venv/bin/python benchmarks/dashboard.py [--spans 1000000] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import duckdb

os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")  # AppTest's bare-mode warnings
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from faultlens import analyzer  # noqa: E402
from faultlens.analyzer.facts import _stored as analyzer_facts  # noqa: E402
from faultlens.dashboards import ENTRYPOINT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_traces" / "data"
OUT = ROOT / "bench-out"
RUNS = ("error-burst/monolith", "error-burst/per-model")
PAGES = ("overview", "incident", "contrast", "traces", "logs")
BUDGET_S = 3.0


def build_sample(db: Path) -> None:
    """Ingest the committed sample runs the benchmark reads."""
    partial = db.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    analyzer.ingest([str(SAMPLE / r) for r in RUNS], db=str(partial))
    partial.rename(db)


def replicate(sample: Path, db: Path, *, spans: int) -> tuple[int, int]:
    """Copy ``sample`` to ``db`` and replicate its spans and logs until ``spans`` are held.

    Copy k rewrites the first four hex digits of every trace ID to k and moves
    every timestamp k microseconds later: new requests, same shape of traffic.
    """
    partial = db.with_suffix(".partial")  # renamed when complete: a killed build is redone
    partial.unlink(missing_ok=True)
    shutil.copyfile(sample, partial)
    con = duckdb.connect(str(partial))
    base = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
    copies = -(-spans // base) - 1
    for table in ("otel_traces", "otel_logs"):
        con.execute(f"CREATE TEMP TABLE src_{table} AS SELECT * FROM {table}")
    con.execute(
        """
        INSERT INTO otel_traces
        SELECT s.* REPLACE (
            Timestamp + to_microseconds(k) AS Timestamp,
            printf('%04x', k) || TraceId[5:] AS TraceId,
            list_transform("Events.Timestamp", lambda t: t + to_microseconds(k))
                AS "Events.Timestamp"
        )
        FROM src_otel_traces AS s, range(1, $copies + 1) AS r(k)
        """,
        {"copies": copies},
    )
    con.execute(
        """
        INSERT INTO otel_logs
        SELECT s.* REPLACE (
            Timestamp + to_microseconds(k) AS Timestamp,
            CASE WHEN TraceId = '' THEN '' ELSE printf('%04x', k) || TraceId[5:] END AS TraceId,
            RecordId || '-' || k AS RecordId
        )
        FROM src_otel_logs AS s, range(1, $copies + 1) AS r(k)
        """,
        {"copies": copies},
    )
    n_spans = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
    n_logs = con.execute("SELECT count(*) FROM otel_logs").fetchone()[0]
    con.execute("CHECKPOINT")
    con.close()
    partial.rename(db)
    return n_spans, n_logs


def time_pages(db: Path) -> dict[str, tuple[float, float, float]]:
    """(first open, cold, warm) seconds per page: AppTest runs of the entrypoint and the page.

    first open: every cache cleared, so the analyzer connection opens afresh;
    cold: the connection kept, every result recomputed; warm: all from cache.
    """
    os.environ["FAULTLENS_DB"] = str(db)
    out = {}
    for page in PAGES:
        at = AppTest.from_file(str(ENTRYPOINT), default_timeout=300)
        at.run()  # lands on the default page; switching needs one run
        at.switch_page(f"app_pages/{page}.py")
        times = []
        for clear in (True, False, None):
            if clear is not None:
                st.cache_data.clear()
            if clear:
                st.cache_resource.clear()
            t0 = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t0)
            assert not at.exception, (page, at.exception)
        out[page] = tuple(times)
    return out


def _counts(db: Path) -> tuple[int, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return tuple(
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("otel_traces", "otel_logs")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the stores")
    args = parser.parse_args()

    OUT.mkdir(exist_ok=True)
    sample, big = OUT / "dashboard-sample.duckdb", OUT / f"dashboard-{args.spans}.duckdb"
    if args.rebuild or not sample.exists():
        build_sample(sample)
    built = "reused; --rebuild builds it again"
    if args.rebuild or not big.exists():
        t0 = time.perf_counter()
        replicate(sample, big, spans=args.spans)
        built = f"built in {time.perf_counter() - t0:.1f} s"
    # What ingest does after writing: derive and store the span facts (analyzer/_facts.py).
    # The replicated rows bypass ingest, so the same step runs here, timed apart.
    t0 = time.perf_counter()
    with duckdb.connect(str(big)) as con:
        analyzer_facts.store_facts(con)
    facts_s = time.perf_counter() - t0
    with duckdb.connect(str(sample)) as con:
        analyzer_facts.store_facts(con)
    n_spans, n_logs = _counts(big)
    s_spans, _ = _counts(sample)

    print("benchmark: dashboard page render time (streamlit AppTest, entrypoint + page)")
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus, {platform.system()} "
        f"{platform.release()}, python {platform.python_version()}, duckdb {duckdb.__version__}, "
        f"streamlit {st.__version__}, load average {os.getloadavg()[0]:.1f} at start"
    )
    print(f"runs: {', '.join(RUNS)} (sample_traces/data)")
    print(f"baseline store: {sample.relative_to(ROOT)}: {s_spans:,} spans")
    print(
        f"big store: {big.relative_to(ROOT)}: {n_spans:,} spans, {n_logs:,} log records ({built})"
    )
    print(
        f"ingest-time span facts (as `faultlens ingest` stores them): {facts_s:.2f} s "
        "(0 when the reused store already holds them)"
    )
    base = time_pages(sample)
    heavy = time_pages(big)
    print(
        f"{'page':<10} {'sample cold':>11} | {'first open':>10} {'cold':>7} {'warm':>7}"
        f" | {'cold/sample':>11} {'cold/budget':>11}"
    )
    for page in PAGES:
        (_, b_cold, _), (first, cold, warm) = base[page], heavy[page]
        print(
            f"{page:<10} {b_cold:>10.2f}s | {first:>9.2f}s {cold:>6.2f}s {warm:>6.2f}s"
            f" | {cold / b_cold:>10.1f}x {cold / BUDGET_S:>10.2f}x"
        )
    worst = max(cold for _, cold, _ in heavy.values())
    opened = max(first for first, _, _ in heavy.values())
    verdict = "within" if worst <= BUDGET_S else "OVER"
    print(
        f"slowest page on {n_spans:,} spans: cold {worst:.2f} s ({verdict} the "
        f"{BUDGET_S:.0f} s budget); first open (connection + analysis) {opened:.2f} s"
    )


if __name__ == "__main__":
    main()
