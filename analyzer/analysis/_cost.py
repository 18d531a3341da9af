"""Resource cost per run and per layout pair, from the OTLP metrics the services export.

DESIGN's trade-off has two sides: isolation and blast radius (the incident analysis) and
cost (this module). Every figure is measured; none is a default or an estimate:

- **the window**: the run's requests, from the first span's start to the last span's end
  in its traces, so start-up before the load and idling after it are left out (and the
  two layouts of a scenario are measured over the same load);
- **CPU-seconds**: the growth of each process's ``process.cpu.time`` (all modes) over the
  window, read off its cumulative counter linearly between exports at the window's edges
  (within the process's first and last export), summed over processes;
- **per 1,000 requests**: over the requests the run's traces hold (distinct trace ids);
- **resident memory**: ``process.memory.usage`` in the window, summed over the processes
  alive at each export interval (a process's last value held until its next), then its
  mean and peak;
- **processes**: the most alive at once; **idle footprint**: the lowest summed resident
  memory while all of them were alive;
- **per-model CPU**: ``faultlens.model.cpu.time`` (instrumentation/_metrics.py), the
  thread CPU time of each model scope: measured inside a monolith, not apportioned.
- **memory per model**: it cannot be separated inside one heap, so the memory figures
  above are the processes' footprint (measured). Beside them, each model's **load-time
  growth** (``faultlens.model.load.memory_growth``, instrumentation/_memory.py): how much
  its process's resident memory grew while the service loaded it under
  ``model(...).loading()``, the latest load of each model in the run. An estimate of the
  model's own share, reported as one, only where the service records its loading.

Prices are optional (``price_vcpu_hour``, ``price_gb_hour``); without them only resource
units are reported. The verdict compares the two layouts of one scenario, and puts the
incident side beside it when the caller hands it (suspects, evidence, collateral).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..store._dialect import Dialect
from ._cost_reads import (
    CPU_METRIC,
    MODEL_CPU_METRIC,
    RSS_METRIC,
    Query,
    read_load_growth,
    read_requests,
    read_samples,
    read_span_instances,
)

__all__ = [
    "Prices",
    "RunCost",
    "cpu_seconds",
    "memory",
    "Verdict",
    "incident_side",
    "layout_verdicts",
    "pairs",
    "run_costs",
    "verdict",
]


@dataclass(frozen=True)
class Prices:
    """Optional unit prices; a figure in money is shown only for the prices given."""

    vcpu_hour: float | None = None
    gb_hour: float | None = None


@dataclass(frozen=True)
class RunCost:
    """What one run's processes used, measured from their metrics."""

    run: str
    layout: str
    scenario: str
    requests: int
    processes: int
    instances: int
    seconds: float
    cpu_seconds: float
    cpu_seconds_per_1k: float | None
    mean_rss_bytes: float
    peak_rss_bytes: float
    idle_rss_bytes: float
    model_cpu_seconds: dict[str, float] = field(default_factory=dict)
    # each model's resident memory growth while it loaded (an estimate, not a footprint)
    model_load_growth_bytes: dict[str, float] = field(default_factory=dict)
    money: dict[str, float] | None = None
    # what was measured over: the run's requests, first span start to last span end (ns)
    window_ns: tuple[int, int] | None = None
    # Incarnations of the measured services seen in the spans that exported no process
    # metrics (a crash loop's processes dying before their first export): their CPU and
    # memory are not in the figures above, which are then a floor.
    unmeasured_instances: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: what ``faultlens incidents --format json`` prints is this."""
        out = asdict(self)
        if self.window_ns is not None:
            out["window_ns"] = [int(t) for t in self.window_ns]
        return out


def cpu_seconds(
    cpu: pd.DataFrame,
    window: tuple[int, int] | None,
    *,
    from_zero: bool = False,
    began: frozenset[str] = frozenset(),
) -> float:
    """Summed growth of cumulative CPU counters ([instance, series, t, value, t_start])
    over ``window`` (epoch ns; None: each series' whole span), interpolated at its edges.
    ``from_zero``: the counter was 0 at its start time (an SDK counter; not the process's
    CPU, which counts from the process's start). ``began``: instances that started inside
    the window (a restart): all their CPU, start-up included, was spent there, so they
    count from 0 at their first sample's start."""
    total = 0.0
    for _, one in cpu.groupby(["instance", "series"]):
        t, v = one.t.to_numpy(np.float64), one.value.to_numpy(np.float64)
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        if from_zero or str(one.instance.iloc[0]) in began:
            t, v = np.r_[min(float(one.t_start.min()), t[0]), t], np.r_[0.0, v]
        lo, hi = (t[0], t[-1]) if window is None else (max(t[0], window[0]), min(t[-1], window[1]))
        if hi > lo:
            total += float(np.interp(hi, t, v) - np.interp(lo, t, v))
    return total


def memory(
    rss: pd.DataFrame, window: tuple[int, int] | None
) -> tuple[float, float, float, int, float]:
    """(mean, peak, idle) summed resident bytes ([instance, t, value] in ``window``), most
    processes alive, seconds observed."""
    if window is not None:
        rss = rss[(rss.t >= window[0]) & (rss.t <= window[1])]
    if rss.empty:
        return 0.0, 0.0, 0.0, 0, 0.0
    per = rss.sort_values("t").groupby("instance").t.diff().dropna()
    step = int(per.median()) if len(per) else 1_000_000_000
    step = max(step, 1)
    rss = rss.assign(bucket=(rss.t // step).astype(np.int64))
    grid = rss.pivot_table(index="bucket", columns="instance", values="value", aggfunc="last")
    grid = grid.reindex(range(int(grid.index.min()), int(grid.index.max()) + 1))
    # A process counts from its first export to its last, its value held in between.
    alive = grid.ffill().where(grid.bfill().notna())
    total, count = alive.sum(axis=1), alive.notna().sum(axis=1)
    full = total[count == count.max()]
    seconds = (rss.t.max() - rss.t.min()) / 1e9
    return float(total.mean()), float(total.max()), float(full.min()), int(count.max()), seconds


def run_costs(q: Query, d: Dialect, *, prices: Prices | None = None) -> dict[str, RunCost]:
    """Each run's measured cost (runs without process metrics are left out)."""
    samples = read_samples(q, d)
    if samples.empty:
        return {}
    requests = read_requests(q, d)
    loads = read_load_growth(q, d)
    seen = read_span_instances(q, d)
    out: dict[str, RunCost] = {}
    for run, rows in samples.groupby("run", sort=True):
        cpu = rows[rows.metric == CPU_METRIC]
        if cpu.empty:
            continue
        n, *edges = requests.get(str(run), (0, 0, 0))
        window = (edges[0], edges[1]) if n else None
        used = cpu_seconds(cpu, window, began=restarts(cpu))
        models = rows[(rows.metric == MODEL_CPU_METRIC) & rows.model.notna()]
        model_cpu = {
            model: cpu_seconds(one, window, from_zero=True)
            for model, one in models.assign(series=models.model).groupby("model")
        }
        mean, peak, idle, processes, seconds = memory(rows[rows.metric == RSS_METRIC], window)
        money = _money(prices, used, mean, seconds, n)
        out[str(run)] = RunCost(
            run=str(run),
            layout=str(rows.layout.iloc[0]),
            scenario=str(rows.scenario.iloc[0]),
            requests=n,
            processes=processes,
            instances=int(cpu.instance.nunique()),
            seconds=round(float(seconds), 3),
            cpu_seconds=round(used, 4),
            cpu_seconds_per_1k=round(used / n * 1000, 4) if n else None,
            mean_rss_bytes=round(mean),
            peak_rss_bytes=round(peak),
            idle_rss_bytes=round(idle),
            model_cpu_seconds={str(k): round(v, 4) for k, v in model_cpu.items()},
            model_load_growth_bytes={
                m: round(v) for m, v in sorted(loads.get(str(run), {}).items())
            },
            money=money,
            window_ns=window,
            unmeasured_instances=_unmeasured(seen[seen.run == run], cpu),
        )
    return out


def restarts(cpu: pd.DataFrame) -> frozenset[str]:
    """Instances that replaced an earlier one of their service in the run (not its first
    incarnation): they started inside the run."""
    first = cpu.groupby(["service", "instance"]).t.min().reset_index().sort_values("t")
    later = first[first.duplicated("service", keep="first")]
    return frozenset(later.instance.astype(str))


def _unmeasured(seen: pd.DataFrame, cpu: pd.DataFrame) -> int:
    """Incarnations of services that export process metrics, seen in the spans, that
    exported none themselves (a service that never exports, a load generator, is not
    counted: nothing of it is measured)."""
    measured = seen[seen.service.isin(set(cpu.service))]
    return int((~measured.instance.isin(set(cpu.instance))).sum())


def _money(
    prices: Prices | None, cpu_seconds: float, mean_rss: float, seconds: float, requests: int
) -> dict[str, float] | None:
    if prices is None or (prices.vcpu_hour is None and prices.gb_hour is None):
        return None
    money: dict[str, float] = {}
    if prices.vcpu_hour is not None:
        money["cpu"] = cpu_seconds / 3600 * prices.vcpu_hour
    if prices.gb_hour is not None:
        money["memory"] = mean_rss / 1e9 * seconds / 3600 * prices.gb_hour
    money["total"] = sum(money.values())
    if requests:
        money["per_1k_requests"] = money["total"] / requests * 1000
    return {k: round(v, 8) for k, v in money.items()}


@dataclass(frozen=True)
class Verdict:
    """Both sides of the layout trade-off for one scenario, from measurements only."""

    scenario: str
    monolith: RunCost
    per_model: RunCost
    sentence: str
    table: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "sentence": self.sentence,
            "table": self.table,
            "monolith": self.monolith.to_dict(),
            "per_model": self.per_model.to_dict(),
        }


def _change(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return new / old - 1


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0%}"


def verdict(
    monolith: RunCost, per_model: RunCost, *, incident: dict[str, tuple[Any, Any]] | None = None
) -> Verdict:
    """The sentence and table comparing the layouts; ``incident`` maps "suspects",
    "evidence" (records to read) and "collateral" (requests) to (monolith, per-model)."""
    memory = _change(per_model.mean_rss_bytes, monolith.mean_rss_bytes)
    cpu = _change(per_model.cpu_seconds_per_1k, monolith.cpu_seconds_per_1k)
    sentence = (
        f"per-model used {_pct(memory)} memory and {_pct(cpu)} CPU per request "
        f"({per_model.processes} processes against {monolith.processes})"
    )
    table = [
        _row("processes", monolith.processes, per_model.processes),
        _row(
            "CPU-seconds per 1,000 requests",
            monolith.cpu_seconds_per_1k,
            per_model.cpu_seconds_per_1k,
        ),  # fmt: skip
        _row(
            "mean resident memory (MB)",
            monolith.mean_rss_bytes / 1e6,
            per_model.mean_rss_bytes / 1e6,
        ),  # fmt: skip
        _row(
            "peak resident memory (MB)",
            monolith.peak_rss_bytes / 1e6,
            per_model.peak_rss_bytes / 1e6,
        ),  # fmt: skip
        _row("idle footprint (MB)", monolith.idle_rss_bytes / 1e6, per_model.idle_rss_bytes / 1e6),
    ]
    if monolith.money and per_model.money and "per_1k_requests" in monolith.money:
        table.append(
            _row(
                "cost per 1,000 requests",
                monolith.money["per_1k_requests"],
                per_model.money.get("per_1k_requests"),
            )  # fmt: skip
        )
    unmeasured = monolith.unmeasured_instances + per_model.unmeasured_instances
    if unmeasured:
        sentence += (
            f" (a floor: {unmeasured} process incarnations exported no metrics before dying)"
        )
    if incident:
        sentence += _incident_clause(incident, table)
    return Verdict(monolith.scenario, monolith, per_model, sentence, table)


_MOVED = {
    "suspects": ("suspects from {} to {}", "suspects stayed at {}"),
    "evidence": ("evidence to read from {} to {} records", "evidence to read stayed at {} records"),
    "collateral": ("collateral from {} requests to {}", "collateral stayed at {} requests"),
}


def _incident_clause(incident: dict[str, tuple[Any, Any]], table: list[dict[str, Any]]) -> str:
    """ "; in this incident it cut ..., it raised ..., ... stayed at ...": each figure under
    the verb its measurement earned (the table gets a row per figure)."""
    cut, raised, kept = [], [], []
    for key, (moved, same) in _MOVED.items():
        if key in incident and None not in incident[key]:
            mono, per = incident[key]
            table.append(_row(key, mono, per, side="incident"))
            if per == mono:
                kept.append(same.format(mono))
            else:
                (cut if per < mono else raised).append(moved.format(mono, per))
    clauses = [f"it cut {', '.join(cut)}"] if cut else []
    clauses += [f"it raised {', '.join(raised)}"] if raised else []
    clauses += kept
    return f"; in this incident {'; '.join(clauses)}" if clauses else ""


def _row(metric: str, monolith: Any, per_model: Any, *, side: str = "cost") -> dict[str, Any]:
    def rounded(v: Any) -> Any:
        return float(f"{v:.4g}") if isinstance(v, float | np.floating) else v

    return {
        "side": side,
        "metric": metric,
        "monolith": rounded(monolith),
        "per-model": rounded(per_model),
    }


def pairs(costs: dict[str, RunCost]) -> list[tuple[RunCost, RunCost]]:
    """(monolith, per-model) runs of the same scenario."""
    by: dict[str, dict[str, RunCost]] = {}
    for cost in costs.values():
        if cost.scenario:
            by.setdefault(cost.scenario, {})[cost.layout] = cost
    return [
        (layouts["monolith"], layouts["per-model"])
        for _, layouts in sorted(by.items())
        if "monolith" in layouts and "per-model" in layouts
    ]


def incident_side(monolith: Any, per_model: Any) -> dict[str, tuple[Any, Any]]:
    """The incident half of the verdict, from one incident of each layout (``Incident``):
    what an on-call reading service-level telemetry faces (suspects, records to read),
    and the requests hurt that never touched the culprit model."""

    def service_only(i: Any) -> Any:
        return next(v for v in i.isolation if v.view == "service_only")

    mono, per = service_only(monolith), service_only(per_model)
    return {
        "suspects": (mono.suspects, per.suspects),
        "evidence": (
            mono.evidence_spans + mono.evidence_logs,
            per.evidence_spans + per.evidence_logs,
        ),
        "collateral": (monolith.blast.collateral, per_model.blast.collateral),
    }


def layout_verdicts(costs: dict[str, RunCost], incidents: list[Any]) -> dict[str, Verdict]:
    """Scenario -> the verdict of its monolith/per-model pair; the incident side from each
    run's largest incident (by blast radius), when both runs have one."""
    largest: dict[str, Any] = {}
    for i in incidents:
        if i.run not in largest or i.blast.requests > largest[i.run].blast.requests:
            largest[i.run] = i
    out = {}
    for mono, per in pairs(costs):
        side = None
        if mono.run in largest and per.run in largest:
            side = incident_side(largest[mono.run], largest[per.run])
        out[mono.scenario] = verdict(mono, per, incident=side)
    return out
