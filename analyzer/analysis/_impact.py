"""Blast radius, collateral and the per-model counterfactual of one incident.

DESIGN.md: "Blast radius: entry requests that failed or broke their latency
objective during the incident, above the baseline rate; broken down by
endpoint, model, service; as counts and as a share of traffic. Collateral =
affected requests whose traces never touched the culprit: its model when it has
one, its service when it runs no model (a feature store). Null only when the
culprit model is unknown inside a shared process."
"Counterfactual layout: from monolith telemetry, the blast radius had each
model run in its own service (collateral removed), next to the actual one."

A request that reached no model at all (a dead process refused it: only the
ingress's or caller's span is left) would have touched what its endpoint's
baseline requests touched, so it counts as collateral in the share of them that
never touched the culprit, not as wholly collateral.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..facts._sql import bad_requests_cte, touch_items
from ..store._dialect import Dialect

__all__ = ["BlastRadius", "blast_radius", "counterfactual_per_model"]


@dataclass(frozen=True)
class BlastRadius:
    """Affected requests above the baseline rate; ``collateral`` None when the culprit
    model is unknown inside a shared process."""

    requests: int
    share: float
    total: int
    collateral: int | None
    breakdown: pd.DataFrame  # dimension, key, requests, share, collateral


def blast_radius(
    con: Any,
    d: Dialect,
    *,
    run: str,
    base_start: int,
    onset: int,
    end: int,
    collateral_of: tuple[str, str] | None,
    slo_ms: float | None,
    extent: tuple[int, int] | None = None,
    after_end: int | None = None,
) -> BlastRadius:
    """Affected entry requests during [onset, end) beyond the baseline's bad rate.

    The bad rate is that of the normal traffic either side: [base_start, onset) and
    [end, ``after_end``) when given. A short baseline holds only a few bad requests, and
    their rate is scaled by the incident's length: every normal request counts.

    ``collateral_of``: what a request must have touched not to be collateral,
    ``("model", name)`` or ``("service", name)`` (a culprit that runs no model); None when
    the culprit model is unknown inside a shared process (no collateral then).
    ``extent``: the run's first and last request (ns), when the caller has them.
    """
    p: dict[str, Any] = {
        "run": run,
        "base_start": base_start,
        "onset": onset,
        "end": end,
        "after_end": max(after_end or end, end),
    }
    prm = {k: d.param(k, "String" if k == "run" else "Nullable(Int64)") for k in p}
    sums = _affected(con, d, p, prm, slo_ms=slo_ms, collateral_of=collateral_of)
    zero = [0.0, 0.0, 0.0, 0.0]
    groups = sorted({k[:2] for k in sums})  # (dimension, key), as a grouping orders them
    base_n = {g: sums.get((*g, 0), zero)[0] for g in groups}
    inc_n = {g: sums.get((*g, 1), zero)[0] for g in groups}

    def normal(g: tuple[str, str]) -> list[float]:
        """The sums of the normal traffic before and after the incident."""
        a, b = sums.get((*g, 0), zero), sums.get((*g, 2), zero)
        return [x + y for x, y in zip(a, b, strict=True)]

    def excess(before: list[float], now: list[float], bad: int, n: int) -> int:
        """Bad requests during the incident beyond the baseline's bad rate."""
        rate = before[bad] / before[n] if before[n] > 0 else 0.0
        return int(round(max(now[bad] - rate * now[n], 0.0)))

    rows: dict[tuple[str, str], list[float]] = {}
    for g in groups:
        before, now = normal(g), sums.get((*g, 1), zero)
        collateral = excess(before, now, 3, 2) if collateral_of else 0
        rows[g] = [excess(before, now, 1, 0), collateral]
    silent = _silent_requests(con, d, p, prm, base_n, inc_n, collateral_of, extent=extent)
    for g, (n, c) in silent.items():
        acc = rows.setdefault(g, [0, 0])
        acc[0] += n
        acc[1] += c
    total = int(inc_n.get(("all", ""), 0)) + (silent[("all", "")][0] if silent else 0)
    head = rows.get(("all", ""))
    requests = int(head[0]) if head else 0
    collateral = int(head[1]) if collateral_of and head else None
    if collateral is not None:
        collateral = min(collateral, requests)
    # By dimension, most requests first (then by key).
    kept = sorted(
        ((g, r) for g, r in rows.items() if g[0] != "all" and r[0] > 0),
        key=lambda x: (x[0][0], -x[1][0], x[0][1]),
    )
    breakdown = pd.DataFrame(
        {
            "dimension": pd.Series([g[0] for g, _ in kept], dtype=str),
            "key": pd.Series([g[1] for g, _ in kept], dtype=str),
            "requests": np.array([int(r[0]) for _, r in kept], dtype=np.int64),
            "share": np.array([r[0] / max(total, 1) for _, r in kept], dtype=float),
            "collateral": (
                np.array([int(r[1]) for _, r in kept], dtype=np.int64)
                if collateral_of
                else pd.Series([None] * len(kept), dtype=object)
            ),
        }
    )
    return BlastRadius(
        requests=requests,
        share=round(requests / total, 6) if total else 0.0,
        total=total,
        collateral=collateral,
        breakdown=breakdown,
    )


