"""Real parts for the instrumentation tests: SDK providers with in-memory exporters, and
uvicorn serving a FastAPI app over real HTTP on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from faultlens.instrumentation import configure


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter

    def wait_for_span(self, predicate: Callable[[ReadableSpan], bool], timeout: float = 5.0):
        """The server span ends just after the response is sent: wait for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.spans.get_finished_spans() if predicate(s)]
            if found:
                return found
            time.sleep(0.01)
        raise AssertionError("span not exported in time")


@pytest.fixture(scope="session")
def telemetry() -> Telemetry:
    """Providers set up first, as a platform would; `configure` then adds its processors."""
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, TracerProvider):
        tracer_provider = TracerProvider(resource=Resource.create({"service.name": "monolith"}))
        trace.set_tracer_provider(tracer_provider)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = _logs.get_logger_provider()
    if not isinstance(logger_provider, LoggerProvider):
        logger_provider = LoggerProvider(resource=tracer_provider.resource)
        _logs.set_logger_provider(logger_provider)
    # registered before configure: configure must still put its stamping processor first
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tolerate an earlier configure
        configure("monolith", layout="monolith")
    return Telemetry(spans, logs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on 127.0.0.1; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(name="serve", scope="session")
def serve_fixture() -> Callable[[object], contextlib.AbstractContextManager[str]]:
    return serve


@pytest.fixture(name="free_port", scope="session")
def free_port_fixture() -> Callable[[], int]:
    return free_port
