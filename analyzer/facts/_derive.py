"""Deriving the stored facts of some runs: a partition of traces at a time, in steps.

``derive`` plans the partitions (``partitions``), makes the per-run maps of the runs cut
in parts, then per partition derives the span facts (``_derive_spans``) and the requests,
exposure and instances read back from them (``_derive_requests``), and finally writes what
needs whole runs (``finish``). Every SQL text comes from ``_sql``'s builders, given the
table it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._settings import TUNING
from ..store._dialect import DUCKDB
from . import _sql as _detect
from ._cut import Cut, append_in_order, cut_run
from ._schema import (
    RUN_EXPR,
    RUNS_TABLE,
    SERIES_BUCKET_NS,
    STORED_TABLES,
    append,
    literal,
    table_exists,
)
from ._sql import scope_series_sql, span_buckets_sql

__all__ = ["derive", "finish", "maps_agree", "partitions"]

_SCANS = 8  # a partition of more runs reads them in one scan


def partitions(counts: dict[str, int]) -> list[tuple[str, int, int]]:
    """(run, first partition, parts) per run: small runs share a partition up to
    ``TUNING.facts_part_spans`` spans, a big run is cut into parts of about that many."""
    out: list[tuple[str, int, int]] = []
    part, filled = 0, 0
    for run, n in sorted(counts.items()):
        if n > TUNING.facts_part_spans:
            if filled:
                part, filled = part + 1, 0
            k = math.ceil(n / TUNING.facts_part_spans)
            out.append((run, part, k))
            part += k
            continue
        if filled and filled + n > TUNING.facts_part_spans:
            part, filled = part + 1, 0
        out.append((run, part, 1))
        filled += n
    return out


def derive(
    con: Any,
    counts: dict[str, int],
    *,
    had_others: bool,
    offset: int,
    progress: Callable[[int, int], None] | None = None,
) -> bool:
    """Derive the facts of these runs, a partition of traces at a time, and write them into
    the stored tables (the caller's transaction); returns whether a trace of theirs spans
    two runs.

    Each partition reads its spans from ``otel_traces`` itself, a run at a time: the run
    filter goes into the scan, whose row-group statistics skip other runs' rows (a run's
    spans are mostly stored together), so nothing is staged. A partition of whole runs
    writes its rows at once, in order (partitions follow the runs' order); a run cut by
    time (:class:`Cut`) writes each part's rows in order as it goes."""
    parts = _plan(con, counts)
    cut = sorted({runs[0] for runs, k, _ in parts.values() if k > 1})
    if cut:
        _cut_runs_maps(con, cut)
    # Whether a trace spans two runs is asked only when it could.
    traces = len(counts) > 1 or had_others
    by_time: Cut | None = None  # the run being derived in parts, cut by time
    steps = len(parts) + 1  # each partition, then finish
    for step, (runs, k, j) in enumerate(parts[p] for p in sorted(parts)):
        if progress is not None:
            progress(step, steps)
        if k > 1 and j == 0:  # a run's parts come one after the other
            by_time = cut_run(con, runs[0], k)
        part = by_time if k > 1 else None
        spans = _derive_spans(con, runs, j, part)
        offset = _derive_requests(con, spans, runs, j, part, offset=offset, traces=traces)
    split = _split_traces(con, counts, had_others=had_others)
    if progress is not None:
        progress(steps - 1, steps)
    finish(con)
    if progress is not None:
        progress(steps, steps)
    return split


def _plan(con: Any, counts: dict[str, int]) -> dict[int, tuple[list[str], int, int]]:
    """Partition -> (its runs, the parts its run is cut in, which part); ``fl_parts``
    lists (run, first partition, parts, spans) for the steps after."""
    layout = partitions(counts)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fl_parts (run VARCHAR, first BIGINT, k BIGINT, spans BIGINT)"
    )
    con.executemany(
        "INSERT INTO fl_parts VALUES (?, ?, ?, ?)", [(*p, counts[p[0]]) for p in layout]
    )
    parts: dict[int, tuple[list[str], int, int]] = {}
    for run, first, k in layout:
        for j in range(k):
            parts.setdefault(first + j, ([], k, j))[0].append(run)
    return parts