def _affected(
    con: Any,
    d: Dialect,
    p: dict[str, Any],
    prm: dict[str, str],
    *,
    slo_ms: float | None,
    collateral_of: tuple[str, str] | None,
) -> dict[tuple[str, str, int], list[float]]:
    """Requests from baseline start to after_end, per (dimension, key, inc): count, bad,
    untouched (would not have touched the culprit: ``collateral_of``) and
    bad-and-untouched. ``inc``: 0 before the onset, 1 in the incident, 2 after its end.

    The requests are grouped by endpoint, inc and what their trace touched (``touch``: a
    run holds few distinct ones); hit, reached and every model and service dimension
    follow from the touch, here.
    """
    sql = f"""
        WITH {bad_requests_cte(d, slo_ms=slo_ms)}
        SELECT endpoint, inc, touch, count(*) AS n, sum(bad) AS b
        FROM (SELECT q.endpoint, q.touch, q.bad,
                     CASE WHEN q.ts < {prm["onset"]} THEN 0
                          WHEN q.ts < {prm["end"]} THEN 1 ELSE 2 END AS inc
              FROM req q WHERE q.ts >= {prm["base_start"]} AND q.ts < {prm["after_end"]}) g
        GROUP BY endpoint, inc, touch"""
    g = con.execute(sql, p).df()
    dim, culprit = collateral_of or ("model", None)
    touched: dict[str | None, tuple[list[str], list[str], bool, bool]] = {}
    rows = []
    for e, i, t, n, b in g.itertuples(index=False):
        t = t if isinstance(t, str) else None
        if t not in touched:
            items = touch_items(t)
            models = sorted({m for _, m, _ in items if m is not None})
            services = sorted({s for s, _, _ in items if s is not None})
            hit = culprit in (models if dim == "model" else services)
            touched[t] = (models, services, hit, bool(models))
        rows.append((e, int(i), touched[t], float(n), float(b)))
    # Of each endpoint's baseline requests that reached a model, the share that hit the
    # culprit: what a request that reached none would have touched.
    base = {}
    for e, inc, (_, _, hit, reached), n, _ in rows:
        if inc != 1 and reached:
            hits, all_ = base.get(e, (0.0, 0.0))
            base[e] = (hits + n * hit, all_ + n)
    acc: dict[tuple, list[float]] = {}
    for e, inc, (models, services, hit, reached), n, b in rows:
        if hit:
            u = 0.0
        elif not reached:
            hits, all_ = base.get(e, (0.0, 0.0))
            u = 1.0 - (hits / all_ if all_ else 0.0)
        else:
            u = 1.0
        keys = [("all", "", inc), ("endpoint", e, inc)]
        keys += [("model", m, inc) for m in models] + [("service", s, inc) for s in services]
        for key in keys:
            sums = acc.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            sums[0] += n
            sums[1] += b
            sums[2] += n * u
            sums[3] += b * u
    return acc


