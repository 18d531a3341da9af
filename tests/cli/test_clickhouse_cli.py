"""`faultlens clickhouse load`: a DuckDB store into the exporter's tables on chDB."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

import faultlens.analyzer as fa
from faultlens.cli._app import app

DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"


def test_load_copies_every_span_and_log_and_the_analysis_reads_them(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    fa.ingest([DATA / "error-burst" / "per-model"], db=store)
    with duckdb.connect(str(store), read_only=True) as con:
        spans = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
        logs = con.execute("SELECT count(*) FROM otel_logs").fetchone()[0]
        gauges = con.execute("SELECT count(*) FROM otel_metrics_gauge").fetchone()[0]
        sums = con.execute("SELECT count(*) FROM otel_metrics_sum").fetchone()[0]
        histograms = con.execute("SELECT count(*) FROM otel_metrics_histogram").fetchone()[0]
    target = f"chdb:{tmp_path / 'ch'}"
    result = CliRunner().invoke(app, ["clickhouse", "load", str(store), "--db", target])
    assert result.exit_code == 0, result.output
    # The run's metrics too: the models' load-time growth (gauges), the process and
    # model-scope sums, the HTTP server histograms (tables without rows are not listed).
    assert gauges and sums and histograms
    assert result.stdout.strip() == (
        f"otel_traces: {spans} rows, otel_logs: {logs} rows, otel_metrics_gauge: {gauges} rows, "
        f"otel_metrics_sum: {sums} rows, otel_metrics_histogram: {histograms} rows"
    )
    assert fa.open(target).costs() == fa.open(store).costs()  # the cost side reads them
    got = fa.open(target).incidents(slo_ms=300)
    want = fa.open(store).incidents(slo_ms=300)
    assert [(i.id, i.culprit.model, i.blast.requests) for i in got] == [
        (i.id, i.culprit.model, i.blast.requests) for i in want
    ]


def test_load_names_a_missing_store_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.duckdb"
    result = CliRunner().invoke(
        app, ["clickhouse", "load", str(missing), "--db", f"chdb:{tmp_path / 'ch'}"]
    )
    assert result.exit_code == 2
    assert result.output == f"faultlens clickhouse load: {missing}: no such store\n"
