"""`faultlens collect` over real loopback HTTP: the real OTel OTLP/HTTP exporters send
traces and logs; partial success, 400, 401, 413 (gzip bomb), 429 and the flush on exit."""

from __future__ import annotations

import base64
import gzip
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from otel_spans import T0, System, collect_process, shared_span_id_spans, stop

from faultlens.analyzer import connect
from faultlens.analyzer.serve._receiver import Busy, Receiver, _Job

TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    db = tmp_path / "r.duckdb"
    with collect_process(db, "--token", TOKEN) as (url, proc):
        yield url, db, proc


def test_real_exporters_traces_and_logs_arrive_complete(server) -> None:
    url, db, proc = server
    resource = Resource.create({"service.name": "monolith", "service.instance.id": "i-1"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=AUTH))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs", headers=AUTH))
    )
    log = logging.getLogger("test.receiver")
    log.propagate = False
    log.addHandler(LoggingHandler(logger_provider=logger_provider))
    log.setLevel(logging.INFO)
    tracer = tracer_provider.get_tracer("t")

    def work(k: int) -> None:
        for i in range(250):
            with tracer.start_as_current_span(
                "fraud.predict", attributes={"ml.model.name": "fraud", "n": k * 1000 + i}
            ):
                if i % 50 == 0:
                    log.error("model failed %d", k * 1000 + i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracer_provider.force_flush(30_000)
    assert logger_provider.force_flush(30_000)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    stop(proc)
    con = connect(db, read_only=True)
    assert con.execute(
        "SELECT count(*), count(DISTINCT SpanAttributes['n']), min(ModelName), "
        "min(ServiceInstanceId) FROM otel_traces"
    ).fetchone() == (1000, 1000, "fraud", "i-1")
    assert con.execute(
        "SELECT count(*), min(SeverityNumber), count(*) FILTER (WHERE SpanId IN "
        "(SELECT SpanId FROM otel_traces)), min(ServiceName) FROM otel_logs"
    ).fetchone() == (20, SeverityNumber.ERROR.value, 20, "monolith")
    assert con.execute(
        "SELECT sum(Read), sum(Stored), sum(Quarantined) FROM faultlens_ingest_ledger"
    ).fetchone() == (1020, 1020, 0)


def _json_spans(*span_ids: str) -> dict:
    spans = [
        {
            "traceId": "0AF7651916CD43DD8448EB211C80319C",
            "spanId": sid,
            "name": "s",
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000000000100",
        }
        for sid in span_ids
    ]
    return {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}


def test_status_codes_and_partial_success(server) -> None:
    url, db, proc = server
    with httpx.Client(base_url=url, timeout=10) as client:
        body = orjson.dumps(_json_spans("B7AD6B7169203331", "nothex!!nothex!!", "B7AD6B7169203332"))
        json_headers = {**AUTH, "content-type": "application/json"}
        r = client.post("/v1/traces", content=body, headers=json_headers)
        assert (r.status_code, r.json()) == (
            200,
            {
                "partialSuccess": {
                    "rejectedSpans": "1",
                    "errorMessage": "/v1/traces request 1 record 2: "
                    "spanId is not 16 hex digits (or is all zero)",
                }
            },
        )
        # Protobuf answers in protobuf; an all-good request has no partial success.
        ok = client.post(
            "/v1/traces",
            content=gzip.compress(body),
            headers={**json_headers, "content-encoding": "gzip"},
        )
        assert (ok.status_code, ok.json()) == (
            200,
            {
                "partialSuccess": {
                    "rejectedSpans": "1",
                    "errorMessage": "/v1/traces request 2 record 2: "
                    "spanId is not 16 hex digits (or is all zero)",
                }
            },
        )
        r = client.post(
            "/v1/traces",
            content=b"\x0a\xff",
            headers={**AUTH, "content-type": "application/x-protobuf"},
        )
        assert r.status_code == 400
        r = client.post(
            "/v1/traces", content=b"", headers={**AUTH, "content-type": "application/x-protobuf"}
        )
        assert (r.status_code, ExportTraceServiceResponse.FromString(r.content)) == (
            200,
            ExportTraceServiceResponse(),
        )
        assert (
            client.post(
                "/v1/traces", content=body, headers={"content-type": "application/json"}
            ).status_code
            == 401
        )
        bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
        r = client.post(
            "/v1/traces", content=bomb, headers={**json_headers, "content-encoding": "gzip"}
        )
        assert r.status_code == 413
        r = client.post("/v1/traces", content=b"x" * (33 << 20), headers=json_headers)
        assert r.status_code == 413
    stop(proc)
    con = connect(db, read_only=True)
    assert con.execute("SELECT SpanId FROM otel_traces ORDER BY 1").fetchall() == [
        ("b7ad6b7169203331",),
        ("b7ad6b7169203332",),
    ]
    assert con.execute("SELECT Position FROM faultlens_quarantine ORDER BY 1").fetchall() == [
        ("/v1/traces request 1 record 2",),
        ("/v1/traces request 2 record 2",),
    ]


def test_protobuf_partial_success_is_answered_in_protobuf(server) -> None:
    """An exporter speaking protobuf learns which records were rejected, and why."""
    url, db, proc = server
    sysm = System()
    for i in range(3):
        with sysm.span("monolith", f"request {i}", start=T0 + i * 10**9, dur_ms=5):
            pass
        sysm.log("monolith", f"line {i}", ts=T0 + i * 10**9, severity=9)
    spans = encode_spans(sysm.exporter.get_finished_spans())
    spans.resource_spans[0].scope_spans[0].spans[1].span_id = bytes(8)  # a broken exporter's
    logs = encode_logs(sysm.log_exporter.get_finished_logs())
    logs.resource_logs[0].scope_logs[0].log_records[0].trace_id = b"\x01\x02\x03"
    headers = {**AUTH, "content-type": "application/x-protobuf"}
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/v1/traces", content=spans.SerializeToString(), headers=headers)
        got_spans = (r.status_code, r.headers["content-type"], r.content)
        r = client.post("/v1/logs", content=logs.SerializeToString(), headers=headers)
        got_logs = (r.status_code, r.headers["content-type"], r.content)
        # The same logs as OTLP/JSON are answered in JSON.
        doc = MessageToDict(logs)
        for record in doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
            for key in ("traceId", "spanId"):
                if key in record:
                    record[key] = base64.b64decode(record[key]).hex()
        r = client.post(
            "/v1/logs",
            content=orjson.dumps(doc),
            headers={**AUTH, "content-type": "application/json"},
        )
        got_json = (r.status_code, r.json())
    assert got_spans[:2] == got_logs[:2] == (200, "application/x-protobuf")
    assert ExportTraceServiceResponse.FromString(got_spans[2]) == ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(
            rejected_spans=1,
            error_message="/v1/traces request 1 record 2: "
            "spanId is not 16 hex digits (or is all zero)",
        )
    )
    assert ExportLogsServiceResponse.FromString(got_logs[2]) == ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(
            rejected_log_records=1,
            error_message="/v1/logs request 2 record 1: traceId is not empty or 32 hex digits",
        )
    )
    assert got_json == (
        200,
        {
            "partialSuccess": {
                "rejectedLogRecords": "1",
                "errorMessage": "/v1/logs request 3 record 1: "
                "traceId is not empty or 32 hex digits",
            }
        },
    )
    stop(proc)
    con = connect(db, read_only=True)
    assert con.execute("SELECT SpanName FROM otel_traces ORDER BY 1").fetchall() == [
        ("request 0",),
        ("request 2",),
    ]
    # The JSON request's records are the protobuf one's again: stored once.
    assert con.execute("SELECT Body FROM otel_logs ORDER BY 1").fetchall() == [
        ("line 1",),
        ("line 2",),
    ]
    assert con.execute(
        "SELECT Signal, sum(Read), sum(Stored), sum(Duplicates), sum(Quarantined) "
        "FROM faultlens_ingest_ledger GROUP BY Signal ORDER BY Signal"
    ).fetchall() == [("logs", 6, 2, 2, 2), ("traces", 3, 2, 0, 1)]