def _cut_runs_maps(con: Any, cut: list[str]) -> None:
    """The small per-run maps (callee counts; which service runs which models, of which
    kinds) of runs cut in parts, from all their spans: which service a client span reaches
    needs only the children of client spans, their aggregate over the run at once (joins
    spill). A partition of whole runs makes its runs' maps itself."""
    d = DUCKDB
    spans = _spans_of(cut)
    con.execute(
        d.temp_table(
            "fl_client_parents",
            f"""SELECT DISTINCT run, trace_id, span_id AS parent_id FROM {spans}
                WHERE kind = 'client' AND peer IS NOT NULL""",
        )
    )
    children = f"""(SELECT s.* FROM {spans} s SEMI JOIN fl_client_parents p
        ON p.run = s.run AND p.trace_id = s.trace_id AND p.parent_id = s.parent_id)"""
    con.execute(d.temp_table("fl_child", _detect.child_sql(d, by_run=True, base=children)))
    con.execute("DROP TABLE fl_client_parents")
    _maps(con, spans)


def _derive_spans(con: Any, runs: list[str], j: int, part: Cut | None) -> str:
    """Derive one partition's span facts (children's aggregate, entry flag, the candidate
    of each span) into ``faultlens_spans``; returns the stored rows to read back.

    A partition of one run (or of one part of it) joins without the run in its keys,
    against that run's maps alone: the same rows, fewer strings to hash."""
    d = DUCKDB
    by_run = len(runs) > 1
    con.execute(d.temp_table("fl_base", _spans_of(runs, part=part.filter(j) if part else None)))
    con.execute(d.temp_table("fl_child", _detect.child_sql(d, by_run=by_run)))
    if part is None:
        _maps(con, "fl_base", run=None if by_run else runs[0])
    own = "" if by_run else f" WHERE run = {literal(runs[0])}"
    callee = _detect.callee_sql(d, by_run=by_run, counts=f"(SELECT * FROM fl_callee_all{own})")
    con.execute(d.temp_table("fl_callee", callee))
    models = _detect.service_models_sql(by_run=by_run, base=f"(SELECT * FROM fl_kinds{own})")
    con.execute(d.temp_table("fl_service_models", models))
    by = "run, " if by_run else ""  # one run sorts by time alone (1M rows: 0.88 -> 0.63 s)
    if part is None:  # written sorted at once; the rest is read back from the stored rows
        append(con, "faultlens_spans", f"{_facts_sql(by_run)} ORDER BY {by}ts")
        scans = [f"SELECT * FROM faultlens_spans WHERE run = {literal(r)}" for r in runs]
        spans = "(" + " UNION ALL ".join(scans) + ")"
    else:  # a part: its rows that start after the next part's first are carried over
        crossing = f"(SELECT * FROM fl_base WHERE {part.crossing(j, 'trace_id')})"
        append_in_order(
            con,
            "faultlens_spans",
            f"({_facts_sql(by_run)})",
            until=part.until(j),
            later=f"({_facts_sql(by_run, base=crossing)})",
        )
        spans = part.stored_rows(j, runs[0])
    # Memory (the limit counts temporary tables) goes to what follows.
    con.execute("DROP TABLE fl_base")
    con.execute("DROP TABLE fl_child")
    return spans


