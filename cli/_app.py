"""The typer application and the flags every command shares."""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from ..analyzer import DEFAULT_DB

__all__ = [
    "DEFAULT_DB",
    "DbOption",
    "FormatOption",
    "PriceGbHourOption",
    "PriceVcpuHourOption",
    "app",
]

app = typer.Typer(
    name="faultlens",
    help="Which model broke, how long it took to see, how far the damage spread.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# Shared flags, defined once (STYLE.md: CLI).
DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        help="Store: a DuckDB file (default .faultlens/faultlens.duckdb), chdb:PATH or "
        "clickhouse://user:pass@host:port/db.",
        envvar="FAULTLENS_DB",
    ),
]
FormatOption = Annotated[str, typer.Option("--format", help="Output format.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only data from this time on (ISO, UTC unless it says; or ns)."),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Only data before this time (ISO or ns).")
]
LastOption = Annotated[
    str | None, typer.Option("--last", help="Only the last 90s / 30m / 2h / 1d (up to now).")
]


def window(since: str | None, until: str | None, last: str | None) -> object:
    """The time window of the flags; a bad one is one line and exit 2."""
    from ..analyzer import parse_window

    try:
        return parse_window(since=since, until=until, last=last)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


# Optional unit prices of the resource cost (analysis/_cost.py): no default money figure.
PriceVcpuHourOption = Annotated[
    float | None,
    typer.Option("--price-vcpu-hour", help="Price of one vCPU-hour (cost in money too)."),
]
PriceGbHourOption = Annotated[
    float | None,
    typer.Option("--price-gb-hour", help="Price of one GB-hour of memory (cost in money too)."),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"faultlens {version('faultlens')}")
        raise typer.Exit()


@app.callback()
def _root(
    version_: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """faultlens: fault isolation for multi-model serving, from OpenTelemetry data.

    Example: faultlens ingest sample_traces/data --db .faultlens/faultlens.duckdb
    """


# Command modules register themselves on `app` when imported.
from . import _commands  # noqa: E402,F401
