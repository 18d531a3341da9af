"""What the OTLP receiver answers when it does not take a request, over real loopback HTTP
and real gRPC: the code, the message, the headers an exporter acts on (Retry-After,
Content-Type, RetryInfo), and that nothing of a refused request is stored.

The receiver runs in this process (uvicorn in a thread, the gRPC server on its loop, as
``faultlens serve`` starts them), so that a test can hold its writer (a full write queue)
or hand it a store it cannot write (a read-only DuckDB file).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
import uvicorn
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData
from otel_spans import free_port

from faultlens.analyzer import connect
from faultlens.analyzer.serve._grpc import grpc_server
from faultlens.analyzer.serve._receiver import Receiver, _Job, receiver_app

TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "content-type": "application/json"}
PROTO = {**AUTH, "content-type": "application/x-protobuf"}
MAX_BODY = 4096
TEXT = "text/plain; charset=utf-8"
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
GAUGE = {
    "resourceMetrics": [
        {
            "scopeMetrics": [
                {
                    "metrics": [
                        {
                            "name": "queue.depth",
                            "gauge": {
                                "dataPoints": [
                                    {"timeUnixNano": "1700000000000000000", "asDouble": 1.5}
                                ]
                            },
                        }
                    ]
                }
            ]
        }
    ]
}
UNDECODABLE = b"\x0a\xff"  # a length-delimited field longer than the message


@dataclass
class Served:
    url: str
    grpc: str
    receiver: Receiver


@contextlib.contextmanager
def served(db: Path, *, read_only: bool = False, queue_items: int = 256) -> Iterator[Served]:
    """The receiver on loopback HTTP and gRPC, in this process, writing the store ``db``."""
    con = connect(db, read_only=read_only)
    http_port, grpc_port = free_port(), free_port()
    parts: dict = {}

    @contextlib.asynccontextmanager
    async def around(receiver: Receiver) -> AsyncIterator[None]:
        parts["receiver"] = receiver
        server = grpc_server(
            receiver, host="127.0.0.1", port=grpc_port, token=TOKEN, max_body=MAX_BODY
        )
        await server.start()
        try:
            yield
        finally:
            await server.stop(grace=1)

    app = receiver_app(con, token=TOKEN, max_body=MAX_BODY, queue_items=queue_items, around=around)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=http_port, log_level="warning", lifespan="on", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the receiver did not start"
    try:
        yield Served(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", parts["receiver"])
    finally:
        server.should_exit = True
        thread.join(30)
        con.close()


@contextlib.contextmanager
def writer_held(receiver: Receiver) -> Iterator[None]:
    """The writer busy with one job and the (one-item) queue full behind it: the state a
    receiver is in when exports arrive faster than it commits them."""
    release, taken = threading.Event(), threading.Event()

    def hold(error: BaseException | None) -> None:
        taken.set()
        release.wait(30)

    receiver.submit(_Job("test", "traces", None, [], 0, hold))
    assert taken.wait(10)
    receiver.submit(_Job("test", "traces", None, [], 0, lambda error: None))
    try:
        yield
    finally:
        release.set()
        # The writer catches up: the queued job taken, there is room again (an exporter
        # retries after Retry-After; the test waits for exactly that instead).
        deadline = time.monotonic() + 10
        while not receiver.jobs.empty() and time.monotonic() < deadline:
            time.sleep(0.01)


def _span_id(name: str) -> bytes:
    """A span id of its own for each span name: no test span is another's duplicate."""
    return hashlib.blake2b(name.encode(), digest_size=8).digest()


def _json_spans(*names: str) -> bytes:
    spans = [
        {
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": _span_id(name).hex(),
            "name": name,
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000000000100",
        }
        for i, name in enumerate(names)
    ]
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})


def _proto_spans(*names: str, bad: int | None = None) -> bytes:
    spans = [
        Span(
            trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
            span_id=bytes(8) if i == bad else _span_id(name),
            name=name,
            start_time_unix_nano=1700000000000000000,
            end_time_unix_nano=1700000000000000100,
        )
        for i, name in enumerate(names)
    ]
    message = TracesData(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    return message.SerializeToString()


def _stored(db: Path) -> list[str]:
    con = connect(db, read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT SpanName FROM otel_traces ORDER BY 1").fetchall()]
    finally:
        con.close()


def _answer(r: httpx.Response) -> tuple[int, str, str]:
    return r.status_code, r.headers["content-type"], r.text


def _grpc_error(target: str, method: str, body: bytes, *, auth: bool = True) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method)  # raw bytes each way
        with pytest.raises(grpc.RpcError) as caught:
            call(body, metadata=tuple(AUTH.items()) if auth else None, timeout=10)
    return caught.value


def _retry_info(error: grpc.RpcError) -> tuple[RetryInfo, Status, RetryInfo]:
    """RetryInfo as the Python exporter reads it, and the status (code, message, details)
    with the RetryInfo in it as Go's and Java's read them."""
    trailers = dict(error.trailing_metadata())
    status = Status.FromString(trailers["grpc-status-details-bin"])
    detail = RetryInfo()
    assert [d.Unpack(detail) for d in status.details] == [True]
    return RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]), status, detail


