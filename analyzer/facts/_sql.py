"""Span facts, entry requests, per-scope time series and incident detection.

The store is read once into three temporary tables that every later step
shares (``fl_spans``, ``fl_requests``, ``fl_exposure``), their per-instance summary
(``fl_instances``) plus two tiny maps
(``fl_callee``: which service a client span calls; ``fl_service_models``: the
models each service runs). Everything after that reads these, never the raw
tables, except evidence counts and logs.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..store._dialect import Dialect

__all__ = [
    "DetectionSettings",
    "Window",
    "abnormal_windows",
    "build_facts",
    "candidate_sql",
    "merge_windows",
    "log_buckets_sql",
    "scope_series_sql",
    "span_buckets_sql",
    "scope_timeseries",
]

S = 1_000_000_000
# Per process instance and the (model, version) it ran: when it ran, how much. Layouts,
# versions, restarts and update coupling read this small table, not every span.
INSTANCES_SQL = """
    SELECT run, service, instance, model, version, max(layout) AS layout,
           min(ts) AS first_ts, max(ts) AS last_ts, max(end_ts) AS last_end_ts,
           count(*) AS n_spans
    FROM fl_spans GROUP BY run, service, instance, model, version"""


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds of incident detection; the defaults suit 5 s buckets."""

    bucket_s: float = 5.0
    min_baseline_buckets: int = 3
    min_errors: int = 3
    error_margin: float = 0.05  # absolute rise of the error ratio over the baseline
    latency_factor: float = 2.0  # p95 over the baseline's p95
    latency_margin_ms: float = 50.0
    traffic_drop: float = 0.25  # requests below this share of the baseline rate ...
    traffic_p: float = 1e-5  # ... and as few or fewer this unlikely at that rate (Poisson)
    min_requests: int = 3
    merge_gap_buckets: int = 1
    # A scope that departs again after a quiet gap up to this long is the same fault: a
    # low-rate fault leaves some buckets clean (DESIGN.md: "One fault is one incident").
    same_scope_gap_buckets: int = 12

    @property
    def bucket_ns(self) -> int:
        return int(self.bucket_s * S)


@dataclass(frozen=True)
class Window:
    """One scope's abnormal stretch of buckets."""

    run: str
    scope: str
    key: str
    start_ns: int
    end_ns: int
    signal: str  # errors | latency | traffic


def build_facts(
    con: Any, d: Dialect, *, run_filter: str, params: dict[str, Any], by_run: bool = False
) -> None:
    """Materialize the span facts and request tables the analysis shares.

    ``fl_spans`` holds one row per span with its children's aggregate (count,
    summed duration, any error, the latest non-error child that outlived it),
    ``is_entry`` (DESIGN.md: "an entry span is the first span of a request that
    the data holds: a root, or a span whose parent was never recorded").

    ``by_run`` keys every join and map on the run too, so that each run's facts are
    what an analysis of that run alone computes (the stored facts, ``_facts``, which
    run the same steps below a partition of traces at a time).
    """
    con.execute(d.temp_table("fl_base", base_sql(d, run_filter=run_filter)), params)
    con.execute(d.temp_table("fl_child", child_sql(d, by_run=by_run)))
    con.execute(d.temp_table("fl_callee_all", callee_counts_sql(by_run=by_run)))
    con.execute(d.temp_table("fl_callee", callee_sql(d, by_run=by_run)))
    con.execute(d.temp_table("fl_service_models", service_models_sql(by_run=by_run)))
    spans = f"""
        WITH f AS ({span_facts_sql(by_run=by_run)})
        {spans_sql(table="f", by_run=by_run)}"""
    con.execute(d.temp_table("fl_spans", spans))
    con.execute("DROP TABLE fl_base")
    con.execute("DROP TABLE fl_child")
    con.execute(d.temp_table("fl_exposure", EXPOSURE_SQL))
    con.execute(d.temp_table("fl_requests", requests_sql(d, exposure="fl_exposure")))
    con.execute(d.temp_table("fl_instances", INSTANCES_SQL))


