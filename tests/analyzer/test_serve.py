"""`faultlens serve` / `collect` as real processes on loopback: the real OTel exporters over
OTLP/HTTP and OTLP/gRPC, readers of the held store (the CLI and analyzer.open), the token
on the read API, the state file (a stale one from a killed server), kill -9 with readers
polling, and the webhooks' retry and failure against a local sink."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import faultlens.analyzer as fa
from faultlens.analyzer import connect
from faultlens.analyzer.serve._client import ServedAnalysis, ServedError
from faultlens.analyzer.serve._state import find_server, state_path
from faultlens.analyzer.serve._webhook import Webhooks

TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}
EXE = str(Path(sys.executable).with_name("faultlens"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, db: Path, *, token: str | None = TOKEN) -> None:
        self.db, self.token = db, token
        self.http, self.grpc = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [EXE, "collect", "--db", str(self.db), "--port", str(self.http)]
        argv += ["--otlp-grpc-port", str(self.grpc)]
        if self.token:
            argv += ["--token", self.token]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while find_server(self.db) is None:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            assert time.time() < deadline, "serve did not write its state file"
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) in (0, -signal.SIGTERM)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path / "live.duckdb")
    s.start()
    yield s
    s.kill()


def _provider(exporter) -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": "svc", "faultlens.run": "r"}))
    tp.add_span_processor(BatchSpanProcessor(exporter))
    return tp


def _send(tp: TracerProvider, n: int, tag: str) -> None:
    tracer = tp.get_tracer("t")
    for i in range(n):
        with tracer.start_as_current_span(
            "predict", attributes={"ml.model.name": "fraud", "n": f"{tag}-{i}"}
        ):
            pass
    assert tp.force_flush(30_000)
    tp.shutdown()


def test_http_and_grpc_exporters_readers_and_token(served: Served, monkeypatch) -> None:
    http = _provider(HttpSpanExporter(endpoint=f"{served.url}/v1/traces", headers=AUTH))
    grpc = _provider(
        GrpcSpanExporter(
            endpoint=f"127.0.0.1:{served.grpc}", insecure=True, headers=tuple(AUTH.items())
        )
    )
    _send(http, 300, "http")
    _send(grpc, 200, "grpc")
    # A gRPC export without the token is refused (UNAUTHENTICATED): the count below is 500.
    bad = _provider(GrpcSpanExporter(endpoint=f"127.0.0.1:{served.grpc}", insecure=True))
    with bad.get_tracer("t").start_as_current_span("predict", attributes={"n": "nope"}):
        pass
    bad.force_flush(10_000)
    bad.shutdown()

    # The API: 401 without the token, the incidents contract with it.
    with httpx.Client(base_url=served.url, timeout=30) as client:
        assert client.get("/api/incidents").status_code == 401
        assert client.get("/api/incidents", headers=AUTH).json() == {"incidents": []}
        health = client.get("/api/health", headers=AUTH).json()
        assert health["commits"] >= 2
        assert client.get("/api/incidents?last=nonsense", headers=AUTH).status_code == 400

    # Readers while the server holds the store: no lock error.
    monkeypatch.setenv("FAULTLENS_TOKEN", TOKEN)
    out = subprocess.run(
        [EXE, "incidents", "--db", str(served.db), "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "FAULTLENS_TOKEN": TOKEN},
        timeout=120,
    )
    assert (out.returncode, json.loads(out.stdout)) == (0, {"incidents": []}), out.stderr
    no_token = subprocess.run(
        [EXE, "incidents", "--db", str(served.db)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "FAULTLENS_TOKEN"},
        timeout=120,
    )
    assert no_token.returncode == 1
    assert no_token.stderr.strip() == (
        f"error: faultlens serve at {served.url} (pid {served.proc.pid}) requires its token: "
        "set FAULTLENS_TOKEN"
    )
    a = fa.open(str(served.db))
    assert isinstance(a, ServedAnalysis)
    runs = a.runs()
    assert (list(runs.run), list(runs.spans)) == (["r"], [500])
    assert a.incidents() == [] and a.incidents_frame().empty
    with pytest.raises(AttributeError, match=f"faultlens serve at {served.url}"):
        a.con  # noqa: B018 - what the server cannot answer is one line naming it

    served.stop()
    assert not state_path(served.db).exists()
    con = connect(served.db, read_only=True)
    assert con.execute(
        "SELECT count(*), count(DISTINCT SpanAttributes['n']) FROM otel_traces"
    ).fetchone() == (500, 500)
    assert con.execute(
        "SELECT count(*) FILTER (WHERE SpanAttributes['n'] LIKE 'grpc-%') FROM otel_traces"
    ).fetchone() == (200,)


def test_stale_state_file_of_a_killed_server_is_ignored_and_replaced(tmp_path: Path) -> None:
    first = Served(tmp_path / "s.duckdb", token=None)
    first.start()
    dead_pid = first.proc.pid
    first.kill()  # SIGKILL: the state file stays behind
    assert json.loads(state_path(first.db).read_text())["pid"] == dead_pid
    assert find_server(first.db) is None
    # A reader opens the file itself; a new server replaces the stale file.
    assert fa.open(str(first.db)).runs().empty
    second = Served(first.db, token=None)
    second.start()
    try:
        info = find_server(first.db)
        assert info is not None and (info.pid, info.url) == (second.proc.pid, second.url)
        assert isinstance(fa.open(str(first.db)), ServedAnalysis)
    finally:
        second.stop()
    assert find_server(first.db) is None


def test_kill_9_with_readers_polling_keeps_every_acknowledged_span(tmp_path: Path) -> None:
    s = Served(tmp_path / "k.duckdb", token=None)
    s.start()
    acked: list[str] = []
    stop = threading.Event()
    errors: list[str] = []

    def poll() -> None:
        a = fa.open(str(s.db))
        while not stop.is_set():
            try:
                a.runs()
            except ServedError as exc:  # the server was killed under the reader
                if "does not answer" not in str(exc):
                    errors.append(str(exc))
                return
            time.sleep(0.05)

    readers = [threading.Thread(target=poll) for _ in range(2)]
    for r in readers:
        r.start()
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [{"spans": []}],
            }
        ]
    }
    with httpx.Client(base_url=s.url, timeout=10) as client:
        for i in range(1, 400):
            span_id = f"{i:016x}"
            body["resourceSpans"][0]["scopeSpans"][0]["spans"] = [
                {
                    "traceId": f"{i:032x}",
                    "spanId": span_id,
                    "name": "s",
                    "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
                    "endTimeUnixNano": str(1_700_000_000_000_000_100 + i),
                }
            ]
            if i == 200:
                s.proc.kill()  # SIGKILL mid-stream, readers still polling
            try:
                r = client.post(
                    "/v1/traces", json=body, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError:
                break
            if r.status_code == 200:
                acked.append(span_id)
    s.proc.wait()
    stop.set()
    for r in readers:
        r.join(30)
    assert errors == []
    assert len(acked) >= 150
    restarted = Served(s.db, token=None)
    restarted.start()  # the stale state file is replaced, the store reopens
    try:
        stored = set(fa.open(str(s.db)).spans(limit=10_000).span_id)
    finally:
        restarted.stop()
    assert set(acked) <= stored


class _Sink(BaseHTTPRequestHandler):
    fail_first = 0
    received: list[dict] = []
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if type(self).calls <= type(self).fail_first:
            self.send_response(503)
        else:
            type(self).received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhook_retries_then_delivers_and_a_dead_one_is_one_log_line() -> None:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    _Sink.fail_first, _Sink.received, _Sink.calls = 2, [], 0
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    dead = f"http://127.0.0.1:{_free_port()}/nobody"
    lines: list[str] = []
    hooks = Webhooks(
        [f"http://127.0.0.1:{sink.server_port}/page", dead],
        attempts=3,
        backoff_s=0.05,
        log=lines.append,
    )
    body = {"event": "opened", "incident": {"id": "r-20260101T000000Z", "culprit": {}}}
    started = time.monotonic()
    hooks.post(body)
    assert time.monotonic() - started < 0.5  # posting never waits for a delivery
    hooks.close(grace_s=20)
    sink.shutdown()
    assert (_Sink.calls, _Sink.received) == (3, [body])  # two 503s, then delivered
    assert hooks.delivered == 1 and hooks.failed == 1
    assert len(lines) == 1
    assert lines[0].startswith(
        f"faultlens serve: webhook {dead}: opened of r-20260101T000000Z not delivered after 3 tries"
    )