def test_spans_of_different_traces_sharing_a_span_id_are_all_stored(server) -> None:
    """(TraceId, SpanId) is a span's identity: B beside A in one request, then C beside a
    repeat of A (checked against what is stored), are all kept; only A's repeat is not."""
    url, db, proc = server
    a, b, c = shared_span_id_spans()
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=AUTH)
    assert [exporter.export(batch) for batch in ([a, b], [a, c])] == [SpanExportResult.SUCCESS] * 2
    exporter.shutdown()
    stop(proc)
    con = connect(db, read_only=True)
    assert set(con.execute("SELECT TraceId, SpanName FROM otel_traces").fetchall()) == {
        (format(s.context.trace_id, "032x"), s.name) for s in (a, b, c)
    }
    assert con.execute(
        "SELECT sum(Read), sum(Stored), sum(Duplicates) FROM faultlens_ingest_ledger"
    ).fetchone() == (4, 3, 1)


def test_full_write_queue_answers_busy() -> None:
    con = connect(":memory:")
    receiver = Receiver(con, queue_items=1)
    release = threading.Event()
    committed = []

    def job(wait: bool) -> _Job:
        def done(error: BaseException | None) -> None:
            committed.append(error)
            if wait:
                release.wait(10)

        return _Job("t", "traces", None, [], 0, done)

    receiver.submit(job(True))  # the writer takes it and blocks in its callback
    deadline = time.time() + 5
    while not committed and time.time() < deadline:
        time.sleep(0.01)
    receiver.submit(job(False))  # fills the queue
    with pytest.raises(Busy):
        receiver.submit(job(False))
    release.set()
    receiver.close()
    assert committed == [None, None]


def test_writer_takes_one_duckdb_thread_and_gives_the_setting_back() -> None:
    con = connect(":memory:")
    con.execute("SET threads = 3")
    receiver = Receiver(con)
    # Group commits of a request's few hundred spans run on one DuckDB thread ...
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    receiver.close()
    # ... and the caller's connection (and the span facts at shutdown) get theirs back.
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 3
