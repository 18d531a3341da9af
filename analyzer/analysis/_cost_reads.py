"""What the cost analysis reads from the store (``_cost.py`` computes with it).

The metrics tables (``otel_metrics_sum``: process CPU and memory, each model scope's CPU;
``otel_metrics_gauge``: each model's load-time growth) and the spans (the run's requests,
its window, the incarnations they name), in SQL written once for both engines through the
dialect (``store/_dialect.py``): faultlens' DuckDB store or the Collector exporter's
tables on chDB or a server. Rows come in one order on every engine, so what is computed
from them is the same on both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ..store._dialect import Dialect

__all__ = [
    "CPU_METRIC",
    "LOAD_GROWTH_METRIC",
    "MODEL_CPU_METRIC",
    "Query",
    "RSS_METRIC",
    "read_load_growth",
    "read_requests",
    "read_samples",
    "read_span_instances",
]

CPU_METRIC = "process.cpu.time"
RSS_METRIC = "process.memory.usage"
MODEL_CPU_METRIC = "faultlens.model.cpu.time"
LOAD_GROWTH_METRIC = "faultlens.model.load.memory_growth"
Query = Callable[[str, dict[str, Any] | None], pd.DataFrame]


def read_samples(q: Query, d: Dialect) -> pd.DataFrame:
    """The process and model-scope samples: [run, layout, scenario, instance, metric,
    series, model, t, value, t_start], in one order on every engine (what follows keeps
    the last value of a bucket)."""
    a = d.attr
    names = ", ".join(f"'{n}'" for n in (CPU_METRIC, RSS_METRIC, MODEL_CPU_METRIC))
    try:
        return q(
            f"""SELECT coalesce({a("ResourceAttributes", "faultlens.run")}, '') AS run,
                       coalesce({a("ResourceAttributes", "faultlens.layout")}, '') AS layout,
                       coalesce({a("ResourceAttributes", "faultlens.scenario")}, '') AS scenario,
                       coalesce({a("ResourceAttributes", "service.instance.id")}, '')
                           AS instance,
                       ServiceName AS service, MetricName AS metric,
                       coalesce({a("Attributes", "cpu.mode")}, {a("Attributes", "type")}, '')
                           AS series,
                       {a("Attributes", "ml.model.name")} AS model,
                       {d.epoch_ns("TimeUnix")} AS t, Value AS value,
                       {d.epoch_ns("StartTimeUnix")} AS t_start
                FROM otel_metrics_sum WHERE MetricName IN ({names})
                ORDER BY run, instance, metric, series, model, t, value""",
            None,
        )
    except Exception as exc:  # a store written before metrics existed has no such table
        if "otel_metrics_sum" in str(exc):
            return pd.DataFrame(
                columns=["run", "layout", "scenario", "instance", "service", "metric"]
                + ["series", "model"]
                + ["t", "value", "t_start"]
            )
        raise


def read_load_growth(q: Query, d: Dialect) -> dict[str, dict[str, float]]:
    """Run -> model -> resident bytes its process grew by while it loaded (its latest load
    in the run, when several instances loaded it)."""
    a = d.attr
    try:
        frame = q(
            f"""SELECT coalesce({a("ResourceAttributes", "faultlens.run")}, '') AS run,
                       {a("Attributes", "ml.model.name")} AS model,
                       {d.epoch_ns("TimeUnix")} AS t, Value AS value
                FROM otel_metrics_gauge WHERE MetricName = '{LOAD_GROWTH_METRIC}'
                ORDER BY run, model, t, value""",
            None,
        )
    except Exception as exc:  # a store written before metrics existed has no such table
        if "otel_metrics_gauge" in str(exc):
            return {}
        raise
    out: dict[str, dict[str, float]] = {}
    for run, model, value in zip(frame.run, frame.model, frame.value, strict=True):
        if isinstance(model, str):  # rows are in time order: the latest load stays
            out.setdefault(str(run), {})[model] = float(value)
    return out


def read_span_instances(q: Query, d: Dialect) -> pd.DataFrame:
    """[run, service, instance]: every process incarnation the spans name."""
    return q(
        f"""SELECT DISTINCT coalesce({d.attr("ResourceAttributes", "faultlens.run")}, '')
                       AS run, ServiceName AS service, ServiceInstanceId AS instance
            FROM otel_traces""",
        None,
    )


def read_requests(q: Query, d: Dialect) -> dict[str, tuple[int, int, int]]:
    """Run -> (requests, first span start, last span end) in epoch ns (Duration cast: a
    signed plus unsigned 64-bit sum comes back as a float from DuckDB, ~100 ns off)."""
    frame = q(
        f"""SELECT coalesce({d.attr("ResourceAttributes", "faultlens.run")}, '') AS run,
                   count(DISTINCT TraceId) AS n, min({d.epoch_ns("Timestamp")}) AS t0,
                   max({d.epoch_ns("Timestamp")} + CAST(Duration AS BIGINT)) AS t1
            FROM otel_traces GROUP BY 1""",
        None,
    )
    return {
        str(r): (int(n), int(t0), int(t1))
        for r, n, t0, t1 in zip(frame.run, frame.n, frame.t0, frame.t1, strict=True)
    }
