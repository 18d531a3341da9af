"""The fact tables' SQL: span facts, entry requests, exposure and per-scope time series.

The store is read once into three temporary tables that every later step
shares (``fl_spans``, ``fl_requests``, ``fl_exposure``), their per-instance summary
(``fl_instances``) plus two tiny maps
(``fl_callee``: which service a client span calls; ``fl_service_models``: the
models each service runs). Everything after that reads these, never the raw
tables, except evidence counts and logs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..store._dialect import Dialect
from ._schema import ts_within

__all__ = [
    "derive_fact_tables",
    "candidate_sql",
    "log_buckets_sql",
    "scope_series_sql",
    "span_buckets_sql",
    "scope_timeseries",
]


# Per process instance and the (model, version) it ran: when it ran, how much. Layouts,
# versions, restarts and update coupling read this small table, not every span.
def instances_sql(*, spans: str = "fl_spans") -> str:
    """Per process instance and (model, version) of the spans in ``spans``."""
    return f"""
    SELECT run, service, instance, model, version, max(layout) AS layout,
           min(ts) AS first_ts, max(ts) AS last_ts, max(end_ts) AS last_end_ts,
           count(*) AS n_spans
    FROM {spans} GROUP BY run, service, instance, model, version"""


def derive_fact_tables(
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
    con.execute(d.temp_table("fl_exposure", exposure_sql()))
    con.execute(d.temp_table("fl_requests", requests_sql(d, exposure="fl_exposure")))
    con.execute(d.temp_table("fl_instances", instances_sql()))


def exposure_sql(*, spans: str = "fl_spans") -> str:
    """Each trace's exposure: the (service, model, version) its spans speak for."""
    return f"""
    SELECT DISTINCT run, trace_id, cand_service AS service, cand_model AS model,
           CASE WHEN cand_model = model THEN version END AS version
    FROM {spans}"""


# What a request's trace touched, as one text: its exposure items (service, model,
# version; US between fields, '' for NULL) sorted and joined by RS. A run holds few
# distinct ones, so analyses group requests by it instead of joining them to exposure.
TOUCH_ITEM, TOUCH_FIELD = "\x1e", "\x1f"


def requests_sql(d: Dialect, *, exposure: str, spans: str = "fl_spans") -> str:
    """One row per entry span (DESIGN.md: the endpoint of a request is the http.route of
    its entry span) with ``touch``, what its trace touched (:data:`TOUCH_ITEM`); reads
    ``spans`` and ``exposure``, those spans' :func:`exposure_sql` rows."""
    us = d.char(ord(TOUCH_FIELD))
    item = f"coalesce(service, '') || {us} || coalesce(model, '') || {us} || coalesce(version, '')"
    return f"""
    SELECT r.run, r.trace_id, r.ts, r.end_ts, r.dur, r.service,
           coalesce(r.route, r.name) AS endpoint, r.is_err, r.layout, t.touch
    FROM {spans} r
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
    """The callee each (caller, peer) reaches most often; and, under caller '', the callee
    each peer reaches most often from any caller: a caller that dialled an address only
    while its server was down learns it from the callers that saw the server answer."""
    r = "run, " if by_run else ""
    pick = d.arg_max("callee", "n")
    return (
        f"SELECT {r}caller, peer, {pick} AS callee FROM {counts} GROUP BY {r}caller, peer "
        f"UNION ALL SELECT {r}'' AS caller, peer, {pick} AS callee FROM ("
        f"SELECT {r}peer, callee, sum(n) AS n FROM {counts} GROUP BY {r}peer, callee) "
        f"GROUP BY {r}peer"
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


# The callee a client span reached: as its caller learned it, else as any caller did.
_CALLEE = "coalesce(nullif(cm.callee, ''), nullif(ca.callee, ''))"


def candidate_from(alias: str = "s", *, table: str = "fl_spans", by_run: bool = False) -> str:
    """FROM clause joining span facts to the callee and service-model maps."""
    a = alias
    run = (lambda t: f"{t}.run = {a}.run AND ") if by_run else (lambda t: "")
    return f"""{table} {a}
        LEFT JOIN fl_callee cm ON {run("cm")}cm.caller = {a}.service AND cm.peer = {a}.peer
        LEFT JOIN fl_callee ca ON {run("ca")}ca.caller = '' AND ca.peer = {a}.peer
        LEFT JOIN fl_service_models sm_own ON {run("sm_own")}sm_own.service = {a}.service
        LEFT JOIN fl_service_models sm_callee
            ON {run("sm_callee")}sm_callee.service = {_CALLEE}
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
        return f"""CASE WHEN {orphan} AND {_CALLEE} IS NOT NULL THEN {_CALLEE}
            WHEN {orphan} AND {s}.peer IS NOT NULL THEN {s}.peer
            WHEN {s}.outlived_service IS NOT NULL THEN {s}.outlived_service
            ELSE {s}.service END"""
    single = "CASE WHEN {t}.n_models = 1 THEN {t}.only_model END"
    return f"""CASE WHEN {orphan} AND {_CALLEE} IS NOT NULL
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


def scope_series_sql(
    d: Dialect, *, bucket_ns: int, only: list[tuple[int, int]] | None = None
) -> str:
    """The rows of :func:`scope_timeseries`, unsorted: one query over the facts. ``only``:
    the rows of the buckets inside these [start, end) spans of time alone (bucket-aligned;
    the live facts recompute the buckets new data touched)."""
    b = d.bucket("ts", bucket_ns)
    rb = d.bucket("r.ts", bucket_ns)
    p95 = d.quantile("dur", 0.95)
    keep, r_keep = ts_within("ts", only), ts_within("r.ts", only)
    traces = ""
    if only is not None:  # the exposure of those buckets' requests alone
        traces = f" AND trace_id IN (SELECT trace_id FROM fl_requests WHERE 1 = 1{keep})"
    return f"""
        SELECT run, 'endpoint' AS scope, endpoint AS key, {b} AS bucket_start,
               count(*) AS requests, sum(is_err) AS errors, {p95} / 1e6 AS p95_ms
        FROM fl_requests WHERE 1 = 1{keep} GROUP BY run, endpoint, {b}
        UNION ALL
        SELECT r.run, 'model', e.model, {rb}, count(*),
               sum(r.is_err), {d.quantile("r.dur", 0.95)} / 1e6
        FROM fl_requests r JOIN (SELECT DISTINCT trace_id, model FROM fl_exposure
                                 WHERE model IS NOT NULL{traces}) e ON e.trace_id = r.trace_id
        WHERE 1 = 1{r_keep}
        GROUP BY r.run, e.model, {rb}
        UNION ALL
        SELECT run, 'service', cand_service, {b}, count(*), sum(is_err), {p95} / 1e6
        FROM fl_spans WHERE (kind = 'server' OR (kind = 'client' AND child_n = 0)){keep}
        GROUP BY run, cand_service, {b}"""


def span_buckets_sql(
    d: Dialect, *, bucket_ns: int, only: list[tuple[int, int]] | None = None
) -> str:
    """Per run, bucket, candidate (``cand_service``, ``cand_model``) and the span's own
    (``service``, ``model``): the span sums culprit ranking and the evidence volume read,
    so that an incident sums a few hundred rows instead of scanning its spans.

    ``early`` = 1 for spans that began before the run's first entry request: an incident's
    baseline starts there at the earliest, inside a bucket, and leaves them out.
    ``only``: as in :func:`scope_series_sql`.
    """
    keep = f" WHERE 1 = 1{ts_within('s.ts', only)}"
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
                ON f.run = s.run{keep if only is not None else ""}) b
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