EXPOSURE_SQL = """
    SELECT DISTINCT run, trace_id, cand_service AS service, cand_model AS model,
           CASE WHEN cand_model = model THEN version END AS version
    FROM fl_spans"""
# What a request's trace touched, as one text: its exposure items (service, model,
# version; US between fields, '' for NULL) sorted and joined by RS. A run holds few
# distinct ones, so analyses group requests by it instead of joining them to exposure.
TOUCH_ITEM, TOUCH_FIELD = "\x1e", "\x1f"


def requests_sql(d: Dialect, *, exposure: str) -> str:
    """One row per entry span (DESIGN.md: the endpoint of a request is the http.route of
    its entry span) with ``touch``, what its trace touched (:data:`TOUCH_ITEM`); reads
    ``fl_spans`` and ``exposure``, those spans' :data:`EXPOSURE_SQL` rows."""
    us = d.char(ord(TOUCH_FIELD))
    item = f"coalesce(service, '') || {us} || coalesce(model, '') || {us} || coalesce(version, '')"
    return f"""
    SELECT r.run, r.trace_id, r.ts, r.end_ts, r.dur, r.service,
           coalesce(r.route, r.name) AS endpoint, r.is_err, r.layout, t.touch
    FROM fl_spans r
    LEFT JOIN (SELECT run, trace_id, {d.sorted_join(item, d.char(ord(TOUCH_ITEM)))} AS touch
               FROM {exposure} e GROUP BY run, trace_id) t
      ON t.run = r.run AND t.trace_id = r.trace_id
    WHERE r.is_entry = 1"""


def touch_items(touch: str | None) -> list[tuple[str | None, str | None, str | None]]:
    """A request's ``touch`` back to its (service, model, version) items. A name holding
    one of the separators (control characters) cannot be told apart: its item is left out."""
    if not touch:
        return []
    out = []
    for item in touch.split(TOUCH_ITEM):
        fields = item.split(TOUCH_FIELD)
        if len(fields) == 3:
            service, model, version = fields
            out.append((service or None, model or None, version or None))
    return out


def base_sql(d: Dialect, *, run_filter: str) -> str:
    """One row per span of ``otel_traces`` (filtered), the columns the facts read."""
    attr = d.attr
    run = f"coalesce({attr('ResourceAttributes', 'faultlens.run')}, '')"
    peer = (
        f"coalesce({attr('SpanAttributes', 'peer.service')}, "
        f"{attr('SpanAttributes', 'server.address')} || ':' || "
        f"coalesce({attr('SpanAttributes', 'server.port')}, ''), "
        f"{attr('SpanAttributes', 'net.peer.name')} || ':' || "
        f"coalesce({attr('SpanAttributes', 'net.peer.port')}, ''), "
        f"{d.url_authority(attr('SpanAttributes', 'url.full'))}, "
        f"{d.url_authority(attr('SpanAttributes', 'http.url'))})"
    )
    return f"""
        SELECT {run} AS run, TraceId AS trace_id, SpanId AS span_id,
               ParentSpanId AS parent_id, {d.epoch_ns("Timestamp")} AS ts,
               {d.epoch_ns("Timestamp")} + CAST(Duration AS BIGINT) AS end_ts,
               CAST(Duration AS BIGINT) AS dur, ServiceName AS service,
               nullif(ModelName, '') AS model, nullif(ModelVersion, '') AS version,
               ServiceInstanceId AS instance, {d.kind()} AS kind,
               CASE WHEN {d.is_error()} THEN 1 ELSE 0 END AS is_err,
               nullif(HttpRoute, '') AS route, SpanName AS name,
               CASE WHEN {d.is_client()} THEN {peer} END AS peer,
               Layout AS layout
        FROM otel_traces WHERE {run_filter}"""


