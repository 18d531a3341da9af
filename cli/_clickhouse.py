"""`faultlens clickhouse`: what a ClickHouse server needs for the same analysis."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app

clickhouse = typer.Typer(
    name="clickhouse",
    help="The OpenTelemetry Collector's ClickHouse tables (docs/scale-out.md).",
    no_args_is_help=True,
)
app.add_typer(clickhouse, name="clickhouse")


@clickhouse.command()
def ddl(
    database: Annotated[str, typer.Option("--database", help="The exporter's database.")] = "otel",
    tables: Annotated[
        bool,
        typer.Option("--tables", help="The exporter's CREATE TABLE statements instead."),
    ] = False,
) -> None:
    """Print the optional DDL that materializes model identity (ModelName, ModelVersion) on
    the exporter's tables; with --tables, the exporter's own tables.

    Example: faultlens clickhouse ddl --database otel | clickhouse-client --multiquery
    """
    from ..analyzer import clickhouse_ddl

    typer.echo(clickhouse_ddl(database, tables=tables))
