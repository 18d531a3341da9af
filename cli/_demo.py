"""`faultlens demo`: sample traces in, dashboard up."""

from __future__ import annotations

import typer

from faultlens.cli._app import app


@app.command()
def demo() -> None:
    """Load the sample traces into the default store and open the dashboard.

    Example: faultlens demo
    """
    typer.echo(
        "faultlens demo: the skeleton is in place (instrumentation, analyzer, dashboards, "
        "sample_traces); ingest, analysis and the dashboard arrive with their issues."
    )
