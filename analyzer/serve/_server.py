"""``faultlens serve``: one process that owns the store, receives, detects, serves, pages.

- OTLP/HTTP (``/v1/traces``, ``/v1/logs``) and the read API (``/api/...``) on one HTTP
  port; OTLP/gRPC on another, on the same event loop; one writer thread commits both.
- Reads (API, dashboard, readers of the file) run on cursors of the same DuckDB instance,
  in their own two threads, so that they never hold an acknowledgement for long.
- Live detection (``_live``) and webhooks (``_webhook``) run in their own threads.
- The state file beside the store (``_state``) tells readers where the server is.
- The dashboard, when asked for, is a Streamlit subprocess that reads through the API
  (its pages' Python then runs outside the receiver's interpreter).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..present._window import parse_window
from ..store._write import DEFAULT_DB, connect
from ._grpc import grpc_server
from ._live import LiveIncidents
from ._reads import Reads
from ._receiver import MAX_BODY, Receiver, receiver_app
from ._state import ServerInfo, remove_state, write_state
from ._webhook import Webhooks

__all__ = ["ServeOptions", "collect", "serve", "serve_app"]


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``faultlens serve`` and ``faultlens collect`` are told."""

    db: str = str(DEFAULT_DB)
    host: str = "127.0.0.1"
    otlp_http_port: int = 4318
    otlp_grpc_port: int | None = 4317  # None: no gRPC
    dashboard_port: int | None = 8501  # None: no dashboard (`faultlens collect`)
    token: str | None = None
    webhooks: tuple[str, ...] = ()
    refresh_s: float = 5.0
    interval_s: float = 2.0
    window_s: float = 600.0
    hold_down_s: float = 30.0
    confirm_s: float = 5.0
    max_body: int = MAX_BODY
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.otlp_http_port}"


def _error(code: int, message: str) -> Response:
    return Response(message + "\n", code, media_type="text/plain")


def _dashboard(opts: ServeOptions) -> subprocess.Popen:
    from ...dashboards import ENTRYPOINT

    env = dict(
        os.environ,
        FAULTLENS_DB=str(Path(opts.db).resolve()),
        FAULTLENS_REFRESH_S=str(opts.refresh_s),
        **opts.extra_env,
    )
    if opts.token:
        env["FAULTLENS_TOKEN"] = opts.token
    argv = [sys.executable, "-m", "streamlit", "run", str(ENTRYPOINT)]
    argv += ["--server.address", opts.host, "--server.port", str(opts.dashboard_port)]
    argv += ["--server.headless", "true", "--server.fileWatcherType", "none"]
    argv += ["--client.toolbarMode", "minimal", "--browser.gatherUsageStats", "false"]
    # Streamlit runs a full garbage collection after every script run, the refresh check's
    # included (every few seconds): CPU taken from ingest on a shared machine, for memory
    # that reference counting frees anyway.
    argv += ["--runner.postScriptGC", "false"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)


