"""`faultlens ingest`: OTLP files into the store, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import filesize
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from ._app import DEFAULT_DB, DbOption, app


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="OTLP files or directories (JSON Lines, JSON, protobuf).")
    ],
    db: DbOption = str(DEFAULT_DB),
) -> None:
    """Load OTLP traces, logs and metrics: JSON Lines or JSON, protobuf, directories, .gz/.zst.

    Re-ingesting adds nothing; bad records are quarantined and named one per line.

    Example: faultlens ingest sample_traces/data --db .faultlens/faultlens.duckdb
    """
    from ..analyzer import StoreError
    from ..analyzer import ingest as run_ingest

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TextColumn("{task.fields[amount]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("ingest", total=None, amount="")
        facts: list[TaskID] = []  # the span facts' task, once they start

        def progress(done: int, total: int) -> None:
            amount = f"{filesize.decimal(done)}/{filesize.decimal(total)}"
            bar.update(task, completed=done, total=total, amount=amount)

        def facts_progress(done: int, total: int) -> None:
            if not facts:
                facts.append(bar.add_task("span facts", total=total, amount=""))
            bar.update(facts[0], completed=done, total=total, amount=f"step {done}/{total}")

        try:
            report = run_ingest(paths, db=db, progress=progress, facts_progress=facts_progress)
        except StoreError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None
    for line in report.skipped:
        err.print(f"skipped {line}", markup=False)
    for line in report.errors:
        err.print(f"error: {line}", markup=False)
    if report.errors_omitted:
        err.print(f"error: … and {report.errors_omitted} more (see faultlens_quarantine)")
    typer.echo(
        f"{report.files} files: read {report.read}, stored {report.stored} "
        f"({report.spans} spans, {report.log_records} log records, "
        f"{report.data_points} metric data points), "
        f"duplicates {report.duplicates}, quarantined {report.quarantined} "
        f"in {report.seconds:.1f} s (span facts {report.facts_seconds:.1f} s) -> {db}"
    )
    if report.errors:
        raise typer.Exit(1)