def child_sql(d: Dialect, *, by_run: bool, base: str = "fl_base") -> str:
    """Per (trace, parent): its children's aggregate. The latest-ending child; when no
    child erred it is the one that outlived a timeout."""
    r = "run, " if by_run else ""
    return f"""
        SELECT {r}trace_id, parent_id, count(*) AS child_n, sum(dur) AS child_dur,
               max(is_err) AS child_err, max(end_ts * (1 - is_err)) AS child_ok_end,
               nullif({d.arg_max("service", "end_ts")}, '') AS child_service,
               {d.arg_max("model", "end_ts")} AS child_model
        FROM {base} WHERE parent_id <> '' GROUP BY {r}trace_id, parent_id"""


def callee_counts_sql(*, by_run: bool, base: str = "fl_base", child: str = "fl_child") -> str:
    """Which service each (caller, peer) reaches, learned where the callee answered:
    how often each callee answered (counts of disjoint sets of traces add up)."""
    on = "c.run = b.run AND " if by_run else ""
    r = "b.run, " if by_run else ""
    return f"""
        SELECT {r}b.service AS caller, b.peer, c.child_service AS callee, count(*) AS n
        FROM {base} b
        JOIN {child} c ON {on}c.trace_id = b.trace_id AND c.parent_id = b.span_id
        WHERE b.kind = 'client' AND c.child_service IS NOT NULL AND b.peer IS NOT NULL
        GROUP BY {r}b.service, b.peer, c.child_service"""


def callee_sql(d: Dialect, *, by_run: bool, counts: str = "fl_callee_all") -> str:
    """The callee each (caller, peer) reaches most often."""
    r = "run, " if by_run else ""
    return (
        f"SELECT {r}caller, peer, {d.arg_max('callee', 'n')} AS callee "
        f"FROM {counts} GROUP BY {r}caller, peer"
    )


def service_models_sql(*, by_run: bool, base: str = "fl_base") -> str:
    """Per service: how many models it runs, the only one, whether it records only clients."""
    r = "run, " if by_run else ""
    return f"""
        SELECT {r}service, count(DISTINCT model) AS n_models, min(model) AS only_model,
               min(CASE WHEN kind = 'client' THEN 1 ELSE 0 END) AS only_client
        FROM {base} GROUP BY {r}service"""


def span_facts_sql(*, by_run: bool, base: str = "fl_base", child: str = "fl_child") -> str:
    """One pass over the wide rows: child aggregate and entry flag per span (the facts
    of a span need only its own trace).

    ``stalled``: a client span that failed although its callee answered, without error,
    before it ended: the answer was there and the caller could not take it in time (its
    own process stalled), so the failure is an effect, not an origin error.
    """
    r = "run, " if by_run else ""
    on = "c.run = b.run AND " if by_run else ""
    outlived = (
        "CASE WHEN b.is_err = 1 AND coalesce(c.child_err, 0) = 0"
        " AND coalesce(c.child_ok_end, 0) > b.end_ts THEN {col} END"
    )
    return f"""
        SELECT b.run, b.trace_id, b.span_id, b.parent_id, b.ts, b.end_ts, b.dur, b.service,
               b.model, b.version, b.instance, b.kind, b.is_err, b.route, b.name, b.peer,
               b.layout, coalesce(c.child_n, 0) AS child_n,
               coalesce(c.child_dur, 0) AS child_dur, coalesce(c.child_err, 0) AS child_err,
               {outlived.format(col="c.child_service")} AS outlived_service,
               {outlived.format(col="nullif(c.child_model, '')")} AS outlived_model,
               CASE WHEN b.parent_id = '' OR coalesce(p.hit, 0) = 0 THEN 1 ELSE 0 END
                   AS is_entry,
               CASE WHEN b.is_err = 1 AND b.kind = 'client' AND coalesce(c.child_n, 0) > 0
                     AND coalesce(c.child_err, 0) = 0
                     AND coalesce(c.child_ok_end, 0) <= b.end_ts THEN 1 ELSE 0 END AS stalled
        FROM {base} b
        LEFT JOIN {child} c ON {on}c.trace_id = b.trace_id AND c.parent_id = b.span_id
        LEFT JOIN (SELECT DISTINCT {r}trace_id, span_id, 1 AS hit FROM {base}) p
            ON {on.replace("c.", "p.")}p.trace_id = b.trace_id AND p.span_id = b.parent_id"""


