"""`faultlens collect`: `faultlens serve` without the dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import DEFAULT_DB, DbOption, app
from ._serve import (
    ConfirmOption,
    GrpcPortOption,
    HoldOption,
    HostOption,
    TokenOption,
    WebhookOption,
    run,
)


@app.command()
def collect(
    db: DbOption = str(DEFAULT_DB),
    host: HostOption = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="OTLP/HTTP and the read API.")
    ] = 4318,
    otlp_grpc_port: GrpcPortOption = 4317,
    token: TokenOption = None,
    webhook: WebhookOption = None,
    hold_down: HoldOption = 30.0,
    confirm: ConfirmOption = 5.0,
) -> None:
    """`faultlens serve` without the dashboard: OTLP/HTTP (POST /v1/traces, /v1/logs) and
    OTLP/gRPC into the store, live incidents, the read API and webhooks.

    Protobuf or JSON, gzip or not; answers only after the data is committed.

    Example: faultlens collect --db .faultlens/faultlens.duckdb --port 4318
    """
    from ..analyzer.serve._server import ServeOptions

    opts = ServeOptions(
        db=db,
        host=host,
        otlp_http_port=port,
        otlp_grpc_port=otlp_grpc_port or None,
        dashboard_port=None,
        token=token,
        webhooks=tuple(webhook or ()),
        hold_down_s=hold_down,
        confirm_s=confirm,
    )
    grpc = f", OTLP/gRPC {host}:{otlp_grpc_port}" if otlp_grpc_port else ""
    typer.echo(f"faultlens collect: OTLP/HTTP and API on {opts.url}{grpc} -> {db}")
    run(opts, name="collect")