def serve_app(opts: ServeOptions) -> Any:
    """The ASGI app: OTLP/HTTP, the read API, and (in its lifespan) gRPC, live detection,
    webhooks, the state file and the dashboard."""
    parts: dict[str, Any] = {}
    pool = ThreadPoolExecutor(2, thread_name_prefix="faultlens-read")

    def authorized(request: Request) -> bool:
        return opts.token is None or request.headers.get("authorization") == (
            f"Bearer {opts.token}"
        )

    async def answer(call: dict[str, Any]) -> Response:
        """One read on the pool (DuckDB off the event loop); a missing incident is 404,
        a call the analysis refuses 400, its first line only."""
        loop = asyncio.get_running_loop()
        try:
            kind, body = await loop.run_in_executor(pool, parts["reads"].call, call)
        except KeyError as exc:
            return _error(404, str(exc.args[0] if exc.args else exc))
        except (TypeError, ValueError) as exc:
            return _error(400, f"{call['method']}: {str(exc).splitlines()[0]}")
        return Response(body, 200, media_type=kind)

    async def read(request: Request, call: dict[str, Any]) -> Response:
        q = request.query_params
        try:
            window = parse_window(since=q.get("since"), until=q.get("until"), last=q.get("last"))
            for name in ("slo_ms", "price_vcpu_hour", "price_gb_hour"):
                if q.get(name) is not None:
                    call["kwargs"][name] = float(q[name])
        except ValueError as exc:
            return _error(400, str(exc))
        call.update(run=q.get("run"), since=window.since_ns, until=window.until_ns)
        return await answer(call)

    def guarded(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            if not authorized(request):
                return _error(401, "missing or wrong bearer token")
            return await handler(request)

        return wrapped

    async def health(request: Request) -> Response:
        receiver: Receiver = parts["receiver"]
        live: LiveIncidents = parts["live"]
        return JSONResponse(
            {
                "status": "ok",
                "db": str(Path(opts.db).resolve()),
                "pid": os.getpid(),
                "commits": receiver.commits,
                "as_of_ns": live.as_of_ns,
                "detection_cycles": live.cycles,
                "open_incidents": sum(
                    1 for i in live.snapshot()["incidents"] if i["state"] == "open"
                ),
            }
        )

    async def incidents(request: Request) -> Response:
        return await read(request, {"method": "incidents_json", "kwargs": {}})

    async def incident(request: Request) -> Response:
        id_ = request.path_params["id"]
        live: LiveIncidents = parts["live"]
        for doc in live.snapshot()["incidents"]:
            if doc["id"] == id_:
                loop = asyncio.get_running_loop()
                history = await loop.run_in_executor(pool, live.history, id_)
                return JSONResponse({**doc, "history": history})
        return await read(request, {"method": "incident", "args": [id_], "kwargs": {}})

    async def report(request: Request) -> Response:
        fmt = request.query_params.get("format", "md")
        if fmt not in ("md", "html"):
            return _error(400, f"format {fmt!r}: expected md or html")
        id_ = request.path_params["id"]
        return await read(request, {"method": "report", "args": [id_], "kwargs": {"fmt": fmt}})

    async def live_view(request: Request) -> Response:
        return Response(
            orjson.dumps(parts["live"].snapshot(), option=orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json",
        )

    async def history(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(pool, parts["live"].history)
        return JSONResponse({"history": rows})

    async def analysis(request: Request) -> Response:
        try:
            call = orjson.loads(await request.body())
            assert isinstance(call, dict) and isinstance(call.get("method"), str)
        except (orjson.JSONDecodeError, AssertionError):
            return _error(400, "expected a JSON object with a method")
        return await answer(call)

    routes = [
        Route("/api/health", guarded(health)),
        Route("/api/incidents", guarded(incidents)),
        Route("/api/incidents/{id}", guarded(incident)),
        Route("/api/incidents/{id}/report", guarded(report)),
        Route("/api/live", guarded(live_view)),
        Route("/api/history", guarded(history)),
        Route("/api/analysis", guarded(analysis), methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def around(receiver: Receiver) -> AsyncIterator[None]:
        parts["receiver"] = receiver
        reads = parts["reads"] = Reads(parts["root"], generation=lambda: receiver.commits)
        hooks = Webhooks(list(opts.webhooks))
        live = parts["live"] = LiveIncidents(
            reads.cursor,
            generation=lambda: receiver.commits,
            notify=hooks.post,
            interval_s=opts.interval_s,
            window_s=opts.window_s,
            hold_down_s=opts.hold_down_s,
            confirm_s=opts.confirm_s,
        )
        grpc = None
        if opts.otlp_grpc_port is not None:
            grpc = grpc_server(
                receiver,
                host=opts.host,
                port=opts.otlp_grpc_port,
                token=opts.token,
                max_body=opts.max_body,
            )
            await grpc.start()
        live.start()
        dashboard_url = None
        if opts.dashboard_port is not None:
            dashboard_url = f"http://{opts.host}:{opts.dashboard_port}"
        write_state(
            ServerInfo(
                url=opts.url,
                pid=os.getpid(),
                token_required=opts.token is not None,
                db=str(Path(opts.db).resolve()),
                dashboard=dashboard_url,
                otlp_grpc=None if grpc is None else f"{opts.host}:{opts.otlp_grpc_port}",
            )
        )
        dash = _dashboard(opts) if opts.dashboard_port is not None else None
        try:
            yield
        finally:
            remove_state(opts.db)
            if dash is not None:
                dash.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    dash.wait(10)
            if grpc is not None:
                await grpc.stop(grace=5)
            live.stop()
            hooks.close()
            pool.shutdown(wait=True)

    con = connect(opts.db)
    # Readers' cursors come from a connection made before the writer starts using ``con``.
    parts["root"] = con.cursor()
    app = receiver_app(con, token=opts.token, max_body=opts.max_body, routes=routes, around=around)
    app.state.connections = (parts["root"], con)
    return app


def serve(opts: ServeOptions) -> None:
    """Run until SIGINT/SIGTERM: then stop taking data, flush, remove the state file."""
    import uvicorn

    app = serve_app(opts)
    config = uvicorn.Config(
        app,
        host=opts.host,
        port=opts.otlp_http_port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",  # gRPC's asyncio server shares this loop
    )
    try:
        uvicorn.Server(config).run()
    finally:
        for con in app.state.connections:
            con.close()


def collect(
    *,
    db: str | Path = DEFAULT_DB,
    host: str = "127.0.0.1",
    port: int = 4318,
    grpc_port: int | None = None,
    token: str | None = None,
    max_body: int = MAX_BODY,
) -> None:
    """``faultlens collect``: :func:`serve` without the dashboard, until interrupted.

    Example: ``collect(db=".faultlens/faultlens.duckdb", port=4318)``
    """
    opts = ServeOptions(
        db=str(db),
        host=host,
        otlp_http_port=port,
        otlp_grpc_port=grpc_port,
        dashboard_port=None,
        token=token,
        max_body=max_body,
    )
    serve(opts)
