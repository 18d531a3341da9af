"""The load generator: a seeded traffic mix at a fixed rate, every outcome recorded.

Open loop (a request starts on schedule whether or not earlier ones have
answered), bounded by a client timeout and a cap on requests in flight.

Every request is a CLIENT span of service ``loadgen``, recorded by the real
OpenTelemetry SDK on a tracer provider of its own (never the global one: the
tests run scenarios in-process) and propagated with the W3C ``traceparent``.
So each request's trace starts at the client, as behind a real ingress: a
request that a dead process refused, or that waited behind a GIL-holding
hog before its server span began, still shows its whole client-side latency
and its failure. The span covers exactly what ``latency_ms`` measures.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._models import ENDPOINTS, RARE_WORDS, VOCABULARY

CLIENT_TIMEOUT_S = 4.0
MAX_IN_FLIGHT = 100
CLIENT_SERVICE = "loadgen"
_SCOPE = "faultlens.sample_traces.loadgen"
_PROPAGATOR = TraceContextTextMapPropagator()


def client_tracer_provider(
    resource_attributes: dict[str, str],
    *,
    file_dir: str | os.PathLike[str] | None = None,
    otlp_endpoint: str | None = None,
) -> TracerProvider:
    """A tracer provider for the load generator's spans, not installed globally.

    It exports as the services do: OTLP JSON Lines into ``file_dir``
    (``traces-loadgen-{pid}.jsonl``), or OTLP/HTTP to ``otlp_endpoint``. The
    caller shuts it down (which flushes) when the load is over.
    """
    resource = Resource.create(
        {
            **resource_attributes,
            "service.name": CLIENT_SERVICE,
            "service.instance.id": uuid.uuid4().hex,
            "service.version": version("faultlens"),
        }
    )
    exporter: SpanExporter
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces")
    elif file_dir is not None:
        from opentelemetry.exporter.otlp.json.file import FileSpanExporter

        directory = Path(file_dir)
        directory.mkdir(parents=True, exist_ok=True)
        exporter = FileSpanExporter(directory / f"traces-{CLIENT_SERVICE}-{os.getpid()}.jsonl")
    else:
        raise ValueError("client_tracer_provider needs file_dir or otlp_endpoint")
    provider = TracerProvider(resource=resource)
    # Explicit batch settings: the runner's own OTEL_BSP_* environment is not the run's.
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=8192,
            schedule_delay_millis=1000,
            max_export_batch_size=512,
            export_timeout_millis=10_000,
        )
    )
    return provider


def payload(endpoint: str, rng: random.Random) -> dict[str, Any]:
    """A request body for an endpoint; ~30% of texts hold a word the tokenizer never saw."""
    user = f"u{rng.randrange(500)}"
    if endpoint in ("/sentiment", "/search"):
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(3, 8))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(RARE_WORDS))
        return {"text": " ".join(words), "user": user}
    return {
        "user": user,
        "amount": round(rng.lognormvariate(3.5, 1.0), 2),
        "foreign": int(rng.random() < 0.1),
    }


async def generate(
    base_url: str,
    *,
    rate: float,
    seconds: float,
    seed: int,
    start_ns: int,
    tracer_provider: TracerProvider,
) -> list[dict[str, Any]]:
    """Send ``rate * seconds`` requests from ``start_ns`` on; return one record per request.

    Each request is one CLIENT span from ``tracer_provider``; its trace id is the record's.
    """
    if not base_url.startswith(("http://127.0.0.1", "http://localhost")):
        raise ValueError(f"the load generator only targets loopback, not {base_url}")
    rng = random.Random(seed)
    endpoints = list(ENDPOINTS)
    records: list[dict[str, Any]] = []
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=20)
    tracer = tracer_provider.get_tracer(_SCOPE, version("faultlens"))
    server = urlsplit(base_url)

    async def one(client: httpx.AsyncClient, endpoint: str, body: dict[str, Any]) -> None:
        result: dict[str, Any] = {}
        url = f"{base_url}{endpoint}"
        # Waiting for a slot is the load generator's own limit, not the system's latency:
        # the span and latency_ms both start once the request may go (t0).
        async with slots:
            t0 = time.time_ns()
            span = tracer.start_span(
                f"POST {endpoint}",
                kind=SpanKind.CLIENT,
                start_time=t0,
                attributes={
                    "http.request.method": "POST",
                    "url.full": url,
                    "url.template": endpoint,
                    "server.address": server.hostname or "",
                    "server.port": server.port or 80,
                },
            )
            headers: dict[str, str] = {}
            _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
            try:
                # This span is the HTTP client span: an httpx instrumentation installed in
                # the same process (instrument_app does it) must neither add its own nor
                # replace the traceparent.
                with (
                    trace.use_span(span, record_exception=False, set_status_on_exception=False),
                    suppress_http_instrumentation(),
                ):
                    r = await client.post(url, json=body, headers=headers)
                result.update(status=r.status_code, error=None if r.is_success else r.text[:200])
                span.set_attribute("http.response.status_code", r.status_code)
                if r.status_code >= 400:  # HTTP client conventions: 4xx and 5xx are errors
                    span.set_attribute("error.type", str(r.status_code))
                    span.set_status(StatusCode.ERROR)
            except httpx.HTTPError as exc:
                result.update(status=0, error=f"{type(exc).__name__}: {exc}"[:200])
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200])
            finally:
                t1 = time.time_ns()
                span.end(end_time=t1)
        records.append(
            {
                "trace_id": format(span.get_span_context().trace_id, "032x"),
                "endpoint": endpoint,
                **result,
                "start_ns": t0,
                "latency_ms": round((t1 - t0) / 1e6, 3),
                "outcome": "ok" if result["status"] == 200 else "error",
                "models": list(ENDPOINTS[endpoint]),
            }
        )

    n = int(rate * seconds)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, limits=limits) as client:
        tasks = []
        for i in range(n):
            delay = (start_ns + int(i * 1e9 / rate) - time.time_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            endpoint = rng.choice(endpoints)
            tasks.append(asyncio.create_task(one(client, endpoint, payload(endpoint, rng))))
        await asyncio.gather(*tasks)
    records.sort(key=lambda r: r["start_ns"])
    return records
