"""The cost analysis against the OS: one scenario, both layouts, real processes.

The services export their CPU and memory (OTLP metrics, from inside); the runner reads
the same processes with psutil from outside (truth.json ``os_usage``). The verdict's
figures, computed from the metrics, must agree with the OS's over the same window, on a
run made here and on the 16 committed runs; on the committed runs, the monolith's
per-model CPU split must agree with the per-model processes' own model CPU.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from faultlens.analyzer import ingest
from faultlens.analyzer import open as open_store
from faultlens.analyzer.analysis._cost import RunCost, cpu_seconds, memory
from faultlens.sample_traces import DATA_DIR, LAYOUTS, SCENARIOS, run_scenario
from faultlens.sample_traces._models import WEIGHTS_MB

pytestmark = pytest.mark.timeout(240)

SECONDS = 12.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, RunCost], dict[str, Any]]:
    root = tmp_path_factory.mktemp("cost")
    truths = {}
    for layout in LAYOUTS:
        truth = run_scenario("latency", layout=layout, seconds=SECONDS, out=root / layout)
        truths[truth["run"]] = truth
    db = root / "cost.duckdb"
    assert ingest([root / layout for layout in LAYOUTS], db=db).errors == ()
    return open_store(db).costs(), truths


def _os_frame(
    usage: dict[str, Any], column: int, started: dict[str, int] | None = None
) -> pd.DataFrame:
    """The runner's psutil samples; ``started``: each process's start (truth.json), where
    its counter was 0."""
    rows, ids = usage["rows"], usage["instances"]
    return pd.DataFrame(
        {
            "instance": [ids[r[1]] for r in rows],
            "series": "all",
            "t": [r[0] for r in rows],
            "value": [float(r[column]) for r in rows],
            "t_start": [(started or {}).get(ids[r[1]], r[0]) for r in rows],
        }
    )


@pytest.mark.parametrize("run", [f"latency/{layout}" for layout in LAYOUTS])
def test_the_verdicts_cpu_and_memory_agree_with_the_os_within_10_percent(
    runs: tuple[dict[str, RunCost], dict[str, Any]], run: str
) -> None:
    costs, truths = runs
    cost, usage = costs[run], truths[run]["os_usage"]
    assert cost.window_ns is not None
    # The OS's figures over the verdict's window, by the verdict's own definitions.
    os_cpu = cpu_seconds(_os_frame(usage, 2), cost.window_ns)
    os_mean, os_peak, _, os_processes, _ = memory(_os_frame(usage, 3), cost.window_ns)
    print(f"{run}: CPU-s {cost.cpu_seconds:.3f} vs OS {os_cpu:.3f}, mean RSS "
          f"{cost.mean_rss_bytes / 1e6:.1f} vs {os_mean / 1e6:.1f} MB, peak "
          f"{cost.peak_rss_bytes / 1e6:.1f} vs {os_peak / 1e6:.1f} MB")  # fmt: skip
    assert cost.processes == os_processes == len(truths[run]["services"])
    assert cost.cpu_seconds == pytest.approx(os_cpu, rel=0.10)
    assert cost.mean_rss_bytes == pytest.approx(os_mean, rel=0.10)
    assert cost.peak_rss_bytes == pytest.approx(os_peak, rel=0.10)


@pytest.mark.parametrize("run", [f"latency/{layout}" for layout in LAYOUTS])
def test_each_models_load_time_growth_is_about_its_weights(
    runs: tuple[dict[str, RunCost], dict[str, Any]], run: str
) -> None:
    """The services load each model under model(...).loading(): its process's resident
    memory grew by about the weights it allocated, in either layout."""
    costs, _ = runs
    growth = costs[run].model_load_growth_bytes
    print(run, {m: f"{b / 1e6:.1f} MB" for m, b in growth.items()})
    assert set(growth) == set(WEIGHTS_MB)
    for model, grew in growth.items():
        assert 0.75 * (WEIGHTS_MB[model] << 20) < grew < 1.5 * (WEIGHTS_MB[model] << 20), model


# -- the committed runs: regenerated with metrics, and the runner's OS reading in truth.json
COMMITTED = [f"{name}/{layout}" for name in SCENARIOS for layout in LAYOUTS]


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunCost]:
    db = tmp_path_factory.mktemp("committed") / "committed.duckdb"
    assert ingest([DATA_DIR / run for run in COMMITTED], db=db).errors == ()
    return open_store(db).costs()


@pytest.mark.parametrize("run", COMMITTED)
def test_the_committed_runs_cost_agrees_with_the_os_within_10_percent(
    committed: dict[str, RunCost], run: str
) -> None:
    cost = committed[run]
    truth = json.loads((DATA_DIR / run / "truth.json").read_text())
    usage = truth["os_usage"]
    assert cost.window_ns is not None
    # A restarted process counts from 0 at its start, on both sides.
    started = {i["instance_id"]: i["started_ns"] for i in truth["instances"]}
    services: set[str] = set()
    began = set()
    for one in sorted(truth["instances"], key=lambda i: i["started_ns"]):
        if one["service"] in services:
            began.add(one["instance_id"])
        services.add(one["service"])
    os_cpu = cpu_seconds(_os_frame(usage, 2, started), cost.window_ns, began=frozenset(began))
    os_mean, os_peak, _, _, _ = memory(_os_frame(usage, 3), cost.window_ns)
    print(f"{run}: CPU-s {cost.cpu_seconds:.3f} vs OS {os_cpu:.3f}, mean RSS "
          f"{cost.mean_rss_bytes / 1e6:.1f} vs {os_mean / 1e6:.1f} MB, peak "
          f"{cost.peak_rss_bytes / 1e6:.1f} vs {os_peak / 1e6:.1f} MB, "
          f"unmeasured {cost.unmeasured_instances}")  # fmt: skip
    # The incarnations the runner started, less those that exported metrics: what the
    # cost must own up to not seeing (a crash loop's processes that died within the
    # metrics export interval).
    missing = len(truth["instances"]) - cost.instances
    assert 0 <= cost.unmeasured_instances <= missing
    assert cost.peak_rss_bytes == pytest.approx(os_peak, rel=0.10)
    if missing == 0:
        assert cost.cpu_seconds == pytest.approx(os_cpu, rel=0.10)
        assert cost.mean_rss_bytes == pytest.approx(os_mean, rel=0.10)
    else:  # a floor: never more than the OS saw
        assert cost.cpu_seconds < os_cpu and cost.mean_rss_bytes < os_mean


# Like for like: the scenarios whose two runs served the same load (no restart in either).
# On the committed runs, recorded on a quiet machine: a run made during the tests shares
# the cores with everything else, and the per-model processes' small scopes (tens of
# microseconds a call) then read 10-20% apart from one run to the next.
SAME_LOAD = [
    name
    for name in SCENARIOS
    if not any(
        json.loads((DATA_DIR / name / layout / "truth.json").read_text())["restarts"]
        for layout in LAYOUTS
    )
]


@pytest.mark.parametrize("name", SAME_LOAD)
def test_the_committed_monoliths_model_cpu_split_agrees_within_15_percent(
    committed: dict[str, RunCost], name: str
) -> None:
    mono = committed[f"{name}/monolith"].model_cpu_seconds
    per = committed[f"{name}/per-model"].model_cpu_seconds
    assert set(mono) == set(per) and len(mono) == 6
    print(name, f"total {sum(mono.values()):.4f} vs {sum(per.values()):.4f}")
    assert sum(per.values()) == pytest.approx(sum(mono.values()), rel=0.15)
