"""A monolith serving four models, over real HTTP: identity on every span and log record."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from faultlens.instrumentation import instrument_app, model

FRAUD = {
    "ml.model.name": "fraud",
    "ml.model.version": "1.4.2",
    "ml.model.framework": "sklearn",
    "ml.model.framework.version": "1.6.1",
}
CHURN = {"ml.model.name": "churn", "ml.model.version": "2.0.0", "ml.model.framework": "xgboost"}
RANKER = {
    "ml.model.name": "ranker",
    "ml.model.version": "0.9.1",
    "ml.model.framework": "torch",
    "ml.model.framework.version": "2.5.0",
}
EMBEDDER = {"ml.model.name": "embedder", "ml.model.version": "3.1.0"}
IDENTITIES = {i["ml.model.name"]: i for i in (FRAUD, CHURN, RANKER, EMBEDDER)}

fraud = model("fraud", version="1.4.2", framework="sklearn", framework_version="1.6.1")
churn = model("churn", version="2.0.0", framework="xgboost")
ranker = model("ranker", version="0.9.1", framework="torch", framework_version="2.5.0")
embedder = model("embedder", version="3.1.0")

tracer = trace.get_tracer("tests.monolith")
log = logging.getLogger("tests.monolith")
pool = ThreadPoolExecutor(max_workers=2)


@fraud
async def score_fraud() -> float:
    with tracer.start_as_current_span("fraud.features"):
        await asyncio.sleep(0.01)
    log.warning("fraud scored")
    return 0.1


@churn
async def score_churn(base_url: str) -> float:
    with tracer.start_as_current_span("churn.features"):
        await asyncio.sleep(0.005)
        # an httpx call inside a scope: the client span carries churn; the server span
        # it reaches (same trace, through traceparent) carries nothing
        async with httpx.AsyncClient() as client:
            await client.get(f"{base_url}/health")
    return 0.2


@ranker
def rank() -> float:
    with tracer.start_as_current_span("ranker.sort"):
        time.sleep(0.002)
    with embedder, tracer.start_as_current_span("embedder.lookup"):
        log.warning("embedded")
    log.warning("ranked")
    return 0.3


def untraced_work() -> None:
    with tracer.start_as_current_span("pool.without_context"):
        pass


@churn
async def fail(error: Exception) -> None:
    await asyncio.sleep(0)
    raise error


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/score")
    async def score(request_base: str) -> dict[str, float]:
        with tracer.start_as_current_span("load.request"):
            pass
        a, b = await asyncio.gather(score_fraud(), score_churn(request_base))
        c = await asyncio.to_thread(rank)
        ctx = contextvars.copy_context()
        d = await asyncio.wrap_future(pool.submit(ctx.run, rank))
        with fraud:
            # a raw submit copies no context: that span has no parent and no identity
            await asyncio.wrap_future(pool.submit(untraced_work))
        log.warning("request done")
        return {"score": a + b + c + d}

    @app.post("/sync")
    def sync_endpoint() -> dict[str, str]:
        with fraud, tracer.start_as_current_span("sync.work"):
            pass
        return {"ok": "yes"}

    @app.post("/fail")
    async def fail_endpoint() -> JSONResponse:
        error = ValueError("bad input shape")
        try:
            await fail(error)
        except ValueError as caught:
            return JSONResponse({"same_exception": caught is error}, status_code=500)
        return JSONResponse({"same_exception": False})

    instrument_app(app)
    return app


def _model_of(span, by_id):
    """The model scope a span sits under: the nearest `predict X` span at or above it,
    within one request (identity does not travel over HTTP: a server span is a boundary)."""
    while span is not None:
        if span.name.startswith("predict ") and span.instrumentation_scope.name == (
            "faultlens.instrumentation"
        ):
            return span.name.removeprefix("predict ")
        if span.kind is SpanKind.SERVER:
            return None
        parent = span.parent.span_id if span.parent else None
        span = by_id.get(parent)
    return None


def _under(span, ancestor, by_id) -> bool:
    while span is not None:
        if span.parent is not None and span.parent.span_id == ancestor.context.span_id:
            return True
        span = by_id.get(span.parent.span_id) if span.parent else None
    return False


def _identity(attributes) -> dict[str, str]:
    return {k: v for k, v in attributes.items() if k.startswith("ml.model.")}


def _server_span(telemetry, route: str, trace_id: int | None = None):
    def wanted(s):
        return (
            s.kind is SpanKind.SERVER
            and s.attributes.get("http.route") == route
            and (trace_id is None or s.context.trace_id == trace_id)
        )

    return telemetry.wait_for_span(wanted)


@pytest.fixture(scope="module")
def base_url(telemetry, serve):
    with serve(make_app()) as url:
        yield url


def test_every_span_under_a_scope_carries_exactly_that_model(telemetry, base_url) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            calls = [
                client.post(f"{base_url}/score", params={"request_base": base_url})
                for _ in range(4)
            ]
            return await asyncio.gather(*calls)

    telemetry.spans.clear()
    telemetry.logs.clear()
    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 4
    servers = telemetry.wait_for_span(
        lambda s: s.kind is SpanKind.SERVER and s.attributes.get("http.route") == "/score"
    )
    deadline = time.monotonic() + 5
    while len(servers) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
        servers = _server_span(telemetry, "/score")
    assert len(servers) == 4
    assert len({s.context.trace_id for s in servers}) == 4
    finished = telemetry.spans.get_finished_spans()

    for server in servers:
        assert list(server.attributes["faultlens.models"]) == [
            "churn",
            "embedder",
            "fraud",
            "ranker",
        ]
        in_trace = [s for s in finished if s.context.trace_id == server.context.trace_id]
        by_id = {s.context.span_id: s for s in in_trace}
        for span in in_trace:
            scope = _model_of(span, by_id)
            expected = IDENTITIES[scope] if scope else {}
            assert _identity(span.attributes) == expected, span.name

        named = sorted(
            (s.name, _model_of(s, by_id))
            for s in in_trace
            if s.instrumentation_scope.name in ("tests.monolith", "faultlens.instrumentation")
        )
        assert named == [
            ("churn.features", "churn"),
            ("embedder.lookup", "embedder"),
            ("embedder.lookup", "embedder"),
            ("fraud.features", "fraud"),
            ("load.request", None),
            ("predict churn", "churn"),
            ("predict embedder", "embedder"),
            ("predict embedder", "embedder"),
            ("predict fraud", "fraud"),
            ("predict fraud", "fraud"),
            ("predict ranker", "ranker"),
            ("predict ranker", "ranker"),
            ("ranker.sort", "ranker"),
            ("ranker.sort", "ranker"),
        ]
        # the httpx client span under churn is tagged; the /health server span it reached
        # (same trace, other request) carries no identity and ran no model
        client = [s for s in in_trace if s.kind is SpanKind.CLIENT and _under(s, server, by_id)]
        assert [_identity(s.attributes) for s in client] == [CHURN]
        health = [s for s in in_trace if s.attributes.get("http.route") == "/health"]
        assert [(s.kind, _identity(s.attributes)) for s in health] == [(SpanKind.SERVER, {})]
        assert list(health[0].attributes["faultlens.models"]) == []

        logs = [
            r.log_record
            for r in telemetry.logs.get_finished_logs()
            if r.log_record.trace_id == server.context.trace_id
        ]
        tagged = sorted((str(r.body), _identity(r.attributes).get("ml.model.name")) for r in logs)
        assert tagged == [
            ("embedded", "embedder"),
            ("embedded", "embedder"),
            ("fraud scored", "fraud"),
            ("ranked", "ranker"),
            ("ranked", "ranker"),
            ("request done", None),
        ]
        for record in logs:
            name = _identity(record.attributes).get("ml.model.name")
            assert _identity(record.attributes) == (IDENTITIES[name] if name else {})
            assert by_id[record.span_id].context.trace_id == server.context.trace_id

    # the documented gap: ThreadPoolExecutor.submit without copy_context loses everything
    orphans = [s for s in finished if s.name == "pool.without_context"]
    assert len(orphans) == 4
    assert all(s.parent is None and _identity(s.attributes) == {} for s in orphans)


def test_sync_endpoint_runs_in_a_context_copying_pool(telemetry, base_url) -> None:
    response = httpx.post(f"{base_url}/sync", timeout=10)
    assert response.status_code == 200
    (server,) = _server_span(telemetry, "/sync")
    assert list(server.attributes["faultlens.models"]) == ["fraud"]
    (work,) = [
        s
        for s in telemetry.spans.get_finished_spans()
        if s.name == "sync.work" and s.context.trace_id == server.context.trace_id
    ]
    assert _identity(work.attributes) == FRAUD
    assert _identity(server.attributes) == {}


def test_exception_is_recorded_on_the_model_span_and_reraised(telemetry, base_url) -> None:
    response = httpx.post(f"{base_url}/fail", timeout=10)
    assert (response.status_code, response.json()) == (500, {"same_exception": True})
    (server,) = _server_span(telemetry, "/fail")
    assert list(server.attributes["faultlens.models"]) == ["churn"]
    (predict,) = [
        s
        for s in telemetry.spans.get_finished_spans()
        if s.name == "predict churn" and s.context.trace_id == server.context.trace_id
    ]
    assert (predict.status.status_code, predict.status.description) == (
        StatusCode.ERROR,
        "ValueError: bad input shape",
    )
    events = [(e.name, e.attributes["exception.type"]) for e in predict.events]
    assert events == [("exception", "ValueError")]
    assert events and predict.events[0].attributes["exception.message"] == "bad input shape"
    assert _identity(predict.attributes) == CHURN