def test_refused_requests_answer_a_code_a_line_of_text_and_store_nothing(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    with served(db) as s, httpx.Client(base_url=s.url, timeout=10) as client:
        body = _json_spans("refused")
        answers = {
            "no token": client.post(
                "/v1/traces", content=body, headers={"content-type": "application/json"}
            ),
            "wrong token": client.post(
                "/v1/traces", content=body, headers={**JSON, "authorization": "Bearer other"}
            ),
            "declared too long": client.post(
                "/v1/traces", content=b" " * (MAX_BODY + 1), headers=JSON
            ),
            # No Content-Length (chunked): the limit holds on the bytes read.
            "streamed too long": client.post(
                "/v1/traces", content=iter([b" " * 3000, b" " * 3000]), headers=JSON
            ),
            "inflates too long": client.post(
                "/v1/traces",
                content=gzip.compress(b" " * (MAX_BODY + 1)),
                headers={**JSON, "content-encoding": "gzip"},
            ),
            "text": client.post(
                "/v1/traces", content=body, headers={**AUTH, "content-type": "text/plain"}
            ),
            "no type": client.post("/v1/traces", content=body, headers=AUTH),
            "not JSON": client.post("/v1/traces", content=b"{", headers=JSON),
            "JSON list": client.post("/v1/traces", content=b"[]", headers=JSON),
            "not protobuf": client.post("/v1/traces", content=UNDECODABLE, headers=PROTO),
            "brotli": client.post(
                "/v1/traces", content=body, headers={**JSON, "content-encoding": "br"}
            ),
            "cut gzip": client.post(
                "/v1/traces",
                content=gzip.compress(body)[:-12],
                headers={**JSON, "content-encoding": "gzip"},
            ),
        }
    got = {why: _answer(r) for why, r in answers.items()}
    assert got == {
        "no token": (401, TEXT, "missing or wrong bearer token\n"),
        "wrong token": (401, TEXT, "missing or wrong bearer token\n"),
        "declared too long": (413, TEXT, f"body over {MAX_BODY} bytes\n"),
        "streamed too long": (413, TEXT, f"body over {MAX_BODY} bytes\n"),
        "inflates too long": (413, TEXT, f"decompressed body over {MAX_BODY} bytes\n"),
        "text": (415, TEXT, "unsupported Content-Type 'text/plain'\n"),
        "no type": (415, TEXT, "unsupported Content-Type ''\n"),
        "not JSON": (400, TEXT, got["not JSON"][2]),
        "JSON list": (400, TEXT, "body is not an OTLP JSON object\n"),
        "not protobuf": (400, TEXT, got["not protobuf"][2]),
        "brotli": (400, TEXT, "unsupported Content-Encoding 'br'\n"),
        "cut gzip": (400, TEXT, "truncated gzip body\n"),
    }
    assert got["not JSON"][2].startswith("body is not valid JSON (")
    assert got["not protobuf"][2].startswith("body is not an OTLP protobuf message (")
    assert "Retry-After" not in answers["not JSON"].headers  # a bad body is not retried
    assert _stored(db) == []


def test_media_types_and_encodings_an_exporter_may_send_are_taken(tmp_path: Path) -> None:
    """Content-Type parameters and case, both protobuf media types, gzip under its names:
    each is taken, and answered in the encoding it came in; metrics beside traces."""
    db = tmp_path / "r.duckdb"
    with served(db) as s, httpx.Client(base_url=s.url, timeout=10) as client:
        answers = [
            client.post(
                "/v1/traces",
                content=_json_spans("json charset"),
                headers={**AUTH, "content-type": "Application/JSON; charset=utf-8"},
            ),
            client.post(
                "/v1/traces",
                content=_proto_spans("application/protobuf"),
                headers={**AUTH, "content-type": "application/protobuf"},
            ),
            client.post(
                "/v1/traces",
                content=gzip.compress(_json_spans("x-gzip")),
                headers={**JSON, "content-encoding": "X-GZIP"},
            ),
            client.post(
                "/v1/traces",
                content=_json_spans("identity"),
                headers={**JSON, "content-encoding": "identity"},
            ),
            client.post("/v1/metrics", content=orjson.dumps(GAUGE), headers=JSON),
        ]
    assert [(r.status_code, r.headers["content-type"], r.content) for r in answers] == [
        (200, "application/json", b"{}"),
        (200, "application/x-protobuf", b""),  # an empty ExportTraceServiceResponse
        (200, "application/json", b"{}"),
        (200, "application/json", b"{}"),
        (200, "application/json", b"{}"),
    ]
    assert _stored(db) == ["application/protobuf", "identity", "json charset", "x-gzip"]
    con = connect(db, read_only=True)
    try:
        gauge = con.execute("SELECT MetricName, Value FROM otel_metrics_gauge").fetchall()
    finally:
        con.close()
    assert gauge == [("queue.depth", 1.5)]


def test_full_write_queue_is_429_with_retry_after_and_grpc_unavailable_with_retry_info(
    tmp_path: Path,
) -> None:
    """Back-pressure, as OTLP asks for it: HTTP 429 with Retry-After, gRPC UNAVAILABLE with
    RetryInfo (RESOURCE_EXHAUSTED without it would be a permanent failure: data dropped).
    Once the writer catches up, the same export is taken."""
    db = tmp_path / "r.duckdb"
    with served(db, queue_items=1) as s, httpx.Client(base_url=s.url, timeout=10) as c:
        with writer_held(s.receiver):
            r = c.post("/v1/traces", content=_json_spans("throttled"), headers=JSON)
            busy = (*_answer(r), r.headers.get("retry-after"))
            error = _grpc_error(s.grpc, TRACES, _proto_spans("throttled over gRPC"))
        again = c.post("/v1/traces", content=_json_spans("retried"), headers=JSON)
        with grpc.insecure_channel(s.grpc) as channel:
            call = channel.unary_unary(
                TRACES, response_deserializer=ExportTraceServiceResponse.FromString
            )
            ok = call(_proto_spans("retried over gRPC"), metadata=tuple(AUTH.items()), timeout=10)
    assert busy == (429, TEXT, "write queue full, retry later\n", "1")
    assert (error.code(), error.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        "write queue full, retry later",
    )
    python_reads, status, go_reads = _retry_info(error)
    assert python_reads == go_reads == RetryInfo(retry_delay=Duration(seconds=1))
    assert (status.code, status.message) == (
        grpc.StatusCode.UNAVAILABLE.value[0],
        "write queue full, retry later",
    )
    assert (again.status_code, ok) == (200, ExportTraceServiceResponse())
    assert _stored(db) == ["retried", "retried over gRPC"]


def test_failed_store_write_is_503_and_grpc_unavailable_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    """The store refuses the write (a read-only file): the export is answered retryable,
    with the store's reason, on both transports."""
    db = tmp_path / "r.duckdb"
    connect(db).close()
    with (
        served(db, read_only=True) as s,
        httpx.Client(base_url=s.url, timeout=10) as client,
    ):
        r = client.post("/v1/traces", content=_json_spans("lost"), headers=JSON)
        error = _grpc_error(s.grpc, TRACES, _proto_spans("lost over gRPC"))
    code, content_type, text = _answer(r)
    assert (code, content_type, r.headers.get("retry-after")) == (503, TEXT, "1")
    assert text.startswith("store write failed: ") and "read-only" in text
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details().startswith("store write failed: ")
    python_reads, status, _ = _retry_info(error)
    assert (python_reads.retry_delay.seconds, status.message) == (1, error.details())
    assert _stored(db) == []


def test_grpc_answers_invalid_argument_resource_exhausted_unauthenticated_partial_success(
    tmp_path: Path,
) -> None:
    db = tmp_path / "r.duckdb"
    with served(db) as s:
        undecodable = {
            method: _grpc_error(s.grpc, method, UNDECODABLE) for method in (TRACES, LOGS)
        }
        too_large = _grpc_error(s.grpc, TRACES, _proto_spans("x" * (MAX_BODY + 1)))
        no_token = _grpc_error(s.grpc, TRACES, _proto_spans("no token"), auth=False)
        with grpc.insecure_channel(s.grpc) as channel:
            partial = channel.unary_unary(
                TRACES, response_deserializer=ExportTraceServiceResponse.FromString
            )(_proto_spans("kept", "broken", bad=1), metadata=tuple(AUTH.items()), timeout=10)
            empty_logs = channel.unary_unary(
                LOGS, response_deserializer=ExportLogsServiceResponse.FromString
            )(b"", metadata=tuple(AUTH.items()), timeout=10)
    for error in undecodable.values():
        # Not retryable: the same bytes would fail again.
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("body is not an OTLP protobuf message (")
        assert "grpc-status-details-bin" not in dict(error.trailing_metadata() or ())
    assert too_large.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "google.rpc.retryinfo-bin" not in dict(too_large.trailing_metadata() or ())
    assert (no_token.code(), no_token.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or wrong token",
    )
    assert partial == ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(
            rejected_spans=1,
            error_message=f"{TRACES} request 3 record 2: "
            "spanId is not 16 hex digits (or is all zero)",
        )
    )
    assert empty_logs == ExportLogsServiceResponse()
    assert _stored(db) == ["kept"]
