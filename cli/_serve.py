"""`faultlens serve`: receive OTLP (HTTP and gRPC), detect incidents live, serve the
dashboard and the read API, page; `faultlens collect` is the same without the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._app import DEFAULT_DB, DbOption, app

if TYPE_CHECKING:
    from ..analyzer.serve._server import ServeOptions

HostOption = Annotated[
    str, typer.Option("--host", help="Address to bind; loopback unless you mean to share it.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Require 'Authorization: Bearer TOKEN' on OTLP and the API.",
        envvar="FAULTLENS_TOKEN",
    ),
]
HttpPortOption = Annotated[
    int, typer.Option("--otlp-http-port", min=1, max=65535, help="OTLP/HTTP and the read API.")
]
GrpcPortOption = Annotated[
    int, typer.Option("--otlp-grpc-port", min=0, max=65535, help="OTLP/gRPC (0: none).")
]
WebhookOption = Annotated[
    list[str] | None,
    typer.Option(
        "--webhook", help="POST incident events (opened, culprit_changed, resolved, reopened)."
    ),
]
HoldOption = Annotated[
    float, typer.Option("--hold-down", help="Seconds healthy before an incident resolves.")
]
ConfirmOption = Annotated[
    float,
    typer.Option(
        "--confirm",
        min=0,
        help="Seconds a detection must hold (of data, or of wall time with nothing new) "
        "before it opens an incident and pages.",
    ),
]


def run(opts: ServeOptions, *, name: str) -> None:
    """Serve until interrupted; a store that cannot be opened is one line."""
    from ..analyzer import StoreError
    from ..analyzer.serve._server import serve as serve_forever
    from ..analyzer.serve._state import find_server

    held = find_server(opts.db)
    if held is not None:
        typer.echo(
            f"error: {opts.db} is held by faultlens serve at {held.url} (pid {held.pid})", err=True
        )
        raise typer.Exit(2)
    try:
        serve_forever(opts)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:  # a port in use
        typer.echo(f"faultlens {name}: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    db: DbOption = str(DEFAULT_DB),
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Dashboard.")] = 8501,
    otlp_http_port: HttpPortOption = 4318,
    otlp_grpc_port: GrpcPortOption = 4317,
    token: TokenOption = None,
    webhook: WebhookOption = None,
    refresh: Annotated[
        float, typer.Option("--refresh", min=1, help="Dashboard refresh, seconds.")
    ] = 5.0,
    hold_down: HoldOption = 30.0,
    confirm: ConfirmOption = 5.0,
) -> None:
    """Receive OTLP (HTTP and gRPC) into the store, open incidents as they happen, serve
    the dashboard and the read API (/api/incidents, /api/health, ...), page webhooks.

    Readers of the same --db (`faultlens incidents`, `faultlens report`,
    faultlens.analyzer.open) ask this server while it runs.

    Example: faultlens serve --db live.duckdb --webhook http://127.0.0.1:9000/page
    """
    from ..analyzer.serve._server import ServeOptions

    opts = ServeOptions(
        db=db,
        host=host,
        otlp_http_port=otlp_http_port,
        otlp_grpc_port=otlp_grpc_port or None,
        dashboard_port=port,
        token=token,
        webhooks=tuple(webhook or ()),
        refresh_s=refresh,
        hold_down_s=hold_down,
        confirm_s=confirm,
    )
    grpc = f", OTLP/gRPC {host}:{otlp_grpc_port}" if otlp_grpc_port else ""
    typer.echo(
        f"faultlens serve: dashboard http://{host}:{port}  API+OTLP/HTTP {opts.url}{grpc}  -> {db}"
    )
    run(opts, name="serve")
