"""The span facts ingest stores equal the ones an analysis derives from ``otel_traces``,
after ingests that add a run, and after a run whose spans arrive in two files."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest
from otel_spans import collect_process

from faultlens.analyzer import ingest
from faultlens.analyzer._settings import TUNING
from faultlens.analyzer.facts import _stored as _facts
from faultlens.analyzer.facts._cut import cut_run
from faultlens.analyzer.facts._derive import partitions
from faultlens.analyzer.facts._schema import SERIES_BUCKET_NS
from faultlens.analyzer.facts._sql import derive_fact_tables, scope_series_sql, span_buckets_sql
from faultlens.analyzer.store._dialect import DUCKDB

DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"
CRASH = DATA / "crash" / "per-model" / "traces.jsonl.gz"
LATENCY = DATA / "latency" / "monolith" / "traces.jsonl.gz"

pytestmark = pytest.mark.timeout(120)


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    frame = con.execute(sql).df()
    return frame.sort_values(list(frame.columns), ignore_index=True, na_position="first")


def _traces(con: duckdb.DuckDBPyConnection, requests: str, exposure: str) -> list[tuple]:
    """Each trace's requests and exposure without its id (stored facts number the traces):
    equal multisets prove the numbering one-to-one and consistent across both tables."""
    req = con.execute(
        f"""SELECT run, trace_id, list((ts, end_ts, dur, service, endpoint, is_err, layout)
                                       ORDER BY ts, endpoint) FROM {requests} GROUP BY ALL"""
    ).fetchall()
    exp = con.execute(
        f"""SELECT run, trace_id, list((service, model, version) ORDER BY service, model, version)
            FROM {exposure} GROUP BY ALL"""
    ).fetchall()
    by_trace: dict[tuple, list] = {}
    for run, trace, rows in req:
        by_trace.setdefault((run, trace), [None, None])[0] = repr(rows)
    for run, trace, rows in exp:
        by_trace.setdefault((run, trace), [None, None])[1] = repr(rows)
    return sorted((run, *parts) for (run, _), parts in by_trace.items())


def _assert_stored_equal_derived(db: Path) -> None:
    con = duckdb.connect(str(db))
    try:
        runs = con.execute("SELECT run, spans FROM faultlens_facts_runs ORDER BY run").fetchall()
        assert (
            sum(n for _, n in runs) == con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
        )
        derive_fact_tables(con, DUCKDB, run_filter="1 = 1", params={}, by_run=True)
        for temp, sql in (
            ("fl_scope_series", scope_series_sql),
            ("fl_span_buckets", span_buckets_sql),
        ):
            con.execute(DUCKDB.temp_table(temp, sql(DUCKDB, bucket_ns=SERIES_BUCKET_NS)))
        for stored, temp in (
            ("faultlens_spans", "fl_spans"),
            ("faultlens_scope_series", "fl_scope_series"),
            ("faultlens_span_buckets", "fl_span_buckets"),
            ("faultlens_instances", "fl_instances"),
        ):
            pd.testing.assert_frame_equal(
                _frame(con, f"SELECT * FROM {stored}"), _frame(con, f"SELECT * FROM {temp}")
            )
        pd.testing.assert_frame_equal(
            _frame(con, "SELECT * FROM faultlens_service_models"),
            _frame(con, "SELECT DISTINCT run, service, model FROM fl_spans"),
        )
        assert _traces(con, "faultlens_requests", "faultlens_exposure") == _traces(
            con, "fl_requests", "fl_exposure"
        )
        assert (
            runs
            == con.execute(
                "SELECT run, count(*) FROM fl_spans GROUP BY run ORDER BY run"
            ).fetchall()
        )
        # Each run's rows are stored in time order.
        for table in ("faultlens_spans", "faultlens_requests"):
            ts = con.execute(f"SELECT run, ts FROM {table} ORDER BY rowid").df()
            for _, g in ts.groupby("run"):
                assert g.ts.is_monotonic_increasing
    finally:
        con.close()


def _crossing_traces(db: Path, part_spans: int) -> int:
    """How many traces of the store's one run start in one part and go on into the next,
    when it is cut into parts of ``part_spans`` spans."""
    con = duckdb.connect(str(db))
    try:
        ((run, spans),) = con.execute("SELECT run, spans FROM faultlens_facts_runs").fetchall()
        cut = cut_run(con, run, -(-spans // part_spans))
        assert len(cut.bounds) > 1
        return con.execute("SELECT count(*) FROM fl_straddle").fetchone()[0]
    finally:
        con.close()


def _mark(db: Path, text: str | None) -> int:
    """Mark the stored span rows (their name) to tell kept rows from derived ones, or
    unmark them; returns how many rows carry the mark."""
    con = duckdb.connect(str(db))
    try:
        if text is not None:
            con.execute("UPDATE faultlens_spans SET name = name || $m", {"m": text})
        marked = con.execute("SELECT count(*) FROM faultlens_spans WHERE name LIKE '%#kept'")
        count = marked.fetchone()[0]
        if text is None:
            con.execute("UPDATE faultlens_spans SET name = replace(name, '#kept', '')")
        return count
    finally:
        con.close()


def _small_part_with_crossings(tmp_path: Path) -> int:
    """A part size of a few hundred spans at which some trace of the crash run starts in
    one part and goes on into the next (which sizes do depends on the recorded run)."""
    probe = tmp_path / "probe.duckdb"
    ingest(CRASH, db=probe)
    return next(n for n in range(700, 99, -50) if _crossing_traces(probe, n) > 0)


@pytest.mark.parametrize("parts", ["one", "several"])
def test_stored_facts_after_two_ingests_and_a_run_in_two_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: str
) -> None:
    # A few hundred spans a partition cut each run into several parts by time, some
    # trace going on past its part's end.
    part_spans = 1_000_000 if parts == "one" else _small_part_with_crossings(tmp_path)
    monkeypatch.setattr(TUNING, "facts_part_spans", part_spans)
    db = tmp_path / "store.duckdb"
    ingest(CRASH, db=db)
    _assert_stored_equal_derived(db)
    spans = _mark(db, "#kept")
    ingest(LATENCY, db=db)  # a second run: the first run's facts are kept, not rebuilt
    assert _mark(db, None) == spans > 0
    _assert_stored_equal_derived(db)
    con = duckdb.connect(str(db))
    assert con.execute("SELECT count(DISTINCT run) FROM faultlens_facts_runs").fetchone()[0] == 2
    con.close()

    # One run's spans in two files, ingested one after the other: the run is derived again.
    lines = gzip.decompress(DATA.joinpath("slow-model", "monolith", "traces.jsonl.gz").read_bytes())
    lines = lines.splitlines(keepends=True)
    half = len(lines) // 2
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"".join(lines[:half]))
    second.write_bytes(b"".join(lines[half:]))
    ingest(first, db=db)
    _assert_stored_equal_derived(db)
    ingest(second, db=db)
    _assert_stored_equal_derived(db)

    # Both halves in one ingest, into a fresh store; and in reverse, so that the run is not
    # stored in time order (a part's time range then spans the whole run's storage).
    for name, files in (("other", [first, second]), ("reversed", [second, first])):
        other = tmp_path / f"{name}.duckdb"
        ingest(files, db=other)
        _assert_stored_equal_derived(other)


def test_stored_facts_of_whole_and_cut_runs_in_one_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3000 spans a partition: crash/monolith and latency/monolith (about 2,000 and 2,600
    # spans) are read whole, each into its own partition, crash/per-model (about 4,200) is
    # cut in two by time;
    # all three in one ingest, so whole partitions are written before and after cut parts.
    monkeypatch.setattr(TUNING, "facts_part_spans", 3000)
    db = tmp_path / "store.duckdb"
    steps: list[tuple[int, int]] = []
    files = [DATA / "crash" / "monolith" / "traces.jsonl.gz", CRASH, LATENCY]
    ingest(files, db=db, facts_progress=lambda done, total: steps.append((done, total)))
    # One step per partition (four) and one for the whole runs' tables, reported as they go.
    assert steps == [(n, 5) for n in range(6)]
    steps.clear()
    ingest(files, db=db, facts_progress=lambda done, total: steps.append((done, total)))
    assert steps == []  # nothing new: no run derived again
    assert partitions(
        {"crash/monolith": 1850, "crash/per-model": 4165, "latency/monolith": 2599}
    ) == [("crash/monolith", 0, 1), ("crash/per-model", 1, 2), ("latency/monolith", 3, 1)]
    _assert_stored_equal_derived(db)


def test_stored_facts_are_read_only_while_they_cover_every_span(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    ingest(CRASH, db=db)
    con = duckdb.connect(str(db))
    try:
        run = con.execute("SELECT any_value(run) FROM faultlens_facts_runs").fetchone()[0]
        assert _facts.open_stored_facts(con, DUCKDB, run=run) is not None
        con.execute("INSERT INTO otel_traces SELECT * FROM otel_traces LIMIT 1")
        assert _facts.open_stored_facts(con, DUCKDB, run=run) is None
        assert _facts.open_stored_facts(con, DUCKDB, run=None) is None
    finally:
        con.close()


@pytest.mark.parametrize("limit", [None, "3GB"])
def test_the_facts_step_leaves_the_connection_memory_limit_as_it_found_it(
    tmp_path: Path, limit: str | None
) -> None:
    """It works under its own limit, then restores the caller's: DuckDB shows a limit
    rounded down, so setting back the text it showed lowered it each time (the default
    18.8 GiB came back as 18.7 GiB)."""
    db = tmp_path / "store.duckdb"
    ingest(CRASH, db=db)
    con = duckdb.connect(str(db))
    try:
        if limit:
            con.execute(f"SET memory_limit = '{limit}'")
        before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        bar = con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
        for _ in range(2):
            con.execute("DROP TABLE faultlens_facts_meta")  # the facts are derived again
            _facts.store_facts(con)
            assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
            # It turns DuckDB's own progress bar off while it works, then back as it was.
            assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] == bar
    finally:
        con.close()


def test_collect_refreshes_the_facts_when_it_stops(tmp_path: Path) -> None:
    db = tmp_path / "collected.duckdb"
    with collect_process(db) as (url, proc):
        lines = gzip.decompress(CRASH.read_bytes()).splitlines()
        with httpx.Client(base_url=url, timeout=30) as client:
            for line in lines:
                answer = client.post(
                    "/v1/traces", content=line, headers={"content-type": "application/json"}
                )
                assert answer.status_code == 200, answer.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    _assert_stored_equal_derived(db)
    con = duckdb.connect(str(db))
    try:
        run = con.execute("SELECT any_value(run) FROM faultlens_facts_runs").fetchone()[0]
        assert _facts.open_stored_facts(con, DUCKDB, run=run) is not None
    finally:
        con.close()


def test_a_failed_facts_step_keeps_every_record_and_says_so(tmp_path: Path) -> None:
    """Span facts that cannot be derived (here: a DuckDB memory limit far too small) cost one
    error line, never the records already committed; the analysis derives the facts instead
    and answers as it does over a store that has them."""
    exe = Path(sys.executable).with_name("faultlens")
    starved, normal = tmp_path / "starved.duckdb", tmp_path / "normal.duckdb"
    env = {**os.environ, "FAULTLENS_FACTS_MEMORY": "1MB"}
    done = subprocess.run(
        [str(exe), "ingest", str(CRASH), "--db", str(starved)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(problems) == 1 and "span facts not derived" in problems[0], done.stderr
    assert "Traceback" not in done.stderr
    with gzip.open(CRASH, "rt") as f:
        spans = sum(
            len(ss["spans"])
            for line in f
            for rs in json.loads(line)["resourceSpans"]
            for ss in rs["scopeSpans"]
        )
    assert f"stored {spans}" in done.stdout, done.stdout
    ingest([CRASH], db=normal)
    with duckdb.connect(str(starved), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM otel_traces").fetchone()[0] == spans
        assert _facts.open_stored_facts(con, DUCKDB, run=None) is None  # nothing half-made
    answers = []
    for db in (starved, normal):
        out = subprocess.run(
            [str(exe), "incidents", "--db", str(db), "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        answers.append(out.stdout)
    assert answers[0] == answers[1] and '"incidents": [' in answers[0]
