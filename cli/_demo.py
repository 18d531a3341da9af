"""`faultlens demo`: sample traces in, dashboard up."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated

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
def demo(
    host: HostOption = "127.0.0.1",
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Start `faultlens serve` and stream the sample system into it; "
            "a fault is injected after about a minute.",
        ),
    ] = False,
    scenario: Annotated[
        str, typer.Option("--scenario", help="With --live: the fault to inject.")
    ] = "error-burst",
    layout: Annotated[str, typer.Option("--layout", help="With --live: the layout.")] = (
        "per-model"
    ),
) -> None:
    """Load the committed sample traces into the default store, then serve the dashboard.

    Loads only what the store does not hold yet, so a second run starts at once.
    The dashboard listens on 127.0.0.1, port 8501 (another free port if that one is taken).

    --live instead starts `faultlens serve` on .faultlens/live.duckdb and runs the sample
    system against it through the real OTLP exporter: watch the incident open, its culprit
    named, and the incident resolve.

    Example: faultlens demo --live
    """
    from faultlens import analyzer

    if live:
        live_demo(host=host, scenario=scenario, layout=layout)
        return

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


LIVE_DB = DEFAULT_DB.with_name("live.duckdb")
# The sample load: 3/8 baseline (75 s), 3/8 fault, the rest healthy (50 s: the incident
# resolves after the hold-down, 15 s of healthy data).
LIVE_SECONDS = 200


def live_demo(*, host: str, scenario: str, layout: str) -> None:
    """`faultlens serve` on LIVE_DB, the sample system streaming into it, until Ctrl-C."""
    from ..analyzer.serve._client import server_for

    exe = str(Path(sys.executable).with_name("faultlens"))
    port = free_port(host, 8501)
    http, grpc = free_port(host, 4318), free_port(host, 4317)
    LIVE_DB.parent.mkdir(parents=True, exist_ok=True)
    argv = [exe, "serve", "--db", str(LIVE_DB), "--host", host, "--port", str(port)]
    argv += ["--otlp-http-port", str(http), "--otlp-grpc-port", str(grpc), "--hold-down", "15"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while (found := server_for(LIVE_DB)) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                typer.echo("faultlens demo: faultlens serve did not start", err=True)
                raise typer.Exit(2)
            time.sleep(0.1)
        typer.echo(f"faultlens demo: dashboard http://{host}:{port}  (API {found.info.url})")
        typer.echo(
            f"faultlens demo: streaming {scenario}/{layout} for {LIVE_SECONDS} s; the fault "
            "starts after about a minute (Ctrl-C stops everything)"
        )
        with tempfile.TemporaryDirectory(prefix="faultlens-live-") as out:
            run = [exe, "scenarios", "run", scenario, "--layout", layout]
            run += ["--seconds", str(LIVE_SECONDS), "--out", out]
            run += ["--otlp-endpoint", found.info.url]
            subprocess.run(run, check=False)
        for i in found.get("/api/live").json()["incidents"]:
            c = i["culprit"]
            typer.echo(f"  {i['id']}: {i['state']}, culprit {c['service']} / {c['model']}")
        typer.echo(f"faultlens demo: still serving http://{host}:{port}; Ctrl-C stops it")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(60)