_KEEP = (
    "run, trace_id, span_id, parent_id, ts, end_ts, dur, service, model, version, "
    "instance, kind, is_err, route, name, layout, child_n, child_dur, child_err, is_entry, "
    "stalled"
)


def spans_sql(*, table: str, by_run: bool) -> str:
    """``fl_spans``' rows: the facts (of :func:`span_facts_sql`) in ``table``, only the
    columns later queries read, with the candidate each span speaks for."""
    return f"""
        SELECT {", ".join("s." + c for c in _KEEP.split(", "))},
               {candidate_sql("service")} AS cand_service,
               {candidate_sql("model")} AS cand_model
        FROM {candidate_from("s", table=table, by_run=by_run)}"""


def candidate_from(alias: str = "s", *, table: str = "fl_spans", by_run: bool = False) -> str:
    """FROM clause joining span facts to the callee and service-model maps."""
    a = alias
    run = (lambda t: f"{t}.run = {a}.run AND ") if by_run else (lambda t: "")
    return f"""{table} {a}
        LEFT JOIN fl_callee cm ON {run("cm")}cm.caller = {a}.service AND cm.peer = {a}.peer
        LEFT JOIN fl_service_models sm_own ON {run("sm_own")}sm_own.service = {a}.service
        LEFT JOIN fl_service_models sm_callee
            ON {run("sm_callee")}sm_callee.service = nullif(cm.callee, '')
        LEFT JOIN fl_service_models sm_out
            ON {run("sm_out")}sm_out.service = {a}.outlived_service"""


def candidate_sql(part: str, alias: str = "s") -> str:
    """The (service, model) a span's evidence belongs to.

    A client span no callee span answered (the callee crashed, or is not
    instrumented), or any span of a service that records only client spans,
    speaks for the callee; an error span whose healthy child
    outlived it (a caller's timeout) speaks for that child; a span without
    a model in a service that runs exactly one model speaks for that model.
    """
    s = alias
    # A pure client (a load generator, an ingress that records only its calls) measures
    # its callee: every span of it speaks for the callee, answered or not.
    orphan = f"({s}.kind = 'client' AND ({s}.child_n = 0 OR coalesce(sm_own.only_client, 0) = 1))"
    if part == "service":
        return f"""CASE WHEN {orphan} AND nullif(cm.callee, '') IS NOT NULL THEN cm.callee
            WHEN {orphan} AND {s}.peer IS NOT NULL THEN {s}.peer
            WHEN {s}.outlived_service IS NOT NULL THEN {s}.outlived_service
            ELSE {s}.service END"""
    single = "CASE WHEN {t}.n_models = 1 THEN {t}.only_model END"
    return f"""CASE WHEN {orphan} AND nullif(cm.callee, '') IS NOT NULL
                THEN {single.format(t="sm_callee")}
            WHEN {orphan} AND {s}.peer IS NOT NULL THEN NULL
            WHEN {s}.outlived_service IS NOT NULL
                THEN coalesce({s}.outlived_model, {single.format(t="sm_out")})
            ELSE coalesce({s}.model, {single.format(t="sm_own")}) END"""


def scope_timeseries(
    con: Any, d: Dialect, *, bucket_ns: int, stored: str | None = None
) -> pd.DataFrame:
    """Per scope (service, endpoint, model) and bucket: requests, errors, p95 latency.

    DESIGN.md: "Time is bucketed (default 5 s). A scope is a service, an
    endpoint (http.route of entry spans) or a model."
    ``stored`` names a table holding :func:`scope_series_sql`'s rows for this bucket.
    """
    sql = (
        scope_series_sql(d, bucket_ns=bucket_ns)
        if stored is None
        else f"""
        SELECT run, scope, key, bucket_start, requests, errors, p95_ms FROM {stored}"""
    )
    frame = con.execute(sql).df()
    frame["error_ratio"] = frame["errors"] / frame["requests"].clip(lower=1)
    return frame.sort_values(["run", "scope", "key", "bucket_start"], ignore_index=True)


