"""`faultlens collect`: the OTLP/HTTP receiver."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import DEFAULT_DB, DbOption, app


@app.command()
def collect(
    db: DbOption = str(DEFAULT_DB),
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (OTLP/HTTP default).")] = 4318,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="Require 'Authorization: Bearer TOKEN'.", envvar="FAULTLENS_TOKEN"
        ),
    ] = None,
) -> None:
    """Receive OTLP/HTTP traces and logs (POST /v1/traces, /v1/logs) into the store.

    Protobuf or JSON, gzip or not; answers only after the data is committed.

    Example: faultlens collect --db .faultlens/faultlens.duckdb --port 4318
    """
    from ..analyzer import StoreError
    from ..analyzer import collect as serve

    typer.echo(f"faultlens collect: OTLP/HTTP on http://{host}:{port}/v1/traces|logs -> {db}")
    try:
        serve(db=db, host=host, port=port, token=token)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
