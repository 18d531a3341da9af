"""`faultlens scenarios`: the sample multi-model system under a chosen fault."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer

from ._app import app

scenarios_app = typer.Typer(
    help="The sample multi-model system under a fault from the catalogue.\n\n"
    "Example: faultlens scenarios run crash --layout per-model --seconds 20 --out /tmp/crash",
    no_args_is_help=True,
)
app.add_typer(scenarios_app, name="scenarios")


@scenarios_app.command("list")
def list_scenarios() -> None:
    """List the fault scenarios: name, culprit, what the run shows.

    Example: faultlens scenarios list
    """
    from ..sample_traces import SCENARIOS

    for s in SCENARIOS.values():
        typer.echo(f"{s.name:<16} {s.target:<14} {s.shows}")


@scenarios_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Scenario name (see `faultlens scenarios list`).")],
    layout: Annotated[
        str, typer.Option("--layout", help="monolith (one process) or per-model.")
    ] = "per-model",
    seconds: Annotated[
        float, typer.Option("--seconds", help="Load duration: 3/8 baseline, 3/8 fault, rest.")
    ] = 40.0,
    out: Annotated[
        str, typer.Option("--out", help="Directory for traces, logs and truth.json.")
    ] = "scenario-out",
    rate: Annotated[float, typer.Option("--rate", help="Requests per second.")] = 12.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the traffic mix.")] = 7,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help="Export over OTLP/HTTP to this base URL (e.g. `faultlens collect`) "
            "instead of writing files.",
        ),
    ] = None,
) -> None:
    """Start the sample system in a layout, load it, inject the fault, stop everything.

    Writes traces.jsonl.gz, logs.jsonl.gz (OTLP JSON Lines) and truth.json to --out.
    Every process started is stopped before the command returns.

    Example: faultlens scenarios run crash --layout monolith --seconds 20 --out /tmp/crash
    """
    from ..sample_traces import LAYOUTS, SCENARIOS, run_scenario

    if name not in SCENARIOS:
        typer.echo(f"faultlens scenarios run: unknown scenario {name!r}; "
                   f"known: {', '.join(SCENARIOS)}", err=True)  # fmt: skip
        raise typer.Exit(2)
    if layout not in LAYOUTS:
        typer.echo(f"faultlens scenarios run: --layout must be one of {', '.join(LAYOUTS)}",
                   err=True)  # fmt: skip
        raise typer.Exit(2)
    if not 4 <= seconds <= 600 or not 0 < rate <= 100:
        typer.echo("faultlens scenarios run: --seconds must be 4..600 and --rate 0..100",
                   err=True)  # fmt: skip
        raise typer.Exit(2)
    typer.echo(f"running {name}/{layout} for {seconds:g} s at {rate:g} rps ...")
    truth = run_scenario(name, layout=layout, seconds=seconds, out=out, rate=rate, seed=seed,
                         otlp_endpoint=otlp_endpoint)  # fmt: skip
    outcomes = Counter(r["outcome"] for r in truth["requests"])
    typer.echo(
        f"{len(truth['requests'])} requests ({outcomes['error']} failed), "
        f"{len(truth['restarts'])} restarts; culprit {truth['culprit']['model']} "
        f"on {truth['culprit']['service']}; wrote {out}/truth.json"
    )