def scope_series_sql(d: Dialect, *, bucket_ns: int) -> str:
    """The rows of :func:`scope_timeseries`, unsorted: one query over the facts."""
    b = d.bucket("ts", bucket_ns)
    p95 = d.quantile("dur", 0.95)
    return f"""
        SELECT run, 'endpoint' AS scope, endpoint AS key, {b} AS bucket_start,
               count(*) AS requests, sum(is_err) AS errors, {p95} / 1e6 AS p95_ms
        FROM fl_requests GROUP BY run, endpoint, {b}
        UNION ALL
        SELECT r.run, 'model', e.model, {d.bucket("r.ts", bucket_ns)}, count(*),
               sum(r.is_err), {d.quantile("r.dur", 0.95)} / 1e6
        FROM fl_requests r JOIN (SELECT DISTINCT trace_id, model FROM fl_exposure
                                 WHERE model IS NOT NULL) e ON e.trace_id = r.trace_id
        GROUP BY r.run, e.model, {d.bucket("r.ts", bucket_ns)}
        UNION ALL
        SELECT run, 'service', cand_service, {b}, count(*), sum(is_err), {p95} / 1e6
        FROM fl_spans WHERE kind = 'server' OR (kind = 'client' AND child_n = 0)
        GROUP BY run, cand_service, {b}"""


def span_buckets_sql(d: Dialect, *, bucket_ns: int) -> str:
    """Per run, bucket, candidate (``cand_service``, ``cand_model``) and the span's own
    (``service``, ``model``): the span sums culprit ranking and the evidence volume read,
    so that an incident sums a few hundred rows instead of scanning its spans.

    ``early`` = 1 for spans that began before the run's first entry request: an incident's
    baseline starts there at the earliest, inside a bucket, and leaves them out.
    """
    origin = "CASE WHEN s.is_err = 1 AND s.child_err = 0 AND s.stalled = 0 THEN 1 ELSE 0 END"
    return f"""
        SELECT run, bucket_start, early, cand_service, cand_model, service, model,
               CAST(count(*) AS BIGINT) AS spans, CAST(sum(is_err) AS BIGINT) AS errors,
               CAST(sum(origin) AS BIGINT) AS origin_errors,
               CAST(sum(self_ns) AS BIGINT) AS self_ns
        FROM (SELECT s.run, {d.bucket("s.ts", bucket_ns)} AS bucket_start,
                     CASE WHEN s.ts < f.lo THEN 1 ELSE 0 END AS early,
                     s.cand_service, s.cand_model, s.service, s.model, s.is_err,
                     {origin} AS origin, greatest(s.dur - s.child_dur, 0) AS self_ns
              FROM fl_spans s
              LEFT JOIN (SELECT run, min(ts) AS lo FROM fl_requests GROUP BY run) f
                ON f.run = s.run) b
        GROUP BY run, bucket_start, early, cand_service, cand_model, service, model"""


