"""Culprit ranking: which (service, model) caused an incident, with readable evidence.

DESIGN.md: "Culprit ranking: candidate (service, model) pairs ranked by
evidence: origin errors (error spans with no erroring child), self-time
(exclusive duration) change, which scope changed first, the
selection-versus-baseline over-representation of each model and version
among the bad requests (as Honeycomb BubbleUp and Tempo's compare() do),
error logs, and a model version change near onset. [...] Origin errors are
one signal among several, never the verdict."

SQL aggregates per candidate and bucket; :func:`score_matrix` scores every
prefix [onset, t] at once, so the final ranking and the FIT replay are the
same computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from faultlens.analyzer._detect import bad_requests_cte, touch_items
from faultlens.analyzer._dialect import Dialect

__all__ = [
    "VIEWS",
    "WEIGHTS",
    "Evidence",
    "collect_views",
    "log_sums",
    "run_facts",
    "RunFacts",
    "logs_in",
    "describe",
    "summarize",
    "left_by_absence",
    "ranking",
    "score_matrix",
    "suspects",
]

VIEWS = ("model_aware", "service_only")
# How much each signal weighs; every signal is scaled to [0, 1] first.
WEIGHTS = {
    "origin_errors": 2.0,
    "self_time": 3.0,
    "error_logs": 1.0,
    "over_representation": 1.0,
    "version_change": 3.0,
    "restart": 0.25,
    "silence": 1.5,
    "changed_first": 1.0,
}
SELF_RATIO = 1.5  # self-time must at least grow this much to count ...
SELF_MIN_NS = 20_000_000  # ... and by at least 20 ms per span
LOOKBACK_NS = 60 * 1_000_000_000  # version changes and restarts this long before onset count
MARGIN = 0.1  # suspects: candidates within 10% of the top score
ABSENT_RATIO = 1 / 3  # a model completing under a third of what its process's traffic implies ...
ABSENT_MIN_EXPECTED = 5.0  # ... out of at least this many expected completions is still a suspect


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
        return _key(self.candidates)

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

    def both(cte: str, key: str, rest: str, aggs: str) -> dict[str, pd.DataFrame]:
        """``cte`` grouped by (key, model, rest) as view 'model_aware', and the same rows
        without their model as view 'service_only' (every reader sums rows by key)."""
        aware = con.execute(
            f"""WITH {cte}
            SELECT {key}, model, {rest}, {aggs} FROM x GROUP BY {key}, model, {rest}""",
            p,
        ).df()
        return {"model_aware": aware, "service_only": _without_model(aware)}

    # The incident's buckets from the stored sums (``span_buckets_sql``): a baseline that
    # starts inside a bucket starts at the run's first request, and only spans that began
    # before it (``early``) fall outside it there.
    spans = both(
        f"""x AS (SELECT cand_service AS service, cand_model AS model, bucket_start, spans,
                     errors, origin_errors, self_ns
              FROM fl_span_buckets
              WHERE run = {prm["run"]} AND early = 0 AND bucket_start >= {prm["base_bucket"]}
                AND bucket_start < {prm["end"]})""",
        "service",
        "bucket_start",
        """sum(spans) AS spans, sum(errors) AS errors, sum(origin_errors) AS origin_errors,
               sum(self_ns) AS self_ns""",
    )
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


def _key(frame: pd.DataFrame) -> np.ndarray:
    """service + US + model ('' when null), one string per row."""
    keys = [
        f"{s}\x1f{'' if m is None or m != m else m}"
        for s, m in zip(frame["service"].to_numpy(), frame["model"].to_numpy(), strict=True)
    ]
    return np.array(keys, dtype=object)


def _grids(
    ev: Evidence, frame: pd.DataFrame, columns: list[str]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per column: (incident buckets x candidates) cumulative sums, and the baseline total
    per candidate."""
    keys = ev.keys
    out = []
    if frame.empty or not len(ev.buckets):
        return [(np.zeros((len(ev.buckets), len(keys))), np.zeros(len(keys))) for _ in columns]
    # Every value is a count (or a multiple of 0.5): sums are exact in any order.
    col = ev.columns_of(_key(frame))
    start = frame["bucket_start"].to_numpy()
    row = np.searchsorted(ev.buckets, start)
    found = (row < len(ev.buckets)) & (ev.buckets[np.minimum(row, len(ev.buckets) - 1)] == start)
    now = (start >= ev.onset_ns) & found & (col >= 0)
    before = (start < ev.onset_ns) & (col >= 0)
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        inc = np.zeros((len(ev.buckets), len(keys)))
        base = np.zeros(len(keys))
        np.add.at(inc, (row[now], col[now]), values[now])
        np.add.at(base, col[before], values[before])
        out.append((np.cumsum(inc, axis=0), base))
    return out


