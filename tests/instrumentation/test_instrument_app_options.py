"""`instrument_app` hands FastAPIInstrumentor's own options on (real HTTP, in-memory export)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from faultlens.instrumentation import instrument_app, model


def _app(path: str) -> FastAPI:
    app = FastAPI()

    @app.get(path)
    async def predict() -> dict[str, float]:
        with model("fraud", version="1.4.2"):
            return {"score": 0.1}

    return app


def _spans_of(telemetry, serve, app: FastAPI, path: str) -> list[str]:
    with serve(app) as base:
        response = httpx.get(f"{base}{path}")
        assert response.status_code == 200
        (server,) = telemetry.wait_for_span(
            lambda s: s.attributes.get("http.route") == path and s.kind is SpanKind.SERVER
        )
    trace_id = server.context.trace_id
    # the test's own httpx call is traced too (instrument_app instruments httpx): leave
    # the client span out, keep what the server recorded
    return sorted(
        s.name
        for s in telemetry.spans.get_finished_spans()
        if s.context.trace_id == trace_id and s.kind is not SpanKind.CLIENT
    )


def test_exclude_spans_reaches_the_fastapi_instrumentation(telemetry, serve) -> None:
    plain = _spans_of(telemetry, serve, _app_with(instrument_app, "/plain"), "/plain")
    lean = _spans_of(
        telemetry,
        serve,
        _app_with(instrument_app, "/lean", exclude_spans=["receive", "send"]),
        "/lean",
    )
    assert lean == ["GET /lean", "predict fraud"]
    assert plain == ["GET /plain", "GET /plain http send", "GET /plain http send", "predict fraud"]


def _app_with(instrument, path: str, **options) -> FastAPI:
    app = _app(path)
    instrument(app, **options)
    return app