def log_buckets_sql(d: Dialect, *, bucket_ns: int, run_filter: str) -> str:
    """Per run, bucket, service and model: log records (``logs``, every severity) and the
    warning (13-16), error (17-20) and fatal (21+) ones. ``raw_model`` is the record's own
    ModelName; ``model`` adds a single-model service's model to records without one.
    ``early`` as in :func:`span_buckets_sql`. Reads ``otel_logs`` rows of ``run_filter``."""
    run = f"coalesce({d.attr('ResourceAttributes', 'faultlens.run')}, '')"
    return f"""
        SELECT run, bucket_start, early, service, raw_model, model,
               CAST(count(*) AS BIGINT) AS logs, CAST(sum(warn) AS BIGINT) AS warn_logs,
               CAST(sum(err) AS BIGINT) AS error_logs, CAST(sum(fatal) AS BIGINT) AS fatal_logs
        FROM (SELECT l.run, {d.bucket("l.ts", bucket_ns)} AS bucket_start,
                     CASE WHEN l.ts < f.lo THEN 1 ELSE 0 END AS early,
                     l.service, l.raw_model,
                     coalesce(l.raw_model, CASE WHEN sm.n_models = 1 THEN sm.only_model END)
                         AS model,
                     CASE WHEN l.sev >= 13 AND l.sev < 17 THEN 1 ELSE 0 END AS warn,
                     CASE WHEN l.sev >= 17 AND l.sev < 21 THEN 1 ELSE 0 END AS err,
                     CASE WHEN l.sev >= 21 THEN 1 ELSE 0 END AS fatal
              FROM (SELECT {run} AS run, ServiceName AS service,
                           nullif(ModelName, '') AS raw_model,
                           {d.epoch_ns("Timestamp")} AS ts, SeverityNumber AS sev
                    FROM otel_logs WHERE {run_filter}) l
              LEFT JOIN fl_service_models sm ON sm.service = l.service
              LEFT JOIN (SELECT run, min(ts) AS lo FROM fl_requests GROUP BY run) f
                ON f.run = l.run) b
        GROUP BY run, bucket_start, early, service, raw_model, model"""


def abnormal_windows(
    series: pd.DataFrame, settings: DetectionSettings, *, bounds: dict[str, tuple[int, int]]
) -> list[Window]:
    """Stretches where a scope departs from its own preceding normal baseline.

    DESIGN.md: "Incident: a window in which some scope's error ratio or
    latency departs from its own baseline (the preceding normal window)."
    Missing buckets count as zero requests, so a scope that falls silent
    (a crashed process) departs too. ``bounds`` (first and last request per run)
    says how much of the first and last bucket the run covers: a bucket covered
    less than half is not judged, and rates are scaled by coverage.
    """
    windows: list[Window] = []
    bns = settings.bucket_ns
    run_ends = series.groupby("run").bucket_start.max()
    # Each scope's rows by position (numpy slices: no frame per scope), in (run, scope,
    # key) order.
    groups = series.groupby(["run", "scope", "key"], sort=True).indices
    starts_all = series.bucket_start.to_numpy(dtype=np.int64)
    n_all = series.requests.to_numpy(dtype=float, na_value=0.0)
    e_all = series.errors.to_numpy(dtype=float, na_value=0.0)
    p95_all = series.p95_ms.to_numpy(dtype=float, na_value=np.nan)
    for (run, scope, key), rows in sorted(groups.items()):
        starts = starts_all[rows]
        first, last = int(starts.min()), int(starts.max())
        run_end = int(run_ends[run])
        idx = np.arange(first, max(last, run_end) + bns, bns)
        # The scope's buckets on the run's grid; a missing bucket holds no request.
        at = (starts - first) // bns
        n, e, p95 = np.zeros(len(idx)), np.zeros(len(idx)), np.full(len(idx), np.nan)
        n[at] = n_all[rows]
        e[at] = e_all[rows]
        p95[at] = p95_all[rows]
        lo, hi = bounds.get(run, (first, run_end + bns))
        cover = (np.minimum(idx + bns, hi + 1) - np.maximum(idx, lo)) / bns
        flags = _flag_buckets(n, e, p95, np.clip(cover, 0, 1), settings)
        for start, stop, signal in _runs_of(flags):
            windows.append(
                Window(
                    str(run), str(scope), str(key), int(idx[start]), int(idx[stop]) + bns, signal
                )
            )
    return windows


