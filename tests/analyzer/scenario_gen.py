"""Generated fault scenarios with ground truth, written through the OpenTelemetry SDK.

``generate(seed, out_dir)`` draws a system and a fault from ``seed``
(:mod:`scenario_topology`), runs it (:mod:`scenario_sim`) and writes what its services'
SDKs would export: each span is started and ended through a ``TracerProvider`` of its
process (resource ``service.name``, ``service.instance.id``, ``service.version``,
``faultlens.run``) with explicit timestamps, so a five-minute scenario takes well under a
second; the in-memory exporter's spans and log records are then encoded by the SDK's own
OTLP protobuf encoders, as the OTLP/HTTP exporter sends them (``traces.binpb``,
``logs.binpb``: a third less CPU than OTLP JSON to write and to read back), and the truth
beside them (``truth.json``). ``ingest`` loads them into a DuckDB file with
``faultlens.analyzer.ingest``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

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
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode
from scenario_sim import SLO_MS, Rec, Sim, truth
from scenario_topology import KINDS, Scenario, draw

import faultlens.analyzer as fa

__all__ = ["KINDS", "SLO_MS", "draw", "generate", "ingest", "write"]


class _SeededIds(IdGenerator):
    """Trace and span ids from the scenario's seed: the same seed writes the same files."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) or 1


class _Writer:
    """One TracerProvider and LoggerProvider per process (service and instance)."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.spans = InMemorySpanExporter()
        self.logs = InMemoryLogRecordExporter()
        self.ids = _SeededIds(random.Random(sc.seed))
        self.tracers: dict[tuple[str, int], trace.Tracer] = {}
        self.loggers: dict[tuple[str, int], object] = {}
        self.release: dict[str, int] = {}  # service -> instance that runs the bad release
        f = sc.fault
        if f is not None and f.kind == "bad_release":
            self.release[f.service] = 1

    def _resource(self, service: str, instance: int) -> Resource:
        version = "1.1.0" if self.release.get(service) == instance else "1.0.0"
        return Resource.create(
            {
                "service.name": service,
                "service.instance.id": f"{service}-{self.sc.seed}-{instance}",
                "service.version": version,
                "faultlens.run": self.sc.run,
            }
        )

    def tracer(self, service: str, instance: int) -> trace.Tracer:
        key = (service, instance)
        if key not in self.tracers:
            p = TracerProvider(
                resource=self._resource(service, instance),
                id_generator=self.ids,
                shutdown_on_exit=False,
            )
            p.add_span_processor(SimpleSpanProcessor(self.spans))
            self.tracers[key] = p.get_tracer("scenario")
        return self.tracers[key]

    def logger(self, service: str, instance: int):
        key = (service, instance)
        if key not in self.loggers:
            p = LoggerProvider(resource=self._resource(service, instance), shutdown_on_exit=False)
            p.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
            self.loggers[key] = p.get_logger("scenario")
        return self.loggers[key]

    def emit(self, rec: Rec, ctx=None) -> trace.Span | None:
        if rec.service in self.sc.uninstrumented:
            return None  # it records nothing: the test's are dependencies, which call none
        skew = self.sc.skew_ns.get(rec.service, 0)
        span = self.tracer(rec.service, rec.instance).start_span(
            rec.name, context=ctx, kind=rec.kind, attributes=rec.attrs, start_time=rec.start + skew
        )
        inner = trace.set_span_in_context(span)
        for child in rec.children:
            self.emit(child, inner)
        for ts, severity, body, model, version in rec.logs:
            self.log(rec.service, rec.instance, ts, severity, body, model, version, inner)
        if rec.error:
            span.set_status(Status(StatusCode.ERROR, rec.error))
        span.end(end_time=rec.end + skew)
        return span

    def log(self, service, instance, ts, severity, body, model, version, ctx=None) -> None:
        attrs = {}
        if model:
            attrs["ml.model.name"] = model
        if version:
            attrs["ml.model.version"] = version
        t = ts + self.sc.skew_ns.get(service, 0)
        self.logger(service, instance).emit(
            LogRecord(
                timestamp=t,
                observed_timestamp=t,
                context=ctx,
                severity_number=SeverityNumber(severity),
                body=body,
                attributes=attrs,
            )
        )


def write(sc: Scenario, out: Path) -> dict:
    """Run ``sc`` and write traces.binpb, logs.binpb and truth.json into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    runner = Sim(sc)
    requests = runner.requests()
    w = _Writer(sc)
    ids = [format(w.emit(r.root).get_span_context().trace_id, "032x") for r in requests]
    for service, instance, ts, severity, body, model, version in runner.loose_logs:
        w.log(service, instance, ts, severity, body, model, version)
    for path in (out / "traces.binpb", out / "logs.binpb"):
        path.unlink(missing_ok=True)
    spans = encode_spans(w.spans.get_finished_spans())
    (out / "traces.binpb").write_bytes(spans.SerializeToString())
    records = w.logs.get_finished_logs()
    if records:
        (out / "logs.binpb").write_bytes(encode_logs(records).SerializeToString())
    t = truth(sc, requests)
    for row, trace_id in zip(t["requests"], ids, strict=True):
        row["trace_id"] = trace_id
    (out / "truth.json").write_text(json.dumps(t, indent=None, separators=(",", ":")))
    return t


def generate(seed: int, out: Path, *, kind: str | None = "random") -> tuple[Scenario, dict]:
    sc = draw(seed, kind=kind)
    return sc, write(sc, out)


def ingest(out: Path, db: Path) -> Path:
    files = [p for p in (out / "traces.binpb", out / "logs.binpb") if p.exists()]
    fa.ingest(files, db=db)
    return db
