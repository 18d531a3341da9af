"""`faultlens dashboard`: the Streamlit app over one store, on loopback by default."""

from __future__ import annotations

import os
import socket
import sys
from typing import Annotated

import typer

from ._app import DEFAULT_DB, DbOption, app

HostOption = Annotated[
    str, typer.Option("--host", help="Address to bind; loopback unless you mean to share it.")
]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")]


def free_port(host: str, preferred: int) -> int:
    """``preferred`` when nothing listens there, else a port the OS picks as free."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise typer.BadParameter(f"no free port on {host}")


def serve(db: str, *, host: str, port: int) -> None:
    """Replace this process with ``streamlit run`` on the dashboard entrypoint.

    The store reaches the app through ``FAULTLENS_DB``. Exec (not a child
    process) so that stopping this process stops the server.
    """
    from ..analyzer import parse_db
    from ..dashboards import ENTRYPOINT

    target = parse_db(db)
    env = dict(os.environ, FAULTLENS_DB=target.resolved())
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRYPOINT),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--browser.gatherUsageStats",
        "false",
        "--browser.serverAddress",
        host,
    ]
    # str(target) never shows a server's password.
    typer.echo(f"faultlens dashboard: http://{host}:{port}  (store {target}; Ctrl-C stops it)")
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


@app.command()
def dashboard(
    db: DbOption = str(DEFAULT_DB),
    host: HostOption = "127.0.0.1",
    port: PortOption = 8501,
) -> None:
    """Serve the on-call dashboard (Streamlit) over a store, read-only: a DuckDB file, or
    the OpenTelemetry Collector's ClickHouse tables (chdb:PATH, clickhouse://...).

    Example: faultlens dashboard --db .faultlens/faultlens.duckdb --port 8501
    """
    serve(_store(db), host=host, port=port)


def _store(db: str) -> str:
    """``db`` as the app opens it (paths made absolute); exits with one line when there is
    no such store."""
    from ..analyzer import DbTargetError, parse_db

    try:
        target = parse_db(db)
    except DbTargetError as exc:
        typer.echo(f"faultlens dashboard: {exc}", err=True)
        raise typer.Exit(2) from None
    # A server is not checked here: the app says so when it does not answer.
    problem = target.missing()
    if problem is not None:
        typer.echo(f"faultlens dashboard: {problem}", err=True)
        raise typer.Exit(2)
    return target.resolved()
