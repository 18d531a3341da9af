"""The cost analysis against the OS: one scenario, both layouts, real processes.

The services export their CPU and memory (OTLP metrics, from inside); the runner reads
the same processes with psutil from outside (truth.json ``os_usage``). The verdict's
figures, computed from the metrics, must agree with the OS's over the same window, and
the monolith's per-model CPU split with the per-model processes' own model CPU.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from faultlens.analyzer import ingest
from faultlens.analyzer import open as open_store
from faultlens.analyzer.analysis._cost import RunCost, cpu_seconds, memory
from faultlens.sample_traces import LAYOUTS, run_scenario
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


def _os_frame(usage: dict[str, Any], column: int) -> pd.DataFrame:
    rows = usage["rows"]
    return pd.DataFrame(
        {
            "instance": [usage["instances"][r[1]] for r in rows],
            "series": "all",
            "t": [r[0] for r in rows],
            "value": [float(r[column]) for r in rows],
            "t_start": [r[0] for r in rows],
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


def test_the_monoliths_model_cpu_split_agrees_with_the_model_processes_within_15_percent(
    runs: tuple[dict[str, RunCost], dict[str, Any]],
) -> None:
    costs, _ = runs
    mono = costs["latency/monolith"].model_cpu_seconds
    per = costs["latency/per-model"].model_cpu_seconds
    assert set(mono) == set(per) == {"tokenize", "sentiment", "embed", "rank", "fraud",
                                     "recommend"}  # fmt: skip
    # Like with like: each model's own scope CPU, in the monolith and in its own process
    # (that process's CPU less its server and telemetry work).
    print({m: f"{mono[m]:.4f} vs {per[m]:.4f}" for m in mono},
          f"total {sum(mono.values()):.4f} vs {sum(per.values()):.4f}")  # fmt: skip
    assert sum(per.values()) == pytest.approx(sum(mono.values()), rel=0.15)


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