def _share(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, None)
    total = x.sum(axis=1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


def score_matrix(ev: Evidence) -> dict[str, np.ndarray]:
    """Every signal and the total score, for each prefix [onset, t] (rows) and candidate."""
    T = len(ev.buckets)
    steps = np.arange(1, T + 1, dtype=float)[:, None]
    nb = ev.base_buckets
    (origin, origin_b), (n, n_b), (self_ns, self_b) = _grids(
        ev, ev.spans, ["origin_errors", "spans", "self_ns"]
    )
    lg = ev.logs
    logs_f = lg.assign(w=0.5 * lg.warn_logs + lg.error_logs + 5 * lg.fatal_logs)
    ((logs, logs_b),) = _grids(ev, logs_f, ["w"])
    sig: dict[str, np.ndarray] = {}
    origin_x = origin - origin_b / nb * steps
    sig["origin_errors"] = _share(origin_x) * _strength(origin_x)
    base_mean = np.divide(self_b, n_b, out=np.zeros_like(self_b), where=n_b > 0)
    inc_mean = np.divide(self_ns, n, out=np.zeros_like(self_ns), where=n > 0)
    grew = (
        (n_b > 0)
        & (inc_mean >= SELF_RATIO * np.maximum(base_mean, 1.0))
        & (inc_mean - base_mean >= SELF_MIN_NS)
    )
    extra = np.where(grew, inc_mean - base_mean, 0.0)
    # Per-span growth, not total: a slow model shows in each of its spans; a busy
    # process's many spans each grow a little.
    sig["self_time"] = _share(extra)
    logs_x = logs - logs_b / nb * steps
    sig["error_logs"] = _share(logs_x) * _strength(logs_x)
    over, version = _over_representation(ev)
    sig["over_representation"] = over
    sig["version_change"] = version
    sig["restart"] = _restarted(ev)
    expected = n_b / nb * steps
    quiet = np.clip(1 - np.divide(n, expected, out=np.ones_like(n), where=expected > 0), 0, 1)
    sig["silence"] = np.where((expected >= 5) & (quiet >= 0.5), quiet, 0.0)
    sig["changed_first"] = _changed_first(ev, origin_x, extra, logs_x, version + sig["silence"])
    total = sum(WEIGHTS[k] * v for k, v in sig.items())
    if ev.view == "model_aware":
        total = _undecided_process(ev, total)
    sig["score"] = total
    return sig


def _strength(excess: np.ndarray, half: float = 3.0) -> np.ndarray:
    """How much a count says, saturating: 1 event is a hint, dozens are a pattern."""
    x = np.clip(excess, 0, None)
    return x / (x + half)


def _new_versions(ev: Evidence) -> set[tuple[str, str, str]]:
    """(service, model or '', version) of versions that started within the lookback
    while an older one of the same model had run before."""
    first: dict[tuple, int] = {}
    rows = list(
        zip(
            ev.versions.service.to_numpy(dtype=object),
            ev.versions.model.to_numpy(dtype=object),
            ev.versions.version.to_numpy(dtype=object),
            ev.versions.first_ns.to_numpy(),
            strict=True,
        )
    )
    for s, m, _, f in rows:
        key = (s, m if isinstance(m, str) else "")
        first[key] = min(first.get(key, f), f)
    since = ev.onset_ns - LOOKBACK_NS
    return {
        (s, m if isinstance(m, str) else "", v)
        for s, m, v, f in rows
        if f >= since and f > first[s, m if isinstance(m, str) else ""]
    }


def _over_representation(ev: Evidence) -> tuple[np.ndarray, np.ndarray]:
    """BubbleUp: share of bad requests exposed to an item minus its share at baseline."""
    T, C = len(ev.buckets), len(ev.keys)
    over, version = np.zeros((T, C)), np.zeros((T, C))
    x = ev.exposure
    if x.empty:
        return over, version
    per, base_total = ev.bad_per_bucket
    bad_total = np.maximum(np.cumsum(per), 1.0)[:, None]
    new_versions = _new_versions(ev)
    services = x.service.to_numpy(dtype=object)
    models = x.model.to_numpy(dtype=object)
    versions = x.version.to_numpy(dtype=object)
    star = versions == "*"
    is_new = np.array(
        [
            not st and (s, m or "", v) in new_versions
            for s, m, v, st in zip(services, models, versions, star, strict=True)
        ],
        dtype=bool,
    )
    k = _key(x)
    start = x.bucket_start.to_numpy()
    n = x.n.to_numpy(dtype=float)
    for rows, target in ((star, over), (is_new, version)):
        if rows.any():
            share = _excess_share(
                ev, k[rows], versions[rows], start[rows], n[rows], bad_total, base_total
            )
            target[:] = np.clip(share, 0, 1)
    return over, version


def _excess_share(
    ev: Evidence,
    k: np.ndarray,
    versions: np.ndarray,
    start: np.ndarray,
    n: np.ndarray,
    bad_total: np.ndarray,
    base_total: float,
) -> np.ndarray:
    """Per incident prefix and candidate: the largest, over the candidate's items (key,
    version) seen during the incident, of its share of bad requests minus its baseline
    share; 0 for a candidate without such items. Counts are exact in any order."""
    T, C = len(ev.buckets), len(ev.keys)
    out = np.zeros((T, C))
    pair = np.array([f"{a}\x1e{b}" for a, b in zip(k, versions, strict=True)], dtype=object)
    now = start >= 0
    pairs = pd.Index(pd.unique(pair[now]))
    if not len(pairs) or not T:
        return out
    col = pairs.get_indexer(pair)
    row = np.searchsorted(ev.buckets, start)
    found = now & (row < T) & (ev.buckets[np.minimum(row, T - 1)] == start)
    inc = np.zeros((T, len(pairs)))
    np.add.at(inc, (row[found], col[found]), n[found])
    inc = np.cumsum(inc, axis=0) / bad_total
    before = ~now & (col >= 0)
    base = np.zeros(len(pairs))
    base[col[before]] = n[before] / base_total
    diff = inc - base[None, :]
    best = np.full((T, C), -np.inf)
    owners = ev.columns_of([p.split("\x1e", 1)[0] for p in pairs])
    for p, c in enumerate(owners):
        if c >= 0:
            best[:, c] = np.maximum(best[:, c], diff[:, p])
    return np.where(np.isneginf(best), 0.0, best)


def _restarted(ev: Evidence) -> np.ndarray:
    ends = ev.buckets + ev.bucket_ns
    out = np.zeros((len(ev.buckets), len(ev.candidates)))
    since: dict[str, int] = {}
    for service, first in zip(
        ev.restarts.service.to_numpy(dtype=object), ev.restarts.first_ns.to_numpy(), strict=True
    ):
        if first >= ev.onset_ns - LOOKBACK_NS:
            since[service] = min(since.get(service, first), first)
    for j, (service, model, nm) in enumerate(zip(ev.services, ev.models, ev.n_models, strict=True)):
        if nm > 1 and model is not None:
            continue  # a process restart is evidence about the process, not one of its models
        if service in since:
            out[:, j] = (ends > since[service]).astype(float)
    return out


def _changed_first(
    ev: Evidence, origin: np.ndarray, extra: np.ndarray, logs: np.ndarray, version: np.ndarray
) -> np.ndarray:
    """1 for the candidate(s) whose own signals departed earliest, as seen at each t."""
    moved = (origin > 0.5) | (extra > 0) | (logs > 0.5) | (version > 0.5)
    T, C = moved.shape
    first = np.where(moved.any(axis=0), moved.argmax(axis=0), T)
    # A version change before onset moved before anything else did.
    counts: dict[tuple[str, str], int] = {}
    for s, m in zip(
        ev.versions.service.to_numpy(dtype=object),
        ev.versions.model.to_numpy(dtype=object),
        strict=True,
    ):
        key = (s, m if isinstance(m, str) else "")
        counts[key] = counts.get(key, 0) + 1
    for j, (s, m) in enumerate(zip(ev.services, ev.models, strict=True)):
        if counts.get((s, m or ""), 0) > 1 and version[:, j].max() > 0.5:
            first[j] = -1
    out = np.zeros((T, C))
    for t in range(T):
        seen = np.where(first <= t, first, T + 1)
        if seen.min() <= t:
            out[t] = (seen == seen.min()).astype(float)
    return out


def _undecided_process(ev: Evidence, total: np.ndarray) -> np.ndarray:
    """A multi-model process whose models the evidence cannot tell apart is the answer.

    When the best two models of one process score within the margin, the process
    itself (model null) takes their score and, on the tie, ranks first: without
    evidence of the model every model in it stays a suspect (issue 6: do not guess).
    """
    out = total.copy()
    has_model = np.array([m is not None for m in ev.models], dtype=bool)
    for s in dict.fromkeys(ev.services[ev.n_models > 1]):
        in_s = ev.services == s
        parent = np.flatnonzero(in_s & ~has_model)
        kids = np.flatnonzero(in_s & has_model)
        if not len(parent) or len(kids) < 2:
            continue
        top2 = np.sort(total[:, kids], axis=1)[:, -2:]
        undecided = top2[:, 0] >= (1 - MARGIN) * top2[:, 1]
        p = parent[0]
        out[:, p] = np.where(undecided, np.maximum(total[:, p], top2[:, 1]), total[:, p])
    return out


def left_by_absence(ev: Evidence, service: str) -> tuple[str, ...]:
    """Models of a multi-model process that absence still names, when its model is unknown.

    A process that died without leaving the fatal span or log (os._exit, SIGKILL) still
    tells its models apart by what they stopped doing: a model that completed spans in
    the baseline, whose traffic still arrives (the process's other models keep completing
    at their baseline mix, so the requests that would reach it keep coming), but which now
    completes under ``ABSENT_RATIO`` of its expected share (at least ``ABSENT_MIN_EXPECTED``
    completions expected) stays a suspect; models that keep completing are cleared.
    Expected = baseline completions of the model / baseline completions of the others x
    incident completions of the others. Empty when the view has no model identity, or
    absence clears every model or none (then it says nothing).
    """
    if ev.view != "model_aware":
        return ()
    sp = ev.spans[(ev.spans.service == service) & ev.spans.model.notna()]
    ok = sp.assign(ok=sp.spans - sp.errors, inc=sp.bucket_start >= ev.onset_ns)
    ok = ok.groupby(["model", "inc"]).ok.sum().unstack("inc")
    ok = ok.reindex(columns=[False, True]).fillna(0)
    if len(ok) < 2:
        return ()
    base, inc = ok[False], ok[True]
    other_base, other_inc = base.sum() - base, inc.sum() - inc
    expected = base / other_base.where(other_base > 0) * other_inc
    absent = (base > 0) & (expected >= ABSENT_MIN_EXPECTED) & (inc <= ABSENT_RATIO * expected)
    left = tuple(sorted(str(m) for m in ok.index[absent.to_numpy()]))
    return left if 0 < len(left) < len(ok) else ()


def ranking(ev: Evidence, sig: dict[str, np.ndarray], t: int) -> pd.DataFrame:
    """Candidates ranked by score at prefix t: model null before models on ties."""
    cand = ev.candidates
    score = np.round(sig["score"][t], 4)
    services, models = ev.services, ev.models
    top = np.where(np.isnan(score), -np.inf, score)  # a NaN score ranks last
    order = sorted(
        range(len(cand)),
        key=lambda i: (-top[i], models[i] is not None, services[i], models[i] or ""),
    )
    c = {"rank": np.arange(1, len(cand) + 1)}
    c.update({k: cand[k].to_numpy()[order] for k in cand.columns})
    c["score"] = score[order]
    c.update({name: sig[name][t][order] for name in WEIGHTS})
    return pd.DataFrame(c)


def suspects(
    ranked: pd.DataFrame, view: str, *, narrowed: dict[str, tuple[str, ...]] | None = None
) -> int:
    """Candidates within the score margin, counted as a person would have to check them.

    In the service-only view a multi-model process counts once per model it runs;
    in the model-aware view a process entry gives way to its own models in the margin, and
    counts once per model it runs when none of them is (its model is unknown).
    ``narrowed`` (model-aware only) maps a process whose model is unknown to the models
    absence leaves (:func:`left_by_absence`): those replace its models in the count.
    """
    rows = [
        (sv, m if isinstance(m, str) else None, max(int(n), 1), float(sc))
        for sv, m, n, sc in zip(
            ranked.service.to_numpy(dtype=object),
            ranked.model.to_numpy(dtype=object),
            ranked.n_models.to_numpy(),
            ranked.score.to_numpy(dtype=float),
            strict=True,
        )
    ]
    top = rows[0][3] if rows else 0.0
    if top <= 0:
        if view == "service_only":
            return sum(r[2] for r in rows)
        if not narrowed:
            return len(rows)
        close = rows
    else:
        close = [r for r in rows if r[3] >= top * (1 - MARGIN)]
    if view == "service_only":
        return sum(r[2] for r in close)
    extra = 0
    for service, models in (narrowed or {}).items():
        close = [r for r in close if r[0] != service or r[1] is None or r[1] in models]
        extra += len(set(models) - {r[1] for r in close if r[0] == service})
        close = [r for r in close if r[0] != service or r[1] is not None]
    with_models = {r[0] for r in close if r[1] is not None}
    # A process entry none of whose models is in the margin leaves all of them to check.
    entries = [r for r in close if r[1] is None and r[0] not in with_models]
    return sum(r[1] is not None for r in close) + sum(r[2] for r in entries) + extra


def _sums(frame: pd.DataFrame, onset_ns: int, columns: list[str]) -> dict[tuple, np.ndarray]:
    """Per (service, model or None, incident?) the column sums of ``frame``'s rows (a few
    hundred rows: summed row by row, cheaper here than a pandas grouping)."""
    out: dict[tuple, np.ndarray] = {}
    if frame.empty:
        return out
    values = frame[columns].to_numpy(dtype=float)
    models = frame["model"].to_numpy(dtype=object)
    incident = frame["bucket_start"].to_numpy() >= onset_ns
    for service, model, inc, row in zip(
        frame["service"].to_numpy(dtype=object), models, incident, values, strict=True
    ):
        key = (service, model if isinstance(model, str) else None, bool(inc))
        if key in out:
            out[key] = out[key] + row
        else:
            out[key] = row.copy()
    return out


@dataclass(frozen=True)
class Summary:
    """Per candidate, its span and log sums at baseline and during the incident: what
    :func:`describe` reads for every candidate, computed once per incident and view."""

    spans: dict[tuple, np.ndarray]  # origin_errors, spans, self_ns
    logs: dict[tuple, np.ndarray]  # warn_logs, error_logs, fatal_logs
    versions: dict[tuple, list[tuple[int, str]]]  # (service, model): (first_ns, version)...


_SPAN_SUMS = ["origin_errors", "spans", "self_ns"]
_LOG_SUMS = ["warn_logs", "error_logs", "fatal_logs"]


def summarize(ev: Evidence) -> Summary:
    versions: dict[tuple, list[tuple[int, str]]] = {}
    v = ev.versions.sort_values("first_ns", kind="stable")
    for service, model, version, first in zip(
        v.service, v.model, v.version, v.first_ns, strict=True
    ):
        if isinstance(model, str):
            versions.setdefault((service, model), []).append((int(first), str(version)))
    return Summary(
        _sums(ev.spans, ev.onset_ns, _SPAN_SUMS),
        _sums(ev.logs, ev.onset_ns, _LOG_SUMS),
        versions,
    )


def describe(
    ev: Evidence, r: Any, *, svc_models: list[str], summary: Summary | None = None
) -> tuple[str, ...]:
    """Readable evidence for one ranked candidate; both sides labelled (baseline, incident)."""
    model = r.model if isinstance(r.model, str) else None
    inc_s = (ev.buckets[-1] + ev.bucket_ns - ev.onset_ns) / 1e9 if len(ev.buckets) else 0.0
    base_s = ev.base_buckets * ev.bucket_ns / 1e9
    summary = summary or summarize(ev)

    zero = np.zeros(3)
    b_origin, b_spans, b_self = summary.spans.get((r.service, model, False), zero)
    i_origin, i_spans, i_self = summary.spans.get((r.service, model, True), zero)
    b_logs = summary.logs.get((r.service, model, False))
    i_logs = summary.logs.get((r.service, model, True))
    out = []
    if i_origin or b_origin:
        out.append(
            "origin errors (error spans with no erroring child): baseline "
            f"{b_origin / base_s:.2f}/s, incident {i_origin / inc_s:.2f}/s"
        )
    if i_spans and b_spans:
        b = b_self / b_spans / 1e6
        i = i_self / i_spans / 1e6
        if i >= SELF_RATIO * max(b, 1e-6) or r.self_time > 0:
            out.append(f"self-time per span: baseline {b:.1f} ms, incident {i:.1f} ms")
    if b_logs is not None or i_logs is not None:
        lb = [int(x) for x in (zero if b_logs is None else b_logs)]
        li = [int(x) for x in (zero if i_logs is None else i_logs)]
        out.append(
            f"warning/error/fatal logs: baseline {lb[0]}/{lb[1]}/{lb[2]}, "
            f"incident {li[0]}/{li[1]}/{li[2]}"
        )
    if r.version_change > 0 or r.over_representation > 0:
        by_version, bad_total, base_total = ev.exposure_by_candidate
        seen = by_version.get((r.service, model), {})
        for ver in sorted(seen):
            pi = seen[ver][0] / bad_total
            pb = seen[ver][1] / base_total
            if pi - pb > 0.05:
                item = r.service if model is None else model
                item += "" if ver == "*" else f"@{ver}"
                out.append(
                    f"{item} in bad requests: baseline {pb:.0%} of requests, incident {pi:.0%}"
                )
    vs = summary.versions.get((r.service, model), []) if model is not None else []
    for (_, prev), (first_ns, cur) in zip(vs[:-1], vs[1:], strict=True):
        if first_ns >= ev.onset_ns - LOOKBACK_NS:
            out.append(
                f"version change {prev} -> {cur} at onset {(first_ns - ev.onset_ns) / 1e9:+.1f} s"
            )
    if r.restart > 0:
        rs = ev.restarts[ev.restarts.service == r.service].first_ns
        rs = rs[rs >= ev.onset_ns - LOOKBACK_NS]
        out.append(
            f"{r.service} restarted {len(rs)} time(s) (new service.instance.id), first at onset "
            f"{(rs.min() - ev.onset_ns) / 1e9:+.1f} s"
        )
    if r.silence > 0:
        out.append(
            f"spans per second: baseline {b_spans / base_s:.1f}, "
            f"incident {i_spans / inc_s:.1f} (fell silent)"
        )
    if r.changed_first > 0:
        out.append("changed first among the candidates")
    if model is None and len(svc_models) > 1:
        out.append(
            f"{r.service} runs {len(svc_models)} models ({', '.join(svc_models)}); the data "
            "holds no evidence of which one failed: all are suspects"
        )
    return tuple(out) or ("no departure from baseline",)