def _derive_requests(
    con: Any, spans: str, runs: list[str], j: int, part: Cut | None, *, offset: int, traces: bool
) -> int:
    """From one partition's stored span facts (``spans``): its entry requests, exposure and
    instance rows; returns the next free trace number.

    Requests and exposure are only ever joined and counted by trace: a number per (run,
    trace) stands for its id (one-to-one within a run), so the per-incident joins hash
    integers."""
    d = DUCKDB
    by = "run, " if len(runs) > 1 else ""
    con.execute(
        d.temp_table(
            "fl_trace_numbers",
            f"""SELECT run, trace_id, CAST({offset} + row_number() OVER () AS BIGINT) AS trace_no
                FROM (SELECT DISTINCT run, trace_id FROM {spans})""",
        )
    )
    offset += int(con.execute("SELECT count(*) FROM fl_trace_numbers").fetchone()[0])
    if traces:
        append(con, "fl_traces_acc", "SELECT run, trace_id FROM fl_trace_numbers", temp=True)
    # The exposure once: stored, and what each request's trace touched.
    con.execute(d.temp_table("fl_part_exposure", _detect.exposure_sql(spans=spans)))
    requests = _numbered(_detect.requests_sql(d, exposure="fl_part_exposure", spans=spans))
    if part is not None:  # in time order, as the spans (trace numbers grow part by part)
        con.execute(d.temp_table("fl_part_requests", f"SELECT * FROM {requests}"))
        append_in_order(con, "faultlens_requests", "fl_part_requests", until=part.until(j))
        con.execute("DROP TABLE fl_part_requests")
    else:
        append(con, "faultlens_requests", f"SELECT * FROM {requests} ORDER BY {by}ts")
    exposure = _numbered("SELECT * FROM fl_part_exposure")
    append(con, "faultlens_exposure", f"SELECT * FROM {exposure} ORDER BY {by}trace_id")
    append(con, "fl_instances_acc", _detect.instances_sql(spans=spans), temp=True)
    con.execute("DROP TABLE fl_trace_numbers")
    con.execute("DROP TABLE fl_part_exposure")
    return offset


def _split_traces(con: Any, counts: dict[str, int], *, had_others: bool) -> bool:
    """Whether a trace of these runs spans two runs (then a whole-store analysis may not
    read the per-run facts)."""
    if (
        len(counts) > 1
        and con.execute(
            """SELECT count(*) FROM (SELECT trace_id FROM fl_traces_acc GROUP BY trace_id
                                 HAVING min(run) <> max(run))"""
        ).fetchone()[0]
    ):
        return True
    return had_others and bool(
        con.execute(
            """SELECT count(*) FROM faultlens_spans o
               WHERE o.trace_id IN (SELECT trace_id FROM fl_traces_acc)
                 AND o.run NOT IN (SELECT run FROM fl_parts)"""
        ).fetchone()[0]
    )


def _numbered(sql: str) -> str:
    """``sql``'s rows with the trace id replaced by its number (``fl_trace_numbers``)."""
    return f"""(SELECT t.* REPLACE (n.trace_no AS trace_id)
        FROM ({sql}) t
        JOIN fl_trace_numbers n ON n.run = t.run AND n.trace_id = t.trace_id)"""


def _facts_sql(by_run: bool, *, base: str = "fl_base") -> str:
    """The span facts (``fl_spans``' rows) of the spans in ``base``."""
    return f"""
        WITH f AS ({_detect.span_facts_sql(by_run=by_run, base=base)})
        {_detect.spans_sql(table="f", by_run=by_run)}"""


def _spans_of(runs: list[str], *, part: str | None = None) -> str:
    """The base rows (``_detect.base_sql``) of these runs, or of one part of one run
    (``part``, a filter from :class:`Cut`), as a subquery: one scan per run, each with the
    run's filter in it."""
    extra = f" AND {part}" if part else ""
    if len(runs) > _SCANS:  # many small runs: one scan
        listed = ", ".join(map(literal, runs))
        return f"({_detect.base_sql(DUCKDB, run_filter=f'{RUN_EXPR} IN ({listed}){extra}')})"
    scans = [_detect.base_sql(DUCKDB, run_filter=f"{RUN_EXPR} = {literal(r)}{extra}") for r in runs]
    return "(" + " UNION ALL ".join(scans) + ")"


