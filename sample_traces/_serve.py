"""One process of the sample system: ``python -m faultlens.sample_traces._serve ROLE``.

ROLE is ``monolith``, ``gateway``, ``feature-store`` or ``model:NAME``. The
runner passes where the peers listen and which model versions are deployed
in ``FAULTLENS_SAMPLE`` (JSON), and the telemetry setup in the standard
``OTEL_*`` variables (service name, resource attributes, exporters), which
``faultlens.instrumentation.configure`` reads. On SIGTERM uvicorn drains,
and its lifespan end shuts the providers down so every batched span and log is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator

import uvicorn

from faultlens import instrumentation

from . import _services

SAMPLE_ENV = "FAULTLENS_SAMPLE"


def build(role: str, settings: dict) -> tuple[object, str | None]:
    """The app for a role, and the model it serves (None when it serves several or none)."""
    versions = settings.get("versions", {})
    store = settings.get("feature_store_url", "")
    if role == "monolith":
        return _services.monolith_app(feature_store_url=store, versions=versions), None
    if role == "gateway":
        return _services.gateway_app(model_urls=settings["model_urls"]), None
    if role == "feature-store":
        return _services.feature_store_app(), None
    if role.startswith("model:"):
        name = role.removeprefix("model:")
        return _services.model_app(name, feature_store_url=store, versions=versions), name
    raise SystemExit(f"unknown role {role!r}")


def load_models(role: str, settings: dict) -> None:
    """Load the models this process serves, each under its scope: the load span and the
    growth of the process's memory meanwhile (faultlens.model.load.memory_growth)."""
    from ._models import FRAMEWORK, FRAMEWORK_VERSION, MODELS, load

    served = list(MODELS) if role == "monolith" else [role.removeprefix("model:")]
    for name in served if role == "monolith" or role.startswith("model:") else []:
        version = settings.get("versions", {}).get(name, MODELS[name].version)
        scope = instrumentation.model(
            name, version=version, framework=FRAMEWORK, framework_version=FRAMEWORK_VERSION
        )
        with scope.loading():
            load(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = json.loads(os.environ.get(SAMPLE_ENV, "{}"))
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faultlens.sample").setLevel(logging.INFO)
    app, served = build(args.role, settings)
    default_model = None
    if served is not None:
        from ._models import MODELS

        version = settings.get("versions", {}).get(served, MODELS[served].version)
        default_model = f"{served}@{version}"
    instrumentation.configure(default_model=default_model)
    load_models(args.role, settings)
    # The ASGI send/receive spans (3 per request, no information) stay out of the sample data.
    instrumentation.instrument_app(
        app,
        default_model=default_model,
        excluded_urls="healthz,_faultlens",
        exclude_spans=["receive", "send"],
    )
    log = logging.getLogger("faultlens.sample")

    @contextlib.asynccontextmanager
    async def flush_on_shutdown(_app: object) -> AsyncIterator[None]:
        # uvicorn re-raises SIGTERM once it has drained, which kills the process before
        # any `finally` or atexit hook runs: flush while the lifespan is still ending.
        yield
        log.info("%s shutting down", args.role)
        instrumentation.shutdown()

    app.router.lifespan_context = flush_on_shutdown
    log.info("%s listening on port %d", args.role, args.port)
    try:
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    finally:
        instrumentation.shutdown()  # a no-op when the lifespan already flushed


if __name__ == "__main__":
    main()
