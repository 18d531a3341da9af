"""HttpRoute at ingest: a server span's ``http.route``, else a client span's ``url.template``.

An ingress or load generator in front of the services records a CLIENT span per
request; when the server never answered (it was dead) that span is the only one
the request left, and its ``url.template`` is the endpoint it asked for. Each OTLP
form the ingest reads (JSON Lines, protobuf) must resolve it the same way.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from faultlens.analyzer import ingest

WANT = {
    "POST /search (client)": "/search",
    "GET /items/{id} (server)": "/items/{id}",
    "both (server)": "/from-route",
    "neither": "",
}


def _spans(exporters: list) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "loadgen"}))
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "POST /search (client)", kind=SpanKind.CLIENT, attributes={"url.template": "/search"}
    ):
        pass
    with tracer.start_as_current_span(
        "GET /items/{id} (server)", kind=SpanKind.SERVER, attributes={"http.route": "/items/{id}"}
    ):
        pass
    with tracer.start_as_current_span(
        "both (server)",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/from-route", "url.template": "/from-template"},
    ):
        pass
    with tracer.start_as_current_span("neither", attributes={"url.full": "http://a/b"}):
        pass
    provider.shutdown()


@pytest.mark.parametrize("form", ["jsonl", "protobuf"])
def test_route_falls_back_to_url_template(form: str, tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    if form == "jsonl":
        src = tmp_path / "traces.jsonl"
        _spans([memory, FileSpanExporter(src)])
    else:
        _spans([memory])
        src = tmp_path / "traces.pb"
        src.write_bytes(encode_spans(memory.get_finished_spans()).SerializeToString())
    assert len(memory.get_finished_spans()) == len(WANT)
    db = tmp_path / "store.duckdb"
    ingest([src], db=db)
    with duckdb.connect(str(db), read_only=True) as con:
        got = dict(con.execute("SELECT SpanName, HttpRoute FROM otel_traces").fetchall())
    assert got == WANT