def _flag_buckets(
    n: np.ndarray, e: np.ndarray, p95: np.ndarray, cover: np.ndarray, st: DetectionSettings
) -> list:
    """A sequential scan: the baseline only ever holds buckets judged normal.

    A bucket that departs too little to judge alone (a low-rate fault: one or two errors,
    a quiet bucket at a low rate) is a *suspect*, held out of the baseline: consecutive
    suspects are judged on their sums, and right after an abnormal bucket of the same
    signal a suspect is abnormal (the fault goes on). Suspects never judged abnormal join
    the baseline when the streak ends.
    """
    flags: list[str | None] = [None] * len(n)
    base = _Baseline()
    pending: list[int] = []  # the current streak of suspects
    kind: str | None = None  # their signal

    def release() -> None:
        for j in pending:
            base.add(n[j], e[j], p95[j], cover[j])
        pending.clear()

    for i in range(len(n)):
        if cover[i] < 0.5:
            continue
        signal = suspect = None
        if base.normal >= st.min_baseline_buckets:
            signal, suspect = _judge(n[i], e[i], p95[i], cover[i], base, st)
        prev = flags[i - 1] if i else None
        if signal is None and suspect is not None and suspect == prev:
            signal = suspect  # hysteresis: the departure goes on
        if signal is None and suspect is not None:
            if kind != suspect:
                release()
            pending.append(i)
            kind = suspect
            if _streak_departs(pending, kind, n, e, cover, base, st):
                for j in pending:
                    flags[j] = kind
                pending.clear()
            continue
        if signal is not None and signal == kind:
            for j in pending:  # the streak led up to it: the onset is its first bucket
                flags[j] = kind
            pending.clear()
        release()
        kind = None
        if signal is None:
            base.add(n[i], e[i], p95[i], cover[i])
        flags[i] = signal
    return flags


class _Baseline:
    """The running sums of the buckets judged normal."""

    def __init__(self) -> None:
        self.n = self.e = 0.0
        self.p95: list[float] = []  # kept sorted: the median is read, not recomputed
        self.normal = self.active = 0

    def add(self, n: float, e: float, p95: float, cover: float) -> None:
        self.normal += 1
        self.n += n / cover
        self.e += e
        self.active += int(n > 0)
        if not np.isnan(p95):
            bisect.insort(self.p95, float(p95))

    @property
    def rate(self) -> float:
        return self.n / self.normal

    @property
    def ratio(self) -> float:
        return self.e / self.n if self.n else 0.0


def _judge(
    n: float, e: float, p95: float, cover: float, base: _Baseline, st: DetectionSettings
) -> tuple[str | None, str | None]:
    """(signal of a bucket that departs on its own, else the signal it leans to, if any)."""
    ratio, rate = base.ratio, base.rate
    noise = 3 * np.sqrt(max(ratio * (1 - ratio), 1e-4) / max(n, 1))
    lat = _median(base.p95) if base.p95 else np.nan
    if e >= st.min_errors and e / max(n, 1) > ratio + max(st.error_margin, noise):
        return "errors", None
    if (
        n >= st.min_requests
        and not np.isnan(p95)
        and not np.isnan(lat)
        and p95 > lat * st.latency_factor
        and p95 > lat + st.latency_margin_ms
    ):
        return "latency", None
    established = base.active >= st.min_baseline_buckets and rate >= 2 * st.min_requests
    low = established and n / cover < st.traffic_drop * rate
    if low and _poisson_cdf(int(n), rate * cover) < st.traffic_p:
        # Only a scope with an established rate can fall silent: one burst then nothing
        # (spans orphaned by a crash, seen as entries) is no baseline. A quiet bucket a low
        # rate gives by chance (a run tests thousands of scopes and buckets) is no silence.
        return "traffic", None
    if e >= 1 and e / max(n, 1) > ratio + st.error_margin:
        return None, "errors"
    if low:
        return None, "traffic"
    return None, None


