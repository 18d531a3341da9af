"""Build the few spans (and log records) a unit test needs through the real OTel SDK,
then ingest them.

Each service gets its own TracerProvider (its own resource: service.name,
service.instance.id, faultlens.run) and an in-memory exporter; the finished
spans are encoded as OTLP protobuf, written to a file and loaded with
``faultlens.analyzer.ingest``, the path real data takes.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from faultlens.analyzer import ingest

T0 = 1_800_000_000 * 10**9  # a fixed wall clock, 5 s aligned
MS = 10**6


class System:
    """Services of one run; ``call`` nests spans with explicit times."""

    def __init__(self, run: str = "unit/run") -> None:
        self.run = run
        self.exporter = InMemorySpanExporter()
        self.log_exporter = InMemoryLogRecordExporter()
        self._providers: dict[tuple[str, str], TracerProvider] = {}
        self._log_providers: dict[tuple[str, str], LoggerProvider] = {}

    def _resource(self, service: str, instance: str) -> Resource:
        return Resource.create(
            {
                "service.name": service,
                "service.instance.id": f"{service}-{instance}",
                "faultlens.run": self.run,
            }
        )

    def tracer(self, service: str, instance: str = "i1") -> trace.Tracer:
        key = (service, instance)
        if key not in self._providers:
            p = TracerProvider(resource=self._resource(service, instance))
            p.add_span_processor(SimpleSpanProcessor(self.exporter))
            self._providers[key] = p
        return self._providers[key].get_tracer("unit")

    @contextmanager
    def span(
        self,
        service: str,
        name: str,
        *,
        start: int,
        dur_ms: float,
        kind: SpanKind = SpanKind.INTERNAL,
        model: str | None = None,
        version: str | None = None,
        error: bool = False,
        instance: str = "i1",
        attrs: dict[str, Any] | None = None,
    ) -> Iterator[Any]:
        a = dict(attrs or {})
        if model:
            a["ml.model.name"] = model
        if version:
            a["ml.model.version"] = version
        s = self.tracer(service, instance).start_span(
            name, kind=kind, start_time=start, attributes=a
        )
        with trace.use_span(s, end_on_exit=False):
            yield s
        if error:
            s.set_status(Status(StatusCode.ERROR, "boom"))
        s.end(end_time=start + int(dur_ms * MS))

    def log(
        self,
        service: str,
        body: str,
        *,
        ts: int,
        severity: int,
        model: str | None = None,
        instance: str = "i1",
    ) -> None:
        """One log record at ``ts`` (ns) with ``severity`` (SeverityNumber's value)."""
        key = (service, instance)
        if key not in self._log_providers:
            p = LoggerProvider(resource=self._resource(service, instance))
            p.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
            self._log_providers[key] = p
        self._log_providers[key].get_logger("unit").emit(
            LogRecord(
                timestamp=ts,
                observed_timestamp=ts,
                severity_number=SeverityNumber(severity),
                body=body,
                attributes={"ml.model.name": model} if model else {},
            )
        )

    def ingest(self, tmp: Path, db: Path | str) -> None:
        n = len(list(tmp.glob("spans-*")))
        paths = [tmp / f"spans-{n}.pb"]
        paths[0].write_bytes(encode_spans(self.exporter.get_finished_spans()).SerializeToString())
        records = self.log_exporter.get_finished_logs()
        if records:
            paths.append(tmp / f"logs-{n}.pb")
            paths[1].write_bytes(encode_logs(records).SerializeToString())
        ingest(paths, db=db)


class SharedSpanId(RandomIdGenerator):
    """Random trace ids, one span id: span ids are unique only within their trace (and
    64 random bits do collide across traces at volume)."""

    def generate_span_id(self) -> int:
        return 0x00F067AA0BA902B7


def shared_span_id_spans(n: int = 3) -> list:
    """``n`` traces of one span each, all with the same span id, in time order."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "monolith"}), id_generator=SharedSpanId()
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for i in range(n):
        with provider.get_tracer("t").start_as_current_span(f"request {i}"):
            pass
    provider.shutdown()
    spans = list(exporter.get_finished_spans())
    assert len({s.context.trace_id for s in spans}) == n
    assert {s.context.span_id for s in spans} == {0x00F067AA0BA902B7}
    return spans


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def collect_process(db: Path, *flags: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``faultlens collect`` on loopback writing ``db``: (its URL, the process),
    once it accepts connections; killed on the way out if still running."""
    port = free_port()
    exe = Path(sys.executable).with_name("faultlens")
    proc = subprocess.Popen(
        # No OTLP/gRPC unless asked for: its default port, 4317, is one for the whole
        # machine, and two tests (or two mutants) at once would fight over it.
        [
            str(exe),
            "collect",
            "--db",
            str(db),
            "--port",
            str(port),
            "--otlp-grpc-port",
            "0",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM and wait: uvicorn re-raises the signal once it has shut down (and the writer
    has flushed)."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
