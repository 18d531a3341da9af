"""`faultlens incidents`: incidents with culprit, fault-isolation time and blast radius."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ._app import DEFAULT_DB, DbOption, FormatOption, PriceGbHourOption, PriceVcpuHourOption, app


@app.command()
def incidents(
    db: DbOption = str(DEFAULT_DB),
    fmt: FormatOption = "table",
    slo_ms: Annotated[
        float | None,
        typer.Option("--slo-ms", help="Latency objective of entry requests (default: baseline)."),
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this faultlens.run.")] = None,
    schema: Annotated[
        bool,
        typer.Option("--schema", help="Print the JSON Schema of --format json and exit."),
    ] = False,
    price_vcpu_hour: PriceVcpuHourOption = None,
    price_gb_hour: PriceGbHourOption = None,
) -> None:
    """Incidents with culprit ranking, fault-isolation time, blast radius and collateral.

    --format json prints the contract that --schema prints (a JSON Schema), and each
    incident's resource_cost: its run's measured CPU and memory, and the layout verdict.

    Example: faultlens incidents --db .faultlens/faultlens.duckdb --format json
    """
    from ..analyzer import StoreError, incidents_json, incidents_schema
    from ..analyzer.analysis._cost import Prices

    if schema:
        typer.echo(json.dumps(incidents_schema(), indent=2))
        return
    if fmt not in ("table", "json"):
        raise typer.BadParameter(f"{fmt!r}: expected table or json", param_hint="--format")
    try:
        prices = Prices(vcpu_hour=price_vcpu_hour, gb_hour=price_gb_hour)
        doc = incidents_json(db, slo_ms=slo_ms, run=run, prices=prices)
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
