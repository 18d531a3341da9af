"""The evidence of one incident, in both views: what culprit ranking scores.

One incident's evidence is read as sums, never as rows: its spans from the per-bucket
span sums (``fl_span_buckets``), its log records from one per-bucket aggregate of
``otel_logs`` per analysis (:func:`log_sums`), its run's versions, restarts and
candidates once per run (:func:`run_facts`), and its requests grouped by what each
request's trace touched. The model-aware view groups by candidate (service, model); the
service-only view (model NULL: what plain OTel shows) reads the same sums without the
model. :mod:`faultlens.analyzer.analysis._localize` scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..facts._sql import bad_requests_cte, touch_items
from ..store._dialect import Dialect

__all__ = [
    "VIEWS",
    "Evidence",
    "LogSums",
    "RunFacts",
    "candidate_key",
    "collect_views",
    "log_sums",
    "logs_in",
    "run_facts",
]

VIEWS = ("model_aware", "service_only")


@dataclass(frozen=True)
class Evidence:
    """Everything ranking needs about one incident, in one view."""

    view: str
    onset_ns: int
    bucket_ns: int
    buckets: np.ndarray  # bucket starts from onset to end
    candidates: pd.DataFrame  # service, model, n_models (of the service)
    # Sums per (service, model, bucket_start), several rows per key allowed:
    spans: pd.DataFrame  # service, model, bucket_start, spans, errors, origin_errors, self_ns
    logs: pd.DataFrame  # service, model, bucket_start, warn_logs, error_logs, fatal_logs
    exposure: pd.DataFrame  # bucket_start (-1 = baseline), service, model, version, n
    bad_totals: pd.Series  # bad requests per incident bucket; index -1 = baseline requests
    versions: pd.DataFrame  # service, model, version, first_ns, last_ns
    restarts: pd.DataFrame  # service, first_ns (new instances after the run's first)
    base_buckets: int

    # Lookups every signal reads, computed once per incident and view.
    @cached_property
    def keys(self) -> np.ndarray:
        """Each candidate's :func:`_key`, in candidate order."""
        return candidate_key(self.candidates)

    @cached_property
    def key_pos(self) -> dict[str, int]:
        """Candidate key -> its column."""
        return {k: i for i, k in enumerate(self.keys)}

    def columns_of(self, keys: Any) -> np.ndarray:
        """Each key's candidate column; -1 for a key that is no candidate."""
        pos = self.key_pos
        return np.fromiter((pos.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    @cached_property
    def exposure_by_candidate(self) -> tuple[dict[tuple, dict[str, list[int]]], float, float]:
        """Per (service, model or None) and version ('*': any): bad requests exposed
        during the incident and requests at baseline; with the bad requests of the
        incident and the baseline requests in all (1 when none: divisors)."""
        out: dict[tuple, dict[str, list[int]]] = {}
        x = self.exposure
        for service, model, version, start, n in zip(
            x.service.to_numpy(dtype=object),
            x.model.to_numpy(dtype=object),
            x.version.to_numpy(dtype=object),
            x.bucket_start.to_numpy(),
            x.n.to_numpy(),
            strict=True,
        ):
            key = (service, model if isinstance(model, str) else None)
            out.setdefault(key, {}).setdefault(version, [0, 0])[int(start < 0)] += int(n)
        starts = self.bad_totals.index.to_numpy()
        n = self.bad_totals.to_numpy(dtype=float)
        return out, float(n[starts != -1].sum()) or 1.0, float(n[starts == -1].sum()) or 1.0

    @cached_property
    def services(self) -> np.ndarray:
        return self.candidates.service.to_numpy(dtype=object)

    @cached_property
    def models(self) -> list[str | None]:
        """Each candidate's model; None for a service (NaN read as None)."""
        return [m if isinstance(m, str) else None for m in self.candidates.model.to_numpy()]

    @cached_property
    def n_models(self) -> np.ndarray:
        return self.candidates.n_models.to_numpy()

    @cached_property
    def bad_per_bucket(self) -> tuple[np.ndarray, float]:
        """Bad requests per incident bucket (``buckets`` order), and at baseline (index
        -1 of ``bad_totals``; 1 when none, a divisor)."""
        starts = self.bad_totals.index.to_numpy()
        n = self.bad_totals.to_numpy(dtype=float)
        per = np.zeros(len(self.buckets))
        if len(self.buckets) and len(starts):
            row = np.searchsorted(self.buckets, starts)
            last = len(self.buckets) - 1
            inc = (starts != -1) & (row <= last)
            inc &= self.buckets[np.minimum(row, last)] == starts
            np.add.at(per, row[inc], n[inc])
        return per, float(n[starts == -1].sum()) or 1.0


def collect_views(
    con: Any,
    d: Dialect,
    *,
    run: str,
    base_start: int,
    onset: int,
    end: int,
    bucket_ns: int,
    slo_ms: float | None,
    log_buckets: LogSums,
    runs: dict[str, RunFacts],
    n_models: dict[str, int],
) -> dict[str, Evidence]:
    """The evidence of both views from one pass: each query groups by the model-aware
    candidate; the service-only view (model NULL) reads the same span and log rows without
    their model, and the requests per service from what each request touched.

    Reads ``fl_span_buckets`` at ``bucket_ns``; ``log_buckets`` is :func:`log_sums` of
    ``log_buckets_sql``'s rows at ``bucket_ns``; ``runs`` and ``n_models`` are what
    :func:`run_facts` read (models per service)."""
    p = {
        "run": run,
        "base_start": base_start,
        "base_bucket": base_start // bucket_ns * bucket_ns,
        "onset": onset,
        "end": end,
    }
    prm = {k: d.param(k, "String" if k == "run" else "Int64") for k in p}
    null = d.null_text

    # The incident's buckets from the stored sums (``span_buckets_sql``): a baseline that
    # starts inside a bucket starts at the run's first request, and only spans that began
    # before it (``early``) fall outside it there.
    aware = con.execute(
        f"""SELECT cand_service AS service, cand_model AS model, bucket_start,
                   sum(spans) AS spans, sum(errors) AS errors,
                   sum(origin_errors) AS origin_errors, sum(self_ns) AS self_ns
            FROM fl_span_buckets
            WHERE run = {prm["run"]} AND early = 0 AND bucket_start >= {prm["base_bucket"]}
              AND bucket_start < {prm["end"]}
            GROUP BY cand_service, cand_model, bucket_start""",
        p,
    ).df()
    spans = {"model_aware": aware, "service_only": _without_model(aware)}
    logs = _incident_logs(log_buckets, run=run, base_start=base_start, end=end, bucket_ns=bucket_ns)
    phase = f"CASE WHEN q.ts >= {prm['onset']} THEN {d.bucket('q.ts', bucket_ns)} ELSE -1 END"
    chosen = f"""q.ts >= {prm["base_start"]} AND q.ts < {prm["end"]}
                 AND (q.ts < {prm["onset"]} OR q.bad = 1)"""
    # Requests per item: the chosen requests (each trace once per bucket) grouped by what
    # their trace touched (``touch``: a run holds few distinct ones), then spread over the
    # items here. The service-only view has no model, hence no version: only '*' rows
    # there. View 'totals': the chosen requests per bucket, whatever they touched.
    grouped = con.execute(
        f"""WITH {bad_requests_cte(d, slo_ms=slo_ms)},
        c AS (SELECT {phase} AS bucket_start, q.trace_id, q.touch FROM req q WHERE {chosen})
        SELECT 'items' AS kind, bucket_start, touch, count(*) AS n
        FROM (SELECT DISTINCT bucket_start, trace_id, touch FROM c) u
        GROUP BY bucket_start, touch
        UNION ALL
        SELECT 'totals', bucket_start, {null}, count(*) FROM c GROUP BY bucket_start""",
        p,
    ).df()
    totals = grouped[grouped.kind == "totals"][["bucket_start", "n"]]
    exposure = _exposure_counts(grouped[grouped.kind == "items"])
    facts = runs.get(run) or RunFacts.empty()
    versions, restarts, svc = facts.versions, facts.restarts, n_models
    buckets = np.arange(onset, end, bucket_ns, dtype=np.int64)
    pairs = facts.candidates
    out = {}
    for view in VIEWS:
        if view == "model_aware":
            rows = [(s, m if isinstance(m, str) else None) for s, m in pairs]
        else:
            rows = [(s, None) for s in dict.fromkeys(s for s, _ in pairs)]
        # By service, then the service itself (model null) before its models by name.
        rows.sort(key=lambda r: (r[0], r[1] is not None, r[1] or ""))
        cand = pd.DataFrame(
            {
                "service": pd.Series([r[0] for r in rows], dtype=object),
                "model": pd.Series([r[1] for r in rows], dtype=object),
                "n_models": np.array([int(svc.get(r[0]) or 0) for r in rows], dtype=int),
            }
        )
        out[view] = Evidence(
            view=view,
            onset_ns=onset,
            bucket_ns=bucket_ns,
            buckets=buckets,
            candidates=cand,
            spans=spans[view],
            logs=logs[view],
            exposure=exposure[view],
            bad_totals=totals.set_index("bucket_start")["n"],
            versions=versions
            if view == "model_aware"
            else pd.DataFrame(columns=["service", "model", "version", "first_ns", "last_ns"]),
            restarts=restarts,
            base_buckets=max(1, int((onset - base_start) // bucket_ns)),
        )
    return out


@dataclass(frozen=True)
class RunFacts:
    """What every incident of one run reads: its model versions, its restarts and its
    candidates (each (service, model) a span spoke for)."""

    versions: pd.DataFrame  # service, model, version, first_ns, last_ns
    restarts: pd.DataFrame  # service, first_ns (new instances after the run's first)
    candidates: list[tuple[str, str | None]]

    @staticmethod
    def empty() -> RunFacts:
        return RunFacts(
            pd.DataFrame(columns=["service", "model", "version", "first_ns", "last_ns"]),
            pd.DataFrame(columns=["service", "first_ns"]),
            [],
        )


def run_facts(con: Any) -> tuple[dict[str, RunFacts], dict[str, int]]:
    """Per run, its :class:`RunFacts` (three queries for all runs at once, not three per
    incident); and the number of models each service runs."""
    versions = con.execute(
        """SELECT run, service, model, version, min(first_ts) AS first_ns,
                  max(last_ts) AS last_ns
           FROM fl_instances WHERE version IS NOT NULL GROUP BY run, service, model, version"""
    ).df()
    restarts = con.execute(
        """WITH i AS (SELECT run, service, instance, min(first_ts) AS first_ns
                      FROM fl_instances GROUP BY run, service, instance),
                f AS (SELECT run, service, min(first_ns) AS run_first FROM i
                      GROUP BY run, service)
           SELECT i.run, i.service, i.first_ns FROM i
           JOIN f ON f.run = i.run AND f.service = i.service
           WHERE i.first_ns > f.run_first"""
    ).df()
    candidates: dict[str, list[tuple[str, str | None]]] = {}
    for run, service, model in con.execute(
        "SELECT DISTINCT run, cand_service, cand_model FROM fl_span_buckets"
    ).fetchall():
        candidates.setdefault(run, []).append((service, model))
    n_models = dict(con.execute("SELECT service, n_models FROM fl_service_models").fetchall())

    def by_run(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return {
            str(run): g.drop(columns="run").reset_index(drop=True)
            for run, g in frame.groupby("run", sort=False)
        }

    v, r, empty = by_run(versions), by_run(restarts), RunFacts.empty()
    runs = {
        run: RunFacts(v.get(run, empty.versions), r.get(run, empty.restarts), c)
        for run, c in candidates.items()
    }
    return runs, n_models


LOG_COLUMNS = ["warn_logs", "error_logs", "fatal_logs"]


@dataclass(frozen=True)
class LogSums:
    """``log_buckets_sql``'s rows, split for the two readers: ``rank`` per (run, bucket,
    early, service, model) with a warning or worse, ``volume`` per (run, bucket, service,
    raw_model) of every severity; each as numpy columns."""

    rank: dict[str, np.ndarray]
    volume: dict[str, np.ndarray]


def log_sums(rows: pd.DataFrame) -> LogSums:
    keys = ["run", "bucket_start", "early", "service", "model"]
    rank = rows[rows[LOG_COLUMNS].sum(axis=1) > 0]
    rank = rank.groupby(keys, as_index=False, sort=False, dropna=False)[LOG_COLUMNS].sum()
    vol = rows.groupby(
        ["run", "bucket_start", "service", "raw_model"], as_index=False, sort=False, dropna=False
    )["logs"].sum()
    return LogSums(
        {c: rank[c].to_numpy() for c in rank.columns},
        {c: vol[c].to_numpy() for c in vol.columns},
    )


def _incident_logs(
    logs: LogSums, *, run: str, base_start: int, end: int, bucket_ns: int
) -> dict[str, pd.DataFrame]:
    """Per view, [service, model, bucket_start, warn_logs, error_logs, fatal_logs] of one
    incident's baseline and incident buckets (model None in the service-only view)."""
    r = logs.rank
    keep = (
        (r["run"] == run)
        & (r["early"] == 0)
        & (r["bucket_start"] >= base_start // bucket_ns * bucket_ns)
        & (r["bucket_start"] < end)
    )
    aware = pd.DataFrame(
        {
            "service": r["service"][keep],
            "model": r["model"][keep],
            "bucket_start": r["bucket_start"][keep],
            **{c: r[c][keep] for c in LOG_COLUMNS},
        }
    )
    return {"model_aware": aware, "service_only": _without_model(aware)}


def _without_model(frame: pd.DataFrame) -> pd.DataFrame:
    """The service-only view of per-(service, model) sums: the same rows, model None.
    Readers add rows up by (service, model) (:func:`_grids`, :func:`_sums`), and every
    value is a count (or a multiple of 0.5), so the sums are exact in any order."""
    return frame.assign(model=pd.Series([None] * len(frame), index=frame.index, dtype=object))


def logs_in(
    logs: LogSums, *, run: str, onset: int, end: int, service: str, model: str | None
) -> int:
    """Log records of ``service`` (of ``model`` alone, by the record's own ModelName, when
    given) during [onset, end): ``onset`` and ``end`` are bucket starts."""
    v = logs.volume
    keep = (
        (v["run"] == run)
        & (v["service"] == service)
        & (v["bucket_start"] >= onset)
        & (v["bucket_start"] < end)
    )
    if model is not None:
        keep &= v["raw_model"] == model
    return int(v["logs"][keep].sum())


def _exposure_counts(grouped: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per view, [bucket_start, service, model, version, n]: requests per bucket and item,
    from requests per bucket and ``touch``; an item a request touched counts it once."""
    acc: dict[tuple, int] = {}
    for bucket, touch, n in zip(grouped.bucket_start, grouped.touch, grouped.n, strict=True):
        items = touch_items(touch if isinstance(touch, str) else None)
        keys = [("model_aware", int(bucket), s, m, v) for s, m, v in items if v is not None]
        pairs = dict.fromkeys((s, m) for s, m, _ in items)  # in the touch's (sorted) order
        keys += [("model_aware", int(bucket), s, m, "*") for s, m in pairs]
        services = dict.fromkeys(s for s, _ in pairs)
        keys += [("service_only", int(bucket), s, None, "*") for s in services]
        for key in keys:
            acc[key] = acc.get(key, 0) + int(n)
    columns = ["bucket_start", "service", "model", "version", "n"]
    return {
        view: pd.DataFrame([(*k[1:], n) for k, n in acc.items() if k[0] == view], columns=columns)
        for view in VIEWS
    }


def candidate_key(frame: pd.DataFrame) -> np.ndarray:
    """service + US + model ('' when null), one string per row."""
    keys = [
        f"{s}\x1f{'' if m is None or m != m else m}"
        for s, m in zip(frame["service"].to_numpy(), frame["model"].to_numpy(), strict=True)
    ]
    return np.array(keys, dtype=object)
