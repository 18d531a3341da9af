"""Update coupling and library coupling.

DESIGN.md: "Update coupling: per model-version change, how many models were
restarted with it (new service.instance.id), and the downtime seen."
"Library coupling: which models share one runtime and framework set."
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..store._dialect import Dialect

__all__ = ["library_coupling", "update_coupling"]


def update_coupling(con: Any, d: Dialect) -> pd.DataFrame:
    """One row per model-version change: models restarted with it and the downtime seen.

    The new version's first span names the instance that brought it; every model
    that instance ran was restarted with it. Downtime is the gap between the last
    span of the service's older instances and that first span (0 when they overlap).
    """
    versions = con.execute(
        f"""SELECT run, service, model, version, min(first_ts) AS first_ns,
                   {d.arg_max("instance", "-first_ts")} AS instance
            FROM fl_instances WHERE model IS NOT NULL AND version IS NOT NULL
            GROUP BY run, service, model, version"""
    ).df()
    instances = con.execute(
        """SELECT run, service, instance, min(first_ts) AS first_ns, max(last_end_ts) AS last_ns
           FROM fl_instances GROUP BY run, service, instance"""
    ).df()
    models = con.execute(
        "SELECT DISTINCT run, instance, model FROM fl_instances WHERE model IS NOT NULL"
    ).df()
    cols = [
        "run",
        "service",
        "model",
        "old_version",
        "new_version",
        "changed_ns",
        "restarted",
        "restarted_models",
        "downtime_s",
    ]
    # Plain lookups (a frame filter per change cost more than the rest of the step).
    by_service: dict[tuple, list[tuple[Any, int, Any]]] = {}
    for run, service, instance, first, last in zip(
        instances.run,
        instances.service,
        instances.instance,
        instances.first_ns,
        instances.last_ns,
        strict=True,
    ):
        by_service.setdefault((run, service), []).append((instance, int(first), last))
    ran_by: dict[tuple, list[str]] = {}
    for run, instance, model in zip(models.run, models.instance, models.model, strict=True):
        ran_by.setdefault((run, instance), []).append(model)
    changes: dict[tuple, list[tuple]] = {}  # (run, service, model): versions, first seen
    versions = versions.sort_values("first_ns")
    for row in zip(
        versions.run,
        versions.service,
        versions.model,
        versions.version,
        versions.first_ns,
        versions.instance,
        strict=True,
    ):
        changes.setdefault(row[:3], []).append(row)
    rows = []
    for (_, service, model), g in changes.items():
        for prev, cur in zip(g[:-1], g[1:], strict=True):
            run, version, first_ns, instance = cur[0], cur[3], int(cur[4]), cur[5]
            mine = by_service.get((run, service), [])
            new = [f for i, f, _ in mine if i == instance]
            started = min(new) if new else first_ns
            older = [(i, last) for i, f, last in mine if f < started]
            restarted = bool(older) and instance not in {i for i, _ in older}
            ran = sorted(ran_by.get((run, instance), []))
            down = max(0, started - int(max(last for _, last in older))) / 1e9 if older else 0.0
            rows.append(
                [
                    run,
                    service,
                    model,
                    prev[3],
                    version,
                    first_ns,
                    len(ran) if restarted else 0,
                    ran if restarted else [],
                    round(down, 3) if restarted else 0.0,
                ]
            )
    return pd.DataFrame(rows, columns=cols)


def library_coupling(
    con: Any, d: Dialect, *, run_filter: str, params: dict[str, Any]
) -> pd.DataFrame:
    """Per process (service): its runtime, the framework set, and the models sharing them."""
    a = d.attr
    sql = f"""
        SELECT ServiceName AS service,
               coalesce({a("ResourceAttributes", "process.runtime.name")}, '') || ' ' ||
               coalesce({a("ResourceAttributes", "process.runtime.version")}, '') AS runtime,
               ModelName AS model,
               coalesce({a("SpanAttributes", "ml.model.framework")}, '') || ' ' ||
               coalesce({a("SpanAttributes", "ml.model.framework.version")}, '') AS framework
        FROM otel_traces WHERE {run_filter} AND nullif(ModelName, '') IS NOT NULL
        GROUP BY ServiceName, runtime, ModelName, framework"""
    raw = con.execute(sql, params).df()
    if raw.empty:
        return pd.DataFrame(columns=["service", "runtime", "frameworks", "models", "n_models"])
    raw["runtime"] = raw.runtime.str.strip()
    raw["framework"] = raw.framework.str.strip()
    out = raw.groupby("service").agg(
        runtime=("runtime", lambda s: ", ".join(sorted({x for x in s if x}))),
        frameworks=("framework", lambda s: ", ".join(sorted({x for x in s if x}))),
        models=("model", lambda s: sorted(set(s))),
    )
    out["n_models"] = out.models.map(len)
    return out.reset_index().sort_values(
        ["n_models", "service"], ascending=[False, True], ignore_index=True
    )