def _maps(con: Any, spans: str, *, run: str | None = None) -> None:
    """Add the callee counts (from ``fl_child``) and the (service, model, kind) rows of the
    runs whose spans are all in ``spans`` (of ``run`` alone, when ``fl_child`` has no run)."""
    counts = _detect.callee_counts_sql(by_run=True, base=spans)
    if run is not None:
        counts = f"""SELECT {literal(run)} AS run, *
            FROM ({_detect.callee_counts_sql(by_run=False, base=spans)})"""
    append(con, "fl_callee_all", counts, temp=True)
    append(con, "fl_kinds", f"SELECT DISTINCT run, service, model, kind FROM {spans}", temp=True)


def finish(con: Any) -> None:
    """Write what needs all of a run's rows: each run's series and instances, and the small
    per-run tables."""
    d = DUCKDB
    for stored in ("faultlens_spans", "faultlens_requests", "faultlens_exposure"):
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW {STORED_TABLES[stored][0]} AS
                SELECT * FROM {stored} WHERE run IN (SELECT run FROM fl_parts)"""
        )
    append(
        con,
        "faultlens_scope_series",
        f"""SELECT * FROM ({scope_series_sql(d, bucket_ns=SERIES_BUCKET_NS)})
            ORDER BY run, {STORED_TABLES["faultlens_scope_series"][1]}""",
    )
    append(
        con,
        "faultlens_span_buckets",
        f"""SELECT * FROM ({span_buckets_sql(d, bucket_ns=SERIES_BUCKET_NS)})
            ORDER BY run, {STORED_TABLES["faultlens_span_buckets"][1]}""",
    )
    # Per-partition instance rows add up: a run cut in parts has one row per part.
    append(
        con,
        "faultlens_instances",
        f"""SELECT run, service, instance, model, version, max(layout) AS layout,
                   min(first_ts) AS first_ts, max(last_ts) AS last_ts,
                   max(last_end_ts) AS last_end_ts, CAST(sum(n_spans) AS BIGINT) AS n_spans
            FROM fl_instances_acc GROUP BY run, service, instance, model, version
            ORDER BY run, {STORED_TABLES["faultlens_instances"][1]}""",
    )
    for stored, select in {
        "faultlens_service_models": "SELECT DISTINCT run, service, model FROM fl_kinds",
        "faultlens_facts_callee": "SELECT * FROM fl_callee_all",
        "faultlens_facts_services": _detect.service_models_sql(by_run=True, base="fl_kinds"),
        RUNS_TABLE: "SELECT run, spans FROM fl_parts",
    }.items():
        append(con, stored, select)


def maps_agree(con: Any) -> bool:
    """Whether each run's callee and service-model maps (models, only clients) are the
    whole store's."""
    if not table_exists(con, "faultlens_facts_callee"):
        return True
    d = DUCKDB
    callee_differs = con.execute(
        f"""WITH g AS (SELECT caller, peer, {d.arg_max("callee", "n")} AS callee
                       FROM (SELECT caller, peer, callee, sum(n) AS n FROM faultlens_facts_callee
                             GROUP BY caller, peer, callee)
                       GROUP BY caller, peer),
                 r AS (SELECT run, caller, peer, {d.arg_max("callee", "n")} AS callee
                       FROM faultlens_facts_callee GROUP BY run, caller, peer)
            SELECT count(*) FROM r JOIN g ON g.caller = r.caller AND g.peer = r.peer
            WHERE g.callee IS DISTINCT FROM r.callee"""
    ).fetchone()[0]
    models_differ = con.execute(
        """WITH g AS (SELECT service, count(DISTINCT model) AS n_models,
                             min(model) AS only_model
                      FROM faultlens_service_models GROUP BY service),
                c AS (SELECT service, min(only_client) AS only_client
                      FROM faultlens_facts_services GROUP BY service)
           SELECT count(*) FROM faultlens_facts_services r JOIN g ON g.service = r.service
           JOIN c ON c.service = r.service
           WHERE g.n_models <> r.n_models OR g.only_model IS DISTINCT FROM r.only_model
              OR c.only_client <> r.only_client"""
    ).fetchone()[0]
    return callee_differs == 0 and models_differ == 0