def _streak_departs(
    rows: list[int],
    kind: str,
    n: np.ndarray,
    e: np.ndarray,
    cover: np.ndarray,
    base: _Baseline,
    st: DetectionSettings,
) -> bool:
    """Whether a streak of suspect buckets departs from the baseline on its sums."""
    sn, se = float(n[rows].sum()), float(e[rows].sum())
    if kind == "errors":
        ratio = base.ratio
        noise = 3 * np.sqrt(max(ratio * (1 - ratio), 1e-4) / max(sn, 1))
        return se >= st.min_errors and se / max(sn, 1) > ratio + max(st.error_margin, noise)
    return _poisson_cdf(int(sn), base.rate * float(cover[rows].sum())) < st.traffic_p


def _poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam)."""
    if lam <= 0:
        return 1.0
    term = total = math.exp(-lam)
    for j in range(1, k + 1):
        term *= lam / j
        total += term
    return total


def _median(ordered: list[float]) -> float:
    """np.median of an already sorted list."""
    m = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[m]
    return float(np.mean([ordered[m - 1], ordered[m]]))


def _runs_of(flags: list) -> list[tuple[int, int, str]]:
    out, start = [], None
    for i, f in enumerate([*flags, None]):
        if f is not None and start is None:
            start = i
        elif f is None and start is not None:
            signals = [x for x in flags[start:i] if x]
            # The most frequent signal; on a tie the first seen (a set's order would
            # change from one process to the next with string hashing).
            out.append((start, i - 1, max(dict.fromkeys(signals), key=signals.count)))
            start = None
    return out


def merge_windows(
    windows: list[Window], *, gap_ns: int, same_scope_gap_ns: int = 0
) -> list[list[Window]]:
    """Group windows of one run that overlap in time (or nearly touch) into incidents.

    A window of a scope that already departed in the incident joins it across a quiet gap
    up to ``same_scope_gap_ns``: the same scope departing again soon after is the same
    low-rate fault, whose clean buckets split its stretch.
    """
    groups: list[list[Window]] = []
    for w in sorted(windows, key=lambda w: (w.run, w.start_ns)):
        if groups and groups[-1][0].run == w.run:
            g = groups[-1]
            end = max(x.end_ns for x in g)
            same = max((x.end_ns for x in g if (x.scope, x.key) == (w.scope, w.key)), default=None)
            if w.start_ns <= end + gap_ns or (
                same is not None and w.start_ns <= same + same_scope_gap_ns
            ):
                g.append(w)
                continue
        groups.append([w])
    return groups


def bad_requests_cte(d: Dialect, *, slo_ms: float | None) -> str:
    """CTE ``req``: the requests of one run, bad=1 when failed or over the objective
    (``slo_ms``, or without it ``slo``: per endpoint from its baseline, twice its p99 and at
    least its p99 + 100 ms).

    Binds ``$run``, and without ``slo_ms`` ``$base_start`` and ``$onset``.
    """
    columns = "r.trace_id, r.ts, r.dur, r.endpoint, r.service, r.is_err, r.touch"
    if slo_ms is not None:
        return f"""req AS (
            SELECT {columns},
                   CASE WHEN r.is_err = 1 OR r.dur > {float(slo_ms) * 1e6} THEN 1 ELSE 0 END AS bad
            FROM fl_requests r WHERE r.run = {d.param("run")})"""
    p99 = d.quantile("dur", 0.99)
    return f"""slo AS (
            SELECT endpoint, greatest(2 * {p99}, {p99} + 1e8) AS slo_ns FROM fl_requests
            WHERE run = {d.param("run")} AND ts >= {d.param("base_start", "Int64")}
              AND ts < {d.param("onset", "Int64")} AND is_err = 0
            GROUP BY endpoint),
        req AS (
            SELECT {columns},
                   CASE WHEN r.is_err = 1 OR r.dur > coalesce(slo.slo_ns, 1e18)
                        THEN 1 ELSE 0 END AS bad
            FROM fl_requests r LEFT JOIN slo ON slo.endpoint = r.endpoint
            WHERE r.run = {d.param("run")})"""