def _silent_requests(
    con: Any,
    d: Dialect,
    p: dict[str, Any],
    prm: dict[str, str],
    base_n: dict[tuple[str, str], float],
    inc_n: dict[tuple[str, str], float],
    collateral_of: tuple[str, str] | None,
    *,
    extent: tuple[int, int] | None,
) -> dict[tuple[str, str], tuple[int, int]]:
    """Requests that left no span: traffic that fell below the baseline rate (a dead process).

    A crashed entry process records nothing for the requests it refused, so they are
    counted as the shortfall against the baseline rate, spread over endpoints by each
    endpoint's own shortfall and over models and services by what each endpoint's
    baseline requests touched. ``base_n`` and ``inc_n``: entry requests per (dimension,
    key) at baseline and during the incident. Returns (requests, collateral) per
    (dimension, key); empty when traffic held.
    """
    span = (
        extent
        or con.execute(
            f"""SELECT min(ts) AS first_ns, max(ts) AS last_ns FROM fl_requests
            WHERE run = {prm["run"]}""",
            p,
        ).fetchone()
    )
    base_s = max(p["onset"] - max(p["base_start"], span[0]), 1)
    inc_s = max(min(p["end"], span[1] + 1) - p["onset"], 0)
    expected_all = float(base_n.get(("all", ""), 0)) * inc_s / base_s
    missing_all = expected_all - float(inc_n.get(("all", ""), 0))
    # A shortfall within noise is no lost traffic: 3 sd of the difference of two Poisson
    # counts, the incident's and the baseline's scaled to the incident's length.
    base_all = float(base_n.get(("all", ""), 0))
    noise = 3 * np.sqrt(expected_all + (inc_s / base_s) ** 2 * base_all)
    if missing_all < max(3.0, 0.05 * expected_all, noise):
        return {}
    ends = [k for k in base_n if k[0] == "endpoint"]
    short = pd.Series(
        {k[1]: max(base_n.get(k, 0) * inc_s / base_s - inc_n.get(k, 0), 0.0) for k in ends}
    )
    per_endpoint = short / max(short.sum(), 1e-9) * missing_all
    # Baseline traces per endpoint that touched each model and service: traces grouped by
    # what they touched (one ``touch`` per trace), spread over its items.
    per_touch = con.execute(
        f"""SELECT endpoint, touch, count(DISTINCT trace_id) AS n FROM fl_requests
            WHERE run = {prm["run"]} AND ts >= {prm["base_start"]} AND ts < {prm["onset"]}
            GROUP BY endpoint, touch""",
        p,
    ).fetchall()
    counts: dict[tuple[str, str, str], int] = {}
    for endpoint, touch, n in per_touch:
        items = touch_items(touch if isinstance(touch, str) else None)
        keys = [("model", endpoint, m) for m in {m for _, m, _ in items if m is not None}]
        keys += [("service", endpoint, sv) for sv in {sv for sv, _, _ in items if sv is not None}]
        for key in keys:
            counts[key] = counts.get(key, 0) + int(n)
    touched = pd.DataFrame(
        [(*k, n) for k, n in counts.items()], columns=["dimension", "endpoint", "key", "n"]
    )
    n_e = pd.Series({k[1]: float(base_n.get(k, 0)) for k in ends})
    rows = []
    hit = None
    if collateral_of:
        dim, name = collateral_of
        items = touched[touched.dimension == dim]
        hit = items[items.key == name].groupby("endpoint").n.sum()
    for e, m in per_endpoint.items():
        frac_hit = float(hit.get(e, 0)) / max(n_e.get(e, 1), 1) if hit is not None else 0.0
        coll = m * (1 - frac_hit)
        rows += [("all", "", m, coll), ("endpoint", e, m, coll)]
        for dim in ("model", "service"):
            g = touched[(touched.endpoint == e) & (touched.dimension == dim)].set_index("key").n
            share = g / max(n_e.get(e, 1), 1)
            rows += [(dim, k, m * f, m * f * (1 - frac_hit)) for k, f in share.items()]
    out = pd.DataFrame(rows, columns=["dimension", "key", "requests", "collateral"])
    out = out.groupby(["dimension", "key"], as_index=False).sum()
    out[["requests", "collateral"]] = out[["requests", "collateral"]].round().astype(int)
    return {
        (dim, key): (int(n), int(c))
        for dim, key, n, c in zip(out.dimension, out.key, out.requests, out.collateral, strict=True)
    }


def counterfactual_per_model(
    br: BlastRadius, *, monolith: bool, shared_process: bool
) -> dict[str, Any] | None:
    """The blast radius had the culprit model run in its own service: collateral removed.

    None outside a monolith run, and when the culprit shares a process but its model is
    unknown. A culprit outside the shared process (a feature store) keeps its blast radius.
    """
    if not monolith or (shared_process and br.collateral is None):
        return None
    if not shared_process:
        return {"requests": br.requests, "share": br.share}
    requests = max(br.requests - br.collateral, 0)
    return {"requests": requests, "share": round(requests / br.total, 6) if br.total else 0.0}
