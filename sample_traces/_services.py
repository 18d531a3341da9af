"""The sample product's FastAPI apps, for both layouts, over the same model code.

- ``monolith_app``: every endpoint and every model in one process; the
  endpoints call the models in-process.
- ``gateway_app``: the same endpoints, calling one service per model over HTTP.
- ``model_app``: one model behind ``POST /predict``.
- ``feature_store_app``: user features behind ``GET /features/{user}``; no model.

The endpoint logic (``serve_endpoint``) is shared: only the way a model is
called differs. A caller gives up on a model after ``MODEL_TIMEOUT_S`` and a
model gives up on the feature store after ``FEATURE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from faultlens import instrumentation

from . import _faults
from ._models import (
    ENDPOINTS,
    FRAMEWORK,
    FRAMEWORK_VERSION,
    MODELS,
    FeatureLookup,
    user_features,
)

log = logging.getLogger("faultlens.sample")

MODEL_TIMEOUT_S = 1.0
FEATURE_TIMEOUT_S = 0.5

ModelCall = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ModelFailed(Exception):
    """A model call failed; carries the HTTP status the endpoint answers with."""

    def __init__(self, model: str, status: int, reason: str) -> None:
        super().__init__(reason)
        self.model, self.status = model, status


def _json(content: Any, status: int = 200) -> Response:
    # json.dumps keeps NaN (JSONResponse refuses it): a bad model version's
    # output must reach the next model, which is the one that fails on it.
    return Response(json.dumps(content), status_code=status, media_type="application/json")


def _health(app: FastAPI) -> None:
    """Liveness for the runner, and its fault control; neither is traced."""

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/_faultlens/fault")
    async def arm_fault(request: Request) -> dict[str, str]:
        body = await request.json()
        _faults.set_plan(_faults.FaultPlan(**body) if body else None)
        return {"status": "armed" if body else "cleared"}


def feature_lookup(client: httpx.AsyncClient, url: str) -> FeatureLookup:
    """The feature store over HTTP, with the callers' deadline."""

    async def lookup(user: str) -> list[float]:
        r = await client.get(f"{url}/features/{user}", timeout=FEATURE_TIMEOUT_S)
        r.raise_for_status()
        return list(r.json()["features"])

    return lookup


def model_runner(features: FeatureLookup, versions: dict[str, str]) -> ModelCall:
    """Runs a model in this process, under its identity, with any fault applied."""

    async def run(name: str, payload: dict[str, Any]) -> dict[str, Any]:
        spec = MODELS[name]
        version = versions.get(name, spec.version)
        with instrumentation.model(
            name, version=version, framework=FRAMEWORK, framework_version=FRAMEWORK_VERSION
        ):
            await _faults.before_call(name)
            return await spec.predict(payload, version=version, features=features)

    return run


async def serve_endpoint(route: str, body: dict[str, Any], call: ModelCall) -> dict[str, Any]:
    """One endpoint's logic: a single model, a vertical chain, or a horizontal fan-out."""
    if route in ("/fraud", "/recommend"):
        return await call(route[1:], body)
    if route == "/sentiment":  # vertical: tokenize feeds sentiment
        return await call("sentiment", await call("tokenize", body))
    if route == "/search":  # vertical: tokenize -> embed -> rank
        return await call("rank", await call("embed", await call("tokenize", body)))
    if route == "/checkout":  # horizontal: fraud and recommend in parallel, aggregated
        verdict, picks = await asyncio.gather(call("fraud", body), call("recommend", body))
        return {"approved": not verdict["flag"], "suggestions": picks["items"][:3]}
    raise KeyError(route)


def _endpoints(app: FastAPI, call: ModelCall) -> None:
    def register(route: str) -> None:
        async def endpoint(request: Request) -> Response:
            try:
                return _json(await serve_endpoint(route, await request.json(), call))
            except ModelFailed as exc:
                log.error("%s failed: %s", route, exc)
                return _json({"error": str(exc), "model": exc.model}, exc.status)

        app.add_api_route(route, endpoint, methods=["POST"], name=route[1:])

    for route in ENDPOINTS:
        register(route)


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a call its caller gave up on still ends; keep asyncio quiet


def monolith_app(*, feature_store_url: str, versions: dict[str, str]) -> FastAPI:
    """Every endpoint and model in one process."""
    app = FastAPI(title="monolith")
    client = httpx.AsyncClient()
    run = model_runner(feature_lookup(client, feature_store_url), versions)

    async def call(name: str, payload: dict[str, Any]) -> dict[str, Any]:
        task = asyncio.ensure_future(run(name, payload))
        task.add_done_callback(_consume)
        try:
            # shield: like a remote model, the slow call keeps running after we give up.
            return await asyncio.wait_for(asyncio.shield(task), MODEL_TIMEOUT_S)
        except TimeoutError:
            raise ModelFailed(name, 504, f"{name} timed out after {MODEL_TIMEOUT_S}s") from None
        except Exception as exc:
            raise ModelFailed(name, 500, f"{name}: {exc}") from exc

    _health(app)
    _endpoints(app, call)
    return app


def gateway_app(*, model_urls: dict[str, str]) -> FastAPI:
    """The endpoints, calling one service per model over HTTP."""
    app = FastAPI(title="gateway")
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=200))

    async def call(name: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            r = await client.post(
                f"{model_urls[name]}/predict",
                content=json.dumps(payload),
                headers={"content-type": "application/json"},
                timeout=MODEL_TIMEOUT_S,
            )
        except httpx.TimeoutException:
            raise ModelFailed(name, 504, f"{name} timed out after {MODEL_TIMEOUT_S}s") from None
        except httpx.HTTPError as exc:
            raise ModelFailed(name, 502, f"{name} unreachable: {exc!r}") from exc
        if r.status_code >= 400:
            raise ModelFailed(name, 502, f"{name} answered {r.status_code}: {r.text[:200]}")
        return r.json()

    _health(app)
    _endpoints(app, call)
    return app


def model_app(name: str, *, feature_store_url: str, versions: dict[str, str]) -> FastAPI:
    """One model behind POST /predict."""
    app = FastAPI(title=f"model-{name}")
    client = httpx.AsyncClient()
    run = model_runner(feature_lookup(client, feature_store_url), versions)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        try:
            return _json(await run(name, await request.json()))
        except Exception as exc:
            log.error("%s failed: %s", name, exc)
            return _json({"error": str(exc)}, 500)

    _health(app)
    return app


def feature_store_app() -> FastAPI:
    """The feature store: a dependency of fraud and recommend that runs no model."""
    app = FastAPI(title="feature-store")

    @app.get("/features/{user}")
    async def features(user: str) -> dict[str, Any]:
        await _faults.before_call("feature-store")
        return {"user": user, "features": user_features(user)}

    _health(app)
    return app
