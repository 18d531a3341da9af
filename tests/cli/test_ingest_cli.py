"""`faultlens ingest`: a summary line, one line per bad record naming file and position,
no traceback, and exit status 1 when something was quarantined."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from faultlens.cli._app import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp-examples"


def test_ingest_reports_each_problem_on_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "x"}]}]}]}\nnope\n')
    db = tmp_path / "f.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(FIXTURES), str(bad), "--db", str(db)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: {bad}:1 record 1: traceId is not 32 hex digits (or is all zero); "
        "spanId is not 16 hex digits (or is all zero)",
        f"error: {bad}:2: not valid JSON at column 1 (invalid literal, expected 'null')",
    ]
    assert (
        "4 files: read 5, stored 3 (1 spans, 2 log records, 0 metric data points), "
        "duplicates 0, quarantined 2" in result.output
    )


def test_ingest_bad_store_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ingest", str(FIXTURES), "--db", "clickhouse://x/y"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: clickhouse://x/y: faultlens writes DuckDB")
    assert "Traceback" not in result.output


def test_ingest_skips_a_file_that_is_not_otlp_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "traces.json").write_bytes((FIXTURES / "trace.json").read_bytes())
    truth = run / "truth.json"
    truth.write_text('{\n  "scenario": "crash",\n  "culprit": "fraud"\n}\n')
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--db", str(tmp_path / "f.db")])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("skipped")] == [
        f"skipped {truth}: not OTLP (no resourceSpans/resourceLogs)"
    ]
    assert (
        "1 files: read 1, stored 1 (1 spans, 0 log records, 0 metric data points)" in result.output
    )
