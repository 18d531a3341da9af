"""Update coupling and library coupling.

DESIGN.md: "Update coupling: per model-version change, how many models were
restarted with it (new service.instance.id), and the downtime seen."
"Library coupling: which models share one runtime and framework set."
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from faultlens.analyzer._dialect import Dialect

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
    rows = []
    versions = versions.sort_values("first_ns")
    for (_, service, model), g in versions.groupby(["run", "service", "model"], sort=False):
        for prev, cur in zip(g.iloc[:-1].itertuples(), g.iloc[1:].itertuples(), strict=True):
            run = cur.run
            mine = instances[(instances.run == run) & (instances.service == service)]
            new = mine[mine.instance == cur.instance]
            started = int(new.first_ns.min()) if len(new) else int(cur.first_ns)
            older = mine[mine.first_ns < started]
            restarted = older.empty is False and cur.instance not in set(older.instance)
            ran = sorted(models[(models.run == run) & (models.instance == cur.instance)].model)
            down = max(0, started - int(older.last_ns.max())) / 1e9 if len(older) else 0.0
            rows.append(
                [
                    run,
                    service,
                    model,
                    prev.version,
                    cur.version,
                    int(cur.first_ns),
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
