"""The one transactional write (`_store.write_batch`): repeats inside a batch are stored once,
whichever way the batch counts them (Arrow for a receiver's small batches, DuckDB for a
file's big ones)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_spans import MS, T0, System

from faultlens.analyzer.serve._receiver import _decode
from faultlens.analyzer.store import _write as _store

SPANS = 500


@pytest.fixture(scope="module")
def spans() -> pa.Table:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "monolith"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for i in range(SPANS):
        model = {"ml.model.name": "fraud", "ml.model.version": str(i % 3)}
        with tracer.start_as_current_span("fraud.predict", attributes=model):
            pass
    provider.shutdown()
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    table = _decode(body, "traces", False, "test").traces.to_arrow()
    assert table is not None and table.num_rows == SPANS
    return table


def _write(con, traces: pa.Table) -> _store.BatchCounts:
    return _store.write_batch(
        con,
        run_id="r",
        source="test",
        traces=traces,
        logs=None,
        rejects=[],
        read={"traces": traces.num_rows},
    )


@pytest.mark.parametrize("copies", [2, 20])
def test_repeats_inside_a_batch_are_stored_once(
    tmp_path: Path, spans: pa.Table, copies: int
) -> None:
    batch = pa.concat_tables([spans] * copies)
    # Both ways of counting a batch's repeats are exercised.
    assert (batch.num_rows <= _store._ARROW_DISTINCT) == (copies == 2)
    con = _store.connect(tmp_path / "s.duckdb")
    counts = _write(con, batch)
    assert counts.stored["traces"] == SPANS
    assert counts.duplicates["traces"] == SPANS * (copies - 1)
    stored = con.execute(
        "SELECT count(*), count(DISTINCT (TraceId, SpanId)), min(ModelName) FROM otel_traces"
    ).fetchone()
    assert stored == (SPANS, SPANS, "fraud")
    # A batch without repeats goes in whole, next to what is stored (the anti-join path).
    counts = _write(con, spans)
    assert (counts.stored["traces"], counts.duplicates["traces"]) == (0, SPANS)
    ledger = con.execute(
        "SELECT sum(Read), sum(Stored), sum(Duplicates) FROM faultlens_ingest_ledger"
    ).fetchone()
    assert ledger == (batch.num_rows + SPANS, SPANS, batch.num_rows)


def _logs_table(n: int) -> pa.Table:
    sysm = System()
    for i in range(n):
        sysm.log("monolith", f"line {i}", ts=T0 + i * MS, severity=17)
    body = encode_logs(sysm.log_exporter.get_finished_logs()).SerializeToString()
    table = _decode(body, "logs", False, "test").logs.to_arrow()
    assert table is not None and table.num_rows == n
    return table


def test_each_batch_counts_what_it_stored_and_what_was_there(spans: pa.Table) -> None:
    con = _store.connect(":memory:")
    logs = _logs_table(4)

    def write() -> _store.BatchCounts:
        return _store.write_batch(
            con, run_id="r", source="test", traces=spans, logs=logs, rejects=[],
            read={"traces": SPANS, "logs": 4},
        )  # fmt: skip

    first, again = write(), write()
    assert first == _store.BatchCounts(
        {"traces": SPANS, "logs": 4},
        {"traces": SPANS, "logs": 4, "metrics": 0},
        {"traces": 0, "logs": 0, "metrics": 0},
        {"traces": 0, "logs": 0},
    )
    assert again == _store.BatchCounts(
        {"traces": SPANS, "logs": 4},
        {"traces": 0, "logs": 0, "metrics": 0},
        {"traces": SPANS, "logs": 4, "metrics": 0},
        {"traces": 0, "logs": 0},
    )
    assert con.execute(
        "SELECT Signal, sum(Stored), sum(Duplicates) FROM faultlens_ingest_ledger "
        "GROUP BY Signal ORDER BY Signal"
    ).fetchall() == [("logs", 4, 4), ("traces", SPANS, SPANS)]


def test_a_failed_batch_leaves_nothing_and_the_store_goes_on(spans: pa.Table) -> None:
    """One transaction: when the log records of a batch cannot be written, its spans (written
    first) and its ledger lines are gone too, its own error is raised, and the next batch is
    written as usual."""
    con = _store.connect(":memory:")
    logs = _logs_table(2)
    at = logs.column_names.index("SeverityNumber")
    broken = logs.set_column(at, "SeverityNumber", pa.array(["fatal", "error"]))

    def write(logs: pa.Table) -> _store.BatchCounts:
        return _store.write_batch(
            con, run_id="r", source="test", traces=spans, logs=logs, rejects=[],
            read={"traces": SPANS, "logs": 2},
        )  # fmt: skip

    with pytest.raises(duckdb.ConversionException):
        write(broken)
    assert write(logs).stored == {"traces": SPANS, "logs": 2, "metrics": 0}
    assert con.execute(
        "SELECT (SELECT count(*) FROM otel_traces), (SELECT count(*) FROM otel_logs), "
        "count(*) FROM faultlens_ingest_ledger"
    ).fetchone() == (SPANS, 2, 2)


def test_a_read_only_store_refuses_writes(tmp_path: Path, spans: pa.Table) -> None:
    db = tmp_path / "s.duckdb"
    _write(_store.connect(db), spans)  # the writer's connection closes with the object
    con = _store.connect(db, read_only=True)
    with pytest.raises(duckdb.InvalidInputException, match="read-only"):
        _write(con, spans)


@pytest.mark.parametrize("url", ["chdb:/tmp/x", "clickhouse://localhost:8123/otel"])
def test_clickhouse_is_not_written_by_faultlens(url: str) -> None:
    with pytest.raises(_store.StoreError) as err:
        _store.connect(url)
    assert str(err.value) == (
        f"{url}: faultlens writes DuckDB files; on ClickHouse the OpenTelemetry "
        "Collector's exporter writes the tables"
    )
