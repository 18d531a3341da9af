"""`faultlens incidents`: incidents with culprit, fault-isolation time and blast radius."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from ..analyzer.present._words import culprit_text, isolation_text, isolation_time, plural
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

Cell = Callable[[dict[str, Any]], str]


def _culprit_short(i: dict[str, Any]) -> str:
    """The culprit model; its service when it runs none or its model is unknown."""
    return i["culprit"]["model"] or i["culprit"]["service"]


def _brief(view: dict[str, Any]) -> str:
    """``10 s, 1 suspect``; a view that did not reach the model says what is left to read."""
    if not view["isolates_model"]:
        return isolation_text(view)
    return f"{isolation_time(view)}, {plural(view['suspects'], 'suspect')}"


def _view(name: str, text: Callable[[dict[str, Any]], str]) -> Cell:
    def cell(i: dict[str, Any]) -> str:
        return text(i["fault_isolation"][name])

    cell.text = text  # type: ignore[attr-defined] - which wording the column uses
    return cell


def _blast(i: dict[str, Any]) -> str:
    br = i["blast_radius"]
    return f"{br['requests']} ({br['share']:.0%})"


def _collateral(i: dict[str, Any]) -> str:
    c = i["blast_radius"]["collateral"]
    return "n/a" if c is None else str(c)


def _short(view: dict[str, Any]) -> str:
    return isolation_time(view).removeprefix("model ")  # 'not isolated'


_ISOLATION = "model not isolated: suspects and the spans and logs left to read"
# Every layout of the table, fullest first: the first that fits the terminal is printed,
# on one line per incident if any does. The id is in every one, whole: `faultlens report
# ID` needs it next.
LAYOUTS: tuple[tuple[tuple[str, Cell], ...], ...] = (
    (
        ("culprit", culprit_text),
        ("isolated, model-aware", _view("model_aware", isolation_text)),
        ("isolated, service-only", _view("service_only", isolation_text)),
        ("blast radius", _blast),
        ("collateral", _collateral),
    ),
    (
        ("culprit", culprit_text),
        ("model-aware", _view("model_aware", _brief)),
        ("service-only", _view("service_only", _brief)),
        ("blast radius", _blast),
        ("collateral", _collateral),
    ),
    (
        ("culprit", culprit_text),
        ("model-aware", _view("model_aware", _short)),
        ("service-only", _view("service_only", _short)),
        ("blast radius", _blast),
    ),
    (
        ("culprit", _culprit_short),
        ("model-aware", _view("model_aware", _short)),
        ("service-only", _view("service_only", _short)),
        ("blast", lambda i: str(i["blast_radius"]["requests"])),
    ),
    (
        ("culprit", _culprit_short),
        ("model-aware", _view("model_aware", _short)),
        ("service-only", _view("service_only", _short)),
    ),
    (("culprit", _culprit_short),),
)


def _table(doc: dict[str, Any], columns: tuple[tuple[str, Cell], ...], *, title: str) -> Table:
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("id", no_wrap=True)
    rows = [[cell(i) for _, cell in columns] for i in doc["incidents"]]
    for n, (header, _) in enumerate(columns):
        head = header.replace("-", "-\n", 1)  # "model-aware" may take two lines
        # Words wrap in their cells, never cut: no narrower than the longest word.
        words = [w for text in (head, *(r[n] for r in rows)) for w in text.split()]
        table.add_column(head, min_width=max(map(len, words), default=1))
    for i, row in zip(doc["incidents"], rows, strict=True):
        table.add_row(i["id"], *row)
    return table


def incidents_table(doc: dict[str, Any], *, title: str, width: int) -> Table:
    """The fullest of :data:`LAYOUTS` that fits ``width``: on one line per incident if one
    does, else with words wrapped in their cells (never the id)."""
    console = Console(width=10_000)  # measure unclamped
    sizes = [Measurement.get(console, console.options, _table(doc, c, title="")) for c in LAYOUTS]
    one_line = [c for c, m in zip(LAYOUTS, sizes, strict=True) if m.maximum <= width]
    wrapped = [c for c, m in zip(LAYOUTS, sizes, strict=True) if m.minimum <= width]
    # Isolation wrapped in its cell reads better than no isolation at all.
    chosen = next(iter(one_line[:-1] if one_line[-1:] == [LAYOUTS[-1]] else one_line), None)
    chosen = chosen or next(iter(wrapped), LAYOUTS[-1])
    table = _table(doc, chosen, title=title)
    shown = {h for h, _ in chosen}
    gone = [h for h in ("blast radius", "collateral") if h not in shown and h[:5] not in shown]
    notes = [f"not shown: {' and '.join(gone)} (wider terminal, or --format json)"] if gone else []
    if _short in {getattr(cell, "text", None) for _, cell in chosen} and any(
        not v["isolates_model"] for i in doc["incidents"] for v in i["fault_isolation"].values()
    ):
        notes.append(
            "not isolated: the view names the shared process, not its model "
            "(faultlens report ID: suspects left, spans and logs to read)"
        )
    table.caption = "\n".join(notes) or None
    return table


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
    price_vcpu_hour: PriceVcpuHourOption = None,
    price_gb_hour: PriceGbHourOption = None,
) -> None:
    """Incidents with culprit ranking, fault-isolation time, blast radius and collateral.

    The table fits the terminal: narrower, it shortens and drops columns, never the id.
    --format json prints the contract that --schema prints (a JSON Schema), and each
    incident's resource_cost: its run's measured CPU and memory, and the layout verdict.

    While `faultlens serve` holds the store, the server answers.

    Example: faultlens incidents --db .faultlens/faultlens.duckdb --format json --last 30m
    """
    from ..analyzer import StoreError, incidents_schema
    from ..analyzer.analysis._cost import Prices
    from ..analyzer.serve._client import incidents_doc

    if schema:
        typer.echo(json.dumps(incidents_schema(), indent=2))
        return
    if fmt not in ("table", "json"):
        raise typer.BadParameter(f"{fmt!r}: expected table or json", param_hint="--format")
    span = window(since, until, last)
    try:
        prices = Prices(vcpu_hour=price_vcpu_hour, gb_hour=price_gb_hour)
        doc = incidents_doc(db, slo_ms=slo_ms, run=run, window=span, prices=prices)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if fmt == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    console = Console(highlight=False)
    title = f"{plural(len(doc['incidents']), 'incident')} in {db}"
    console.print(incidents_table(doc, title=title, width=console.width))
