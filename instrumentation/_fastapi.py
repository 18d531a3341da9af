"""`instrument_app`: FastAPI server spans, `faultlens.models` per request, httpx propagation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from ._configure import configured_default, export_metrics_now
from ._identity import (
    IDENTITY_KEY,
    REQUEST_MODELS,
    REQUEST_MODELS_KEY,
    ModelIdentity,
    model,
    resolve_model,
)

_logger = logging.getLogger("faultlens.instrumentation")

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def instrument_app(
    app: Any, *, default_model: str | model | None = None, **fastapi_options: Any
) -> None:
    """Instrument a FastAPI app; see the package docstring.

    ``fastapi_options`` (``excluded_urls``, ``exclude_spans``, ...) go to
    ``FastAPIInstrumentor.instrument_app`` when faultlens instruments the app itself.
    """
    if getattr(app, "_faultlens_instrumented", False):
        _logger.warning("faultlens: instrument_app called twice on the same app; ignored")
        return
    if not hasattr(app, "add_middleware") or not hasattr(app, "build_middleware_stack"):
        _logger.warning("faultlens: %s is not a FastAPI app; skipped", type(app).__name__)
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FastAPIInstrumentor.instrument_app(app, **fastapi_options)
    elif fastapi_options:
        _logger.warning(
            "faultlens: %s was already instrumented; options %s not applied",
            type(app).__name__,
            sorted(fastapi_options),
        )
    # FastAPIInstrumentor wraps the whole middleware stack, so this middleware runs inside
    # the server span and can still write to it before it ends.
    app.add_middleware(_RequestModelsMiddleware, default=resolve_model(default_model))
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    app._faultlens_instrumented = True


class _RequestModelsMiddleware:
    """Collect the models that run under a request; record them on the server span."""

    def __init__(self, app: Callable[..., Awaitable[None]], default: ModelIdentity | None) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope.get("type") == "lifespan":
            await self.app(scope, receive, _exporting_metrics_when_ready(send))
            return
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        server_span = trace.get_current_span()
        default = self.default or configured_default()
        seen: set[str] = set()
        ctx = otel_context.set_value(REQUEST_MODELS_KEY, seen)
        if default is not None:
            seen.add(default.name)
            if self.default is not None:
                ctx = otel_context.set_value(IDENTITY_KEY, self.default, ctx)
                _stamp(server_span, self.default)

        async def send_recording_models(message: MutableMapping[str, Any]) -> None:
            # The ASGI instrumentation ends the server span as soon as the last body
            # chunk is sent, before this middleware returns: record the models first.
            if _is_last(message) and server_span.is_recording():
                server_span.set_attribute(REQUEST_MODELS, sorted(seen))
            await send(message)

        token = otel_context.attach(ctx)
        try:
            await self.app(scope, receive, send_recording_models)
        finally:
            otel_context.detach(token)
            if server_span.is_recording():  # no response sent (an error), or a websocket
                server_span.set_attribute(REQUEST_MODELS, sorted(seen))


def _exporting_metrics_when_ready(send: _Send) -> _Send:
    """The lifespan's ``send``: once the app reports its start-up complete (models
    loaded), export the metrics at once instead of at the end of the first interval."""

    async def send_and_export(message: MutableMapping[str, Any]) -> None:
        await send(message)
        if message.get("type") == "lifespan.startup.complete":
            export_metrics_now()

    return send_and_export


def _is_last(message: MutableMapping[str, Any]) -> bool:
    kind = message.get("type")
    if kind == "http.response.body":
        return not message.get("more_body", False)
    return kind == "http.response.trailers" and not message.get("more_trailers", False)


def _stamp(span: trace.Span, identity: ModelIdentity) -> None:
    present = getattr(span, "attributes", None) or {}
    missing = {k: v for k, v in identity.attributes.items() if k not in present}
    if missing and span.is_recording():
        span.set_attributes(missing)
