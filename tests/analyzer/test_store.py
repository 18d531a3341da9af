"""The one transactional write (`_store.write_batch`): repeats inside a batch are stored once,
whichever way the batch counts them (Arrow for a receiver's small batches, DuckDB for a
file's big ones)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
