"""`faultlens demo`: sample traces in, dashboard up."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import typer

from ._app import DEFAULT_DB, app
from ._dashboard import HostOption, free_port, serve

# The run whose contrast shows the all-in-one cost most plainly (printed as a link).
SHOWCASE = "cpu-hog/monolith"


def sample_runs() -> dict[str, Path]:
    """The committed sample runs: ``"<scenario>/<layout>"`` -> its directory."""
    data = Path(str(files("faultlens.sample_traces") / "data"))
    return {
        f"{d.parent.name}/{d.name}": d
        for d in sorted(data.glob("*/*"))
        if d.is_dir() and any(d.glob("*.jsonl*"))
    }


def missing_runs(db: Path, runs: dict[str, Path]) -> dict[str, Path]:
    """The sample runs the store does not hold yet (all of them when there is no store)."""
    if not db.is_file():
        return runs
    from faultlens import analyzer

    held = set(analyzer.open(str(db), read_only=True).runs()["run"])
    return {name: path for name, path in runs.items() if name not in held}


@app.command()
def demo(host: HostOption = "127.0.0.1") -> None:
    """Load the committed sample traces into the default store, then serve the dashboard.

    Loads only what the store does not hold yet, so a second run starts at once.
    The dashboard listens on 127.0.0.1, port 8501 (another free port if that one is taken).

    Example: faultlens demo
    """
    from faultlens import analyzer

    db = DEFAULT_DB
    runs = sample_runs()
    if not runs:
        typer.echo("faultlens demo: no committed sample traces under sample_traces/data.")
        raise typer.Exit(2)
    todo = missing_runs(db, runs)
    if todo:
        db.parent.mkdir(parents=True, exist_ok=True)
        typer.echo(f"faultlens demo: loading {len(todo)} sample runs into {db}")
        analyzer.ingest([str(p) for p in todo.values()], db=str(db))
    else:
        typer.echo(f"faultlens demo: {db} already holds the {len(runs)} sample runs")
    port = free_port(host, 8501)
    if SHOWCASE in runs:
        typer.echo(
            f"faultlens demo: one model's CPU hog, monolith against per-model: "
            f"http://{host}:{port}/contrast?run={SHOWCASE}"
        )
    serve(str(db), host=host, port=port)
