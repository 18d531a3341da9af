"""`faultlens incidents`: incidents with culprit, fault-isolation time and blast radius."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ._app import (
    DEFAULT_DB,
    DbOption,
    FormatOption,
    LastOption,
    SinceOption,
    UntilOption,
    app,
    window,
)


@app.command()
def incidents(
    db: DbOption = str(DEFAULT_DB),
    fmt: FormatOption = "table",
    slo_ms: Annotated[
        float | None,
        typer.Option("--slo-ms", help="Latency objective of entry requests (default: baseline)."),
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this faultlens.run.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    last: LastOption = None,
    schema: Annotated[
        bool,
        typer.Option("--schema", help="Print the JSON Schema of --format json and exit."),
    ] = False,
) -> None:
    """Incidents with culprit ranking, fault-isolation time, blast radius and collateral.

    --format json prints the contract that --schema prints (a JSON Schema).

    While `faultlens serve` holds the store, the server answers.

    Example: faultlens incidents --db .faultlens/faultlens.duckdb --format json --last 30m
    """
    from ..analyzer import StoreError, incidents_schema
    from ..analyzer.serve._client import incidents_doc

    if schema:
        typer.echo(json.dumps(incidents_schema(), indent=2))
        return
    if fmt not in ("table", "json"):
        raise typer.BadParameter(f"{fmt!r}: expected table or json", param_hint="--format")
    span = window(since, until, last)
    try:
        doc = incidents_doc(db, slo_ms=slo_ms, run=run, window=span)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if fmt == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    table = Table(title=f"{len(doc['incidents'])} incident(s) in {db}")
    for col in (
        "id",
        "culprit",
        "FIT model-aware / service-only (s)",
        "suspects",
        "blast radius",
        "collateral",
    ):
        table.add_column(col)
    for i in doc["incidents"]:
        c, fi, br = i["culprit"], i["fault_isolation"], i["blast_radius"]
        table.add_row(
            i["id"],
            f"{c['service']} / {c['model'] or 'model unknown'}",
            f"{fi['model_aware']['seconds']} / {fi['service_only']['seconds']}",
            f"{fi['model_aware']['suspects']} / {fi['service_only']['suspects']}",
            f"{br['requests']} ({br['share']:.0%})",
            "n/a" if br["collateral"] is None else str(br["collateral"]),
        )
    Console(highlight=False, soft_wrap=True).print(table)
