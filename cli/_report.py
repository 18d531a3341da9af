"""`faultlens report`: a post-mortem of one incident."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import (
    DEFAULT_DB,
    DbOption,
    FormatOption,
    LastOption,
    PriceGbHourOption,
    PriceVcpuHourOption,
    SinceOption,
    UntilOption,
    app,
    window,
)


@app.command()
def report(
    incident: Annotated[str, typer.Argument(help="Incident id, from `faultlens incidents`.")],
    db: DbOption = str(DEFAULT_DB),
    fmt: FormatOption = "md",
    slo_ms: Annotated[
        float | None,
        typer.Option("--slo-ms", help="Latency objective of entry requests (default: baseline)."),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    last: LastOption = None,
    price_vcpu_hour: PriceVcpuHourOption = None,
    price_gb_hour: PriceGbHourOption = None,
) -> None:
    """Write a post-mortem: Markdown, or self-contained HTML with charts.

    Example: faultlens report crash-monolith-20261125T102135Z --format html > report.html
    """
    from ..analyzer import StoreError
    from ..analyzer.analysis._cost import Prices
    from ..analyzer.serve._client import report_text

    if fmt not in ("md", "html"):
        raise typer.BadParameter(f"{fmt!r}: expected md or html", param_hint="--format")
    span = window(since, until, last)
    try:
        prices = Prices(vcpu_hour=price_vcpu_hour, gb_hour=price_gb_hour)
        typer.echo(report_text(db, incident, fmt=fmt, slo_ms=slo_ms, window=span, prices=prices))
    except (StoreError, KeyError) as exc:
        typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(1) from None
