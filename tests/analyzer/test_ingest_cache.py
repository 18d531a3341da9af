"""`ingest` drops the blocks DuckDB cached while writing (memory stays flat on large
inputs) and gives a caller's connection back with its own settings."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson

from faultlens.analyzer import connect, ingest
from faultlens.analyzer._settings import TUNING
from faultlens.analyzer.decode._files import chunks
from faultlens.analyzer.serve import _ingest


def _lines(path: Path, lines: int, per_line: int = 100) -> int:
    with open(path, "wb") as out:
        for n in range(lines):
            spans = [
                {
                    "traceId": f"{n + 1:016x}{i:016x}",
                    "spanId": f"{n * per_line + i + 1:016x}",
                    "name": "fraud.predict",
                    "startTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1000 + i),
                    "endTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1000 + i + 7),
                    "attributes": [{"key": "ml.model.name", "value": {"stringValue": "fraud"}}],
                }
                for i in range(per_line)
            ]
            doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
            out.write(orjson.dumps(doc) + b"\n")
    return lines * per_line


def _settings(con: duckdb.DuckDBPyConnection) -> tuple:
    return con.execute(
        "SELECT current_setting('threads'), current_setting('memory_limit')"
    ).fetchone()


def test_written_blocks_are_evicted_and_the_rows_are_exact(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "spans.jsonl"
    total = _lines(path, 400)
    monkeypatch.setattr(_ingest, "_all_chunks", lambda files: chunks(files[0], chunk_bytes=1 << 16))
    monkeypatch.setattr(TUNING, "batch_rows", 5_000)
    monkeypatch.setattr(_ingest, "_CACHE_ROWS", 10_000)
    after = []  # (cached bytes, memory limit) right after each eviction
    evict = _ingest._evict_written_blocks

    def evict_and_look(con: duckdb.DuckDBPyConnection) -> None:
        evict(con)
        cached = con.execute(
            "SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'"
        ).fetchone()[0]
        after.append((cached, _settings(con)[1]))

    monkeypatch.setattr(_ingest, "_evict_written_blocks", evict_and_look)
    db = tmp_path / "f.duckdb"
    default = _settings(duckdb.connect())[1]
    report = ingest(path, db=db)
    assert (report.read, report.stored, report.duplicates) == (total, total, 0)
    assert len(after) >= 3
    assert all(cached < 32 << 20 and limit == default for cached, limit in after)
    con = connect(db, read_only=True)
    assert con.execute(
        "SELECT count(*), count(DISTINCT (TraceId, SpanId)), sum(Duration) FROM otel_traces"
    ).fetchone() == (total, total, 7 * total)
    assert con.execute("SELECT sum(Stored) FROM faultlens_ingest_ledger").fetchone()[0] == total


def test_a_callers_connection_keeps_its_settings_and_its_cache(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "spans.jsonl"
    total = _lines(path, 50)
    monkeypatch.setattr(_ingest, "_all_chunks", lambda files: chunks(files[0], chunk_bytes=1 << 16))
    monkeypatch.setattr(TUNING, "batch_rows", 1_000)
    monkeypatch.setattr(_ingest, "_CACHE_ROWS", 1_000)
    calls = []
    monkeypatch.setattr(_ingest, "_evict_written_blocks", lambda con: calls.append(1))
    for con in (connect(":memory:"), connect(tmp_path / "g.duckdb")):
        con.execute("SET threads = 2")
        assert ingest(path, db=con).stored == total
        # (the memory limit is the span facts step's to restore: _facts.store_facts)
        assert _settings(con)[0] == 2
    assert calls == []
