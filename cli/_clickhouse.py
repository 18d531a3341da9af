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
        typer.Option(
            "--tables",
            help="The exporter's CREATE TABLE statements instead (traces, logs, metrics).",
        ),
    ] = False,
) -> None:
    """Print the optional DDL that materializes model identity (ModelName, ModelVersion) on
    the exporter's tables; with --tables, the exporter's own tables (traces, logs and the
    five metrics tables).

    Example: faultlens clickhouse ddl --database otel | clickhouse-client --multiquery
    """
    from ..analyzer import clickhouse_ddl

    typer.echo(clickhouse_ddl(database, tables=tables))


@clickhouse.command()
def load(
    source: Annotated[str, typer.Argument(help="A faultlens DuckDB store to copy.")],
    db: Annotated[
        str, typer.Option("--db", help="The ClickHouse target: chdb:PATH or clickhouse://...")
    ],
    model_columns: Annotated[
        bool,
        typer.Option("--model-columns", help="Apply the optional model-identity DDL first."),
    ] = False,
) -> None:
    """Copy a DuckDB store into the exporter's tables, as the Collector would have written
    the same telemetry (spans, logs and metrics): a way to try the ClickHouse path on one
    machine. Prints the rows copied per table (metrics tables that hold any).

    Example: faultlens clickhouse load .faultlens/faultlens.duckdb --db chdb:.faultlens/ch
    """
    from pathlib import Path

    from ..analyzer import DbTargetError
    from ..analyzer.store._clickhouse_ddl import load_from_duckdb
    from ..analyzer.store._engines import open_engine

    if not Path(source).is_file():
        typer.echo(f"faultlens clickhouse load: {source}: no such store", err=True)
        raise typer.Exit(2)
    try:
        with open_engine(db, read_only=False) as engine:
            copied = load_from_duckdb(source, engine, model_columns=model_columns)
    except DbTargetError as exc:
        typer.echo(f"faultlens clickhouse load: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(", ".join(f"{table}: {n} rows" for table, n in copied.items()))
