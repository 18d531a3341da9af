"""Span facts kept in the DuckDB store, so an analysis does not derive them again.

DESIGN.md (Storage): "faultlens' own columns beside them, materialized at
ingest for speed: ModelName, ModelVersion ..., and whatever else the
analysis scans often." The per-span facts (entry flag, children's aggregate,
the candidate each span speaks for), the entry requests and each trace's
exposure cost most of an analysis when derived from ``otel_traces``, so
ingest (and ``faultlens collect`` when it stops) stores them (:func:`store_facts`),
each run's rows together and in time order, so that one run's or one incident's
rows are read without scanning the rest:

- ``faultlens_spans``, ``faultlens_requests``, ``faultlens_exposure``: what
  ``derive_fact_tables`` makes as ``fl_spans``, ``fl_requests``, ``fl_exposure``,
  each run's facts derived from that run alone; in requests and exposure,
  ``trace_id`` is a number per (run, trace) (they are only joined and counted
  by trace), in spans the trace id itself;
- ``faultlens_instances``: per process instance and (model, version), when and how much;
- ``faultlens_service_models``: the distinct (run, service, model) rows;
- ``faultlens_scope_series``: the per-scope time series incident detection reads
  (``scope_series_sql``), for the default 5 s bucket;
- ``faultlens_span_buckets``: per run, bucket, candidate and span owner, the span sums
  culprit ranking and the evidence volume read (``span_buckets_sql``), same bucket;
- ``faultlens_facts_runs``: per run, the number of spans its facts were derived from;
- ``faultlens_facts_callee``, ``faultlens_facts_services``: each run's callee counts and
  service-model map, to judge whether a whole-store analysis may read the facts;
- ``faultlens_facts_meta``: the facts' format, the series bucket, and whether a
  whole-store analysis may read them.

Memory stays bounded however large the store (issue 5: 10 million spans in at most
1.5 GB): the facts of a span need only its own trace plus two small per-run maps, so
they are derived one partition at a time (a run alone or several small runs together, a
big run cut by time into parts of about ``TUNING.facts_part_spans``, each trace whole in the part it
starts in), and DuckDB works under a memory limit, spilling to its temporary directory
(beside the store) for the sorts and joins that need more. A partition reads its spans
from ``otel_traces`` itself, one scan per run with the run's filter (and a part's time
range) in it: row-group statistics skip other runs' rows and other parts' times, so
nothing is staged and a run cut in k parts is read about once, not k times. Each
partition writes its rows into the stored tables at once, in time order (partitions
follow the runs' order; the few rows of a part's traces that start after the next
part's first are carried over to it). The old rows of the runs derived again are
replaced in the same transaction.

The store only grows (ingest dedupes, never deletes), so a run's span count names
what its facts were derived from: :func:`store_facts` derives again only the runs whose
count changed. After any later write that did not refresh them (``faultlens collect``
while it runs) the total no longer matches and the analysis derives its facts from
``otel_traces`` as before (:func:`open_stored_facts` answers False). ClickHouse stores
never have them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from .._settings import TUNING, DetectionSettings
from ..store._dialect import DUCKDB, Dialect
from . import _sql as _detect
from ._sql import scope_series_sql, span_buckets_sql

__all__ = ["FACTS_FORMAT", "StoredFacts", "store_facts", "open_stored_facts"]

FACTS_FORMAT = 9  # bump when a stored table's meaning changes
SERIES_BUCKET_NS = DetectionSettings().bucket_ns
_SCANS = 8  # a partition of more runs reads them in one scan
_META = "faultlens_facts_meta"
_RUNS = "faultlens_facts_runs"
_TABLES = {  # stored table: (temp table it replaces, order within a run)
    "faultlens_spans": ("fl_spans", "ts"),
    "faultlens_requests": ("fl_requests", "ts"),
    "faultlens_exposure": ("fl_exposure", "trace_id"),
    "faultlens_scope_series": ("fl_scope_series", "scope, key, bucket_start"),
    "faultlens_span_buckets": ("fl_span_buckets", "bucket_start"),
    "faultlens_instances": ("fl_instances", "service, instance"),
}
_SIDE = ("faultlens_service_models", "faultlens_facts_callee", "faultlens_facts_services")
_TEMPS = (  # dropped when the step ends, however it ends
    "fl_parts",
    "fl_straddle",
    "fl_part_requests",
    "fl_carry_faultlens_spans",
    "fl_carry_faultlens_requests",
    "fl_instances_acc",
    "fl_callee",
    "fl_service_models",
    "fl_base",
    "fl_child",
    "fl_trace_numbers",
    "fl_part_exposure",
    "fl_callee_all",
    "fl_client_parents",
    "fl_kinds",
    "fl_traces_acc",
)
_RUN = f"coalesce({DUCKDB.attr('ResourceAttributes', 'faultlens.run')}, '')"


@dataclass(frozen=True)
class StoredFacts:
    """The stored facts an analysis reads: ``fl_scope_series`` holds this bucket's series."""

    series_bucket_ns: int


def _span_count(con: Any) -> int:
    return int(con.execute("SELECT count(*) FROM otel_traces").fetchone()[0])


def _exists(con: Any, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND NOT temporary",
            {"t": table},
        ).fetchone()[0]
    )


def store_facts(con: Any, *, progress: Callable[[int, int], None] | None = None) -> int:
    """Derive and store the span facts of every run whose span count changed since they
    were stored; returns the spans the stored facts cover (every span of the store).

    ``progress(done, total)`` is called as the work goes, in steps: one per partition of
    spans derived, and one for what needs whole runs at the end (``done == total`` last).

    Each run's facts are derived from that run alone (``derive_fact_tables(by_run=True)``'s
    steps), which is what an analysis of one run computes. A whole-store analysis may read
    them only when it would compute the same: no trace spans two runs, and the callee
    and service-model maps of each run agree with the whole store's.
    """
    counts = dict(
        con.execute(f"SELECT {_RUN} AS run, count(*) FROM otel_traces GROUP BY 1").fetchall()
    )
    total = sum(counts.values())
    meta = _stored_meta(con)
    stored: dict[str, int] = {}
    if meta is not None and _exists(con, _RUNS):
        stored = dict(con.execute(f"SELECT run, spans FROM {_RUNS}").fetchall())
    stale = sorted(r for r, n in counts.items() if stored.get(r) != n)
    gone = sorted(set(stored) - set(counts))
    if meta is not None and not stale and not gone:
        return total
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    bar = con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    con.execute(f"SET memory_limit = '{TUNING.facts_memory}'")
    # DuckDB draws its own bar on stdout for a long query: not inside `faultlens ingest`.
    con.execute("SET enable_progress_bar = false")
    try:
        if meta is None:  # another format, or none yet: derive every run
            for table in (*_TABLES, *_SIDE, _RUNS, _META):
                con.execute(f"DROP TABLE IF EXISTS {table}")
            stale, gone, split = sorted(counts), [], False
        else:
            split = meta.split
        # A crash from here on leaves the whole-store flag off until the end.
        _write_meta(con, whole_store=False, split=split)
        offset = 0  # trace numbers go on from the stored ones
        if _exists(con, "faultlens_exposure"):
            offset = int(
                con.execute("SELECT coalesce(max(trace_id), 0) FROM faultlens_exposure").fetchone()[
                    0
                ]
            )
        # The old rows of these runs go and the new ones come in one transaction: each
        # partition's rows are written as soon as they are derived.
        con.execute("BEGIN TRANSACTION")
        try:
            for table in (*_TABLES, *_SIDE, _RUNS):
                if (stale or gone) and _exists(con, table):
                    con.execute(
                        f"DELETE FROM {table} WHERE run IN (SELECT unnest($r))",
                        {"r": stale + gone},
                    )
            if stale:
                others = len(stale) < len(counts)
                derived = _derive(
                    con,
                    {r: counts[r] for r in stale},
                    had_others=others,
                    offset=offset,
                    progress=progress,
                )
                split = derived or split
            _write_meta(con, whole_store=not split and _maps_agree(con), split=split)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        _restore_memory_limit(con, limit)
        con.execute(f"SET enable_progress_bar = {'true' if bar else 'false'}")
        for temp in _TEMPS:
            con.execute(f"DROP TABLE IF EXISTS {temp}")
        for view in ("fl_spans", "fl_requests", "fl_exposure"):
            con.execute(f"DROP VIEW IF EXISTS {view}")
    return total


def _restore_memory_limit(con: Any, shown: str) -> None:
    """Put back the limit DuckDB showed as ``shown`` (e.g. '2.7 GiB', rounded down to one
    decimal): the default when it was the default, else half a display step above the
    shown value, which DuckDB shows the same (setting the shown text back lowered the
    limit by a step each time)."""
    con.execute("RESET memory_limit")
    if con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown:
        return
    number, _, unit = shown.partition(" ")
    try:
        con.execute(f"SET memory_limit = '{float(number) + 0.05:.2f} {unit}'")
    except (ValueError, duckdb.Error):
        con.execute(f"SET memory_limit = '{shown}'")


def _partitions(counts: dict[str, int]) -> list[tuple[str, int, int]]:
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


def _derive(
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
    time (:class:`_Cut`) writes each part's rows in order as it goes."""
    d = DUCKDB
    layout = _partitions(counts)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fl_parts (run VARCHAR, first BIGINT, k BIGINT, spans BIGINT)"
    )
    con.executemany(
        "INSERT INTO fl_parts VALUES (?, ?, ?, ?)", [(*p, counts[p[0]]) for p in layout]
    )
    parts: dict[int, tuple[list[str], int, int]] = {}  # partition: (runs, k parts, part j)
    for run, first, k in layout:
        for j in range(k):
            parts.setdefault(first + j, ([], k, j))[0].append(run)
    cut = [run for run, _, k in layout if k > 1]
    # The small per-run maps (callee counts; which service runs which models, of which
    # kinds) of a run cut in parts come first, from all its spans: which service a client
    # span reaches needs only the children of client spans, their aggregate over the run at
    # once (joins spill). A partition of whole runs makes its runs' maps itself.
    if cut:
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
    # Then per partition: children's aggregate, entry flag, the candidate of each span,
    # requests and exposure. Requests and exposure are only ever joined and counted by
    # trace: a number per (run, trace) stands for its id (one-to-one within a run), so the
    # per-incident joins hash integers.
    traces = len(counts) > 1 or had_others  # whether a trace spans two runs is asked
    by_time: _Cut | None = None  # the run being derived in parts, cut by time
    steps = len(parts) + 1  # each partition, then _finish
    for step, (runs, k, j) in enumerate(parts[p] for p in sorted(parts)):
        if progress is not None:
            progress(step, steps)
        # A partition of one run (or of one part of it) joins without the run in its keys,
        # against that run's maps alone: the same rows, fewer strings to hash.
        by_run = len(runs) > 1
        if k > 1 and j == 0:  # a run's parts come one after the other
            by_time = _cut(con, runs[0], k)
        part = by_time.filter(j) if by_time is not None and k > 1 else None
        con.execute(d.temp_table("fl_base", _spans_of(runs, part=part)))
        con.execute(d.temp_table("fl_child", _detect.child_sql(d, by_run=by_run)))
        if k == 1:
            _maps(con, "fl_base", run=None if by_run else runs[0])
        own = "" if by_run else f" WHERE run = {_literal(runs[0])}"
        by = "run, " if by_run else ""  # one run sorts by time alone (1M rows: 0.88 -> 0.63 s)
        con.execute(
            d.temp_table(
                "fl_callee",
                _detect.callee_sql(d, by_run=by_run, counts=f"(SELECT * FROM fl_callee_all{own})"),
            )
        )
        con.execute(
            d.temp_table(
                "fl_service_models",
                _detect.service_models_sql(by_run=by_run, base=f"(SELECT * FROM fl_kinds{own})"),
            )
        )
        # Written sorted at once; the rest is read back from the stored rows.
        if k == 1:
            _append(con, "faultlens_spans", f"{_facts_sql(by_run)} ORDER BY {by}ts")
            spans = (
                "("
                + " UNION ALL ".join(
                    f"SELECT * FROM faultlens_spans WHERE run = {_literal(r)}" for r in runs
                )
                + ")"
            )
        else:  # a part: its rows that start after the next part's first are carried over
            crossing = f"(SELECT * FROM fl_base WHERE {by_time.crossing(j, 'trace_id')})"
            _append_in_order(
                con,
                "faultlens_spans",
                f"({_facts_sql(by_run)})",
                until=by_time.until(j),
                later=f"({_facts_sql(by_run, base=crossing)})",
            )
            spans = by_time.stored_rows(j, runs[0])
        # Memory (the limit counts temporary tables) goes to what follows.
        con.execute("DROP TABLE fl_base")
        con.execute("DROP TABLE fl_child")
        con.execute(
            d.temp_table(
                "fl_trace_numbers",
                f"""SELECT run, trace_id, CAST({offset} + row_number() OVER () AS BIGINT)
                           AS trace_no
                    FROM (SELECT DISTINCT run, trace_id FROM {spans})""",
            )
        )
        offset += int(con.execute("SELECT count(*) FROM fl_trace_numbers").fetchone()[0])
        if traces:
            _append(con, "fl_traces_acc", "SELECT run, trace_id FROM fl_trace_numbers", temp=True)
        # The exposure once: stored, and what each request's trace touched.
        con.execute(
            d.temp_table("fl_part_exposure", _detect.EXPOSURE_SQL.replace("fl_spans", spans))
        )
        requests = _detect.requests_sql(DUCKDB, exposure="fl_part_exposure")
        if k > 1:  # in time order, as the spans (trace numbers grow from part to part)
            select = _numbered(requests.replace("fl_spans", spans))
            con.execute(d.temp_table("fl_part_requests", f"SELECT * FROM {select}"))
            _append_in_order(con, "faultlens_requests", "fl_part_requests", until=by_time.until(j))
            con.execute("DROP TABLE fl_part_requests")
        else:
            _append(
                con,
                "faultlens_requests",
                f"SELECT * FROM {_numbered(requests.replace('fl_spans', spans))} ORDER BY {by}ts",
            )
        _append(
            con,
            "faultlens_exposure",
            f"SELECT * FROM {_numbered('SELECT * FROM fl_part_exposure')} ORDER BY {by}trace_id",
        )
        _append(
            con, "fl_instances_acc", _detect.INSTANCES_SQL.replace("fl_spans", spans), temp=True
        )
        con.execute("DROP TABLE fl_trace_numbers")
        con.execute("DROP TABLE fl_part_exposure")
    split = False
    if len(counts) > 1:
        split = bool(
            con.execute(
                """SELECT count(*) FROM (SELECT trace_id FROM fl_traces_acc GROUP BY trace_id
                                         HAVING min(run) <> max(run))"""
            ).fetchone()[0]
        )
    if had_others and not split:
        split = bool(
            con.execute(
                """SELECT count(*) FROM faultlens_spans o
                   WHERE o.trace_id IN (SELECT trace_id FROM fl_traces_acc)
                     AND o.run NOT IN (SELECT run FROM fl_parts)"""
            ).fetchone()[0]
        )
    if progress is not None:
        progress(steps - 1, steps)
    _finish(con)
    if progress is not None:
        progress(steps, steps)
    return split


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
    (``part``, a filter from :class:`_Cut`), as a subquery: one scan per run, each with the
    run's filter in it."""
    extra = f" AND {part}" if part else ""
    if len(runs) > _SCANS:  # many small runs: one scan
        listed = ", ".join(map(_literal, runs))
        return f"({_detect.base_sql(DUCKDB, run_filter=f'{_RUN} IN ({listed}){extra}')})"
    scans = [_detect.base_sql(DUCKDB, run_filter=f"{_RUN} = {_literal(r)}{extra}") for r in runs]
    return "(" + " UNION ALL ".join(scans) + ")"


@dataclass(frozen=True)
class _Cut:
    """A big run cut by time into parts of about ``TUNING.facts_part_spans`` spans, each
    trace whole in one part: the part its first span starts in. ``bounds`` are the k-1
    start times (ns) between parts; ``ends[j]`` is when the last span of part j starts (a
    trace that began in it may go on past the next bound: such traces are listed in
    ``fl_straddle``).

    A part reads only its time range of ``otel_traces`` (row-group statistics skip the
    rest of a run stored in about time order), so a run of N spans costs about one scan of
    N rows in all, not one per part."""

    bounds: tuple[int, ...]
    ends: tuple[int, ...]

    def filter(self, j: int) -> str:
        """The rows of part j, as a filter on ``otel_traces``."""
        h = "hash(TraceId)"
        terms = [f"Timestamp >= make_timestamp_ns({self.bounds[j - 1]})"] if j else []
        own = self.crossing(j, "TraceId")
        if j < len(self.bounds):
            terms.append(f"Timestamp <= make_timestamp_ns({self.ends[j]})")
            whole = f"Timestamp < make_timestamp_ns({self.bounds[j]})"
            own = f"({own} OR ({whole} AND {h} NOT IN (SELECT h FROM fl_straddle)))"
        else:
            own = f"({own} OR {h} NOT IN (SELECT h FROM fl_straddle))"
        return " AND ".join([*terms, own])

    def crossing(self, j: int, trace_id: str) -> str:
        """A filter: the traces that start in part j and go on past its end."""
        return f"hash({trace_id}) IN (SELECT h FROM fl_straddle WHERE part = {j})"

    def stored_rows(self, j: int, run: str) -> str:
        """Part j's span facts once written (:func:`_append_in_order`), as a subquery: in
        ``faultlens_spans`` from the part's first start on, but for the rows carried
        there from earlier parts, and its own carried rows."""
        terms = [f"run = {_literal(run)}"]
        if j:
            terms.append(f"ts >= {self.bounds[j - 1]}")
        terms.append(f"hash(trace_id) NOT IN (SELECT h FROM fl_straddle WHERE part < {j})")
        stored = f"SELECT * FROM faultlens_spans WHERE {' AND '.join(terms)}"
        if j == len(self.bounds):  # the last part: nothing carried on
            return f"({stored})"
        carried = f"SELECT * FROM fl_carry_faultlens_spans WHERE {self.crossing(j, 'trace_id')}"
        return f"({stored} AND ts < {self.bounds[j]} UNION ALL {carried})"

    def until(self, j: int) -> int | None:
        """Part j's rows (and those carried to it) that start before this time are written
        once it is derived, the rest carried on; None for the last part: all are written."""
        return self.bounds[j] if j < len(self.bounds) else None


def _cut(con: Any, run: str, k: int) -> _Cut:
    """Cut ``run`` into k parts by span start time (``fl_straddle``: the traces that cross
    a bound, by trace id hash, with the part they start in)."""
    where = f"{_RUN} = {_literal(run)}"
    quantiles = [i / k for i in range(1, k)]
    found = con.execute(
        f"SELECT approx_quantile(epoch_ns(Timestamp), {quantiles}) FROM otel_traces WHERE {where}"
    ).fetchone()[0]
    bounds = tuple(sorted(int(b) for b in found))

    def part(column: str) -> str:
        return " + ".join(f"CAST({column} >= {b} AS INTEGER)" for b in bounds)

    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fl_straddle AS
            SELECT h, {part("t0")} AS part, t1
            FROM (SELECT hash(TraceId) AS h, min(epoch_ns(Timestamp)) AS t0,
                         max(epoch_ns(Timestamp)) AS t1
                  FROM otel_traces WHERE {where} GROUP BY h)
            WHERE {part("t0")} <> {part("t1")}"""
    )
    late = dict(con.execute("SELECT part, max(t1) FROM fl_straddle GROUP BY part").fetchall())
    ends = tuple(max(b, late.get(j, b)) for j, b in enumerate(bounds))
    return _Cut(bounds, ends)


def _append_in_order(
    con: Any, table: str, rows: str, *, until: int | None, later: str | None = None
) -> None:
    """Append ``rows`` (a table, or a query) and the rows carried from the previous part
    (``fl_carry_<table>``) to ``table`` in time order, those that start before ``until``;
    carry the rest. ``later`` selects those of ``rows`` more cheaply than ``rows`` itself
    (the part's traces that go on past its end), so that a query runs once in full."""
    carry = f"fl_carry_{table}"
    carried = bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND temporary",
            {"t": carry},
        ).fetchone()[0]
    )
    both = f"(SELECT * FROM {rows} UNION ALL SELECT * FROM {carry})" if carried else rows
    if until is None:  # the parts are of one run: its rows sort by time alone
        _append(con, table, f"SELECT * FROM {both} ORDER BY ts")
        con.execute(f"DROP TABLE IF EXISTS {carry}")
        return
    _append(con, table, f"SELECT * FROM {both} WHERE ts < {until} ORDER BY ts")
    rest = f"SELECT * FROM {later or rows} WHERE ts >= {until}"
    if carried:
        rest = f"SELECT * FROM {carry} WHERE ts >= {until} UNION ALL {rest}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {carry} AS {rest}")


def _maps(con: Any, spans: str, *, run: str | None = None) -> None:
    """Add the callee counts (from ``fl_child``) and the (service, model, kind) rows of the
    runs whose spans are all in ``spans`` (of ``run`` alone, when ``fl_child`` has no run)."""
    counts = _detect.callee_counts_sql(by_run=True, base=spans)
    if run is not None:
        counts = f"""SELECT {_literal(run)} AS run, *
            FROM ({_detect.callee_counts_sql(by_run=False, base=spans)})"""
    _append(con, "fl_callee_all", counts, temp=True)
    _append(con, "fl_kinds", f"SELECT DISTINCT run, service, model, kind FROM {spans}", temp=True)


def _append(con: Any, table: str, select: str, *, temp: bool = False) -> None:
    """Insert the rows of ``select`` into ``table``, creating it from them when new."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND temporary = $temp",
        {"t": table, "temp": temp},
    ).fetchone()[0]
    if exists:
        con.execute(f"INSERT INTO {table} {select}")
    else:
        con.execute(f"CREATE {'TEMP ' if temp else ''}TABLE {table} AS {select}")


def _finish(con: Any) -> None:
    """Write what needs all of a run's rows: each run's series and instances, and the small
    per-run tables."""
    d = DUCKDB
    for stored in ("faultlens_spans", "faultlens_requests", "faultlens_exposure"):
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW {_TABLES[stored][0]} AS
                SELECT * FROM {stored} WHERE run IN (SELECT run FROM fl_parts)"""
        )
    _append(
        con,
        "faultlens_scope_series",
        f"""SELECT * FROM ({scope_series_sql(d, bucket_ns=SERIES_BUCKET_NS)})
            ORDER BY run, {_TABLES["faultlens_scope_series"][1]}""",
    )
    _append(
        con,
        "faultlens_span_buckets",
        f"""SELECT * FROM ({span_buckets_sql(d, bucket_ns=SERIES_BUCKET_NS)})
            ORDER BY run, {_TABLES["faultlens_span_buckets"][1]}""",
    )
    # Per-partition instance rows add up: a run cut in parts has one row per part.
    _append(
        con,
        "faultlens_instances",
        f"""SELECT run, service, instance, model, version, max(layout) AS layout,
                   min(first_ts) AS first_ts, max(last_ts) AS last_ts,
                   max(last_end_ts) AS last_end_ts, CAST(sum(n_spans) AS BIGINT) AS n_spans
            FROM fl_instances_acc GROUP BY run, service, instance, model, version
            ORDER BY run, {_TABLES["faultlens_instances"][1]}""",
    )
    for stored, select in {
        "faultlens_service_models": "SELECT DISTINCT run, service, model FROM fl_kinds",
        "faultlens_facts_callee": "SELECT * FROM fl_callee_all",
        "faultlens_facts_services": _detect.service_models_sql(by_run=True, base="fl_kinds"),
        _RUNS: "SELECT run, spans FROM fl_parts",
    }.items():
        _append(con, stored, select)


def _maps_agree(con: Any) -> bool:
    """Whether each run's callee and service-model maps (models, only clients) are the
    whole store's."""
    if not _exists(con, "faultlens_facts_callee"):
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


def _write_meta(con: Any, *, whole_store: bool, split: bool) -> None:
    con.execute(
        f"""CREATE OR REPLACE TABLE {_META} AS
            SELECT CAST($format AS INTEGER) AS format, CAST($whole AS BOOLEAN) AS whole_store,
                   CAST($split AS BOOLEAN) AS split, CAST($bucket AS BIGINT) AS series_bucket_ns""",
        {"format": FACTS_FORMAT, "whole": whole_store, "split": split, "bucket": SERIES_BUCKET_NS},
    )


@dataclass(frozen=True)
class _Meta:
    whole_store: bool
    split: bool
    series_bucket_ns: int


def _stored_meta(con: Any) -> _Meta | None:
    if not _exists(con, _META):
        return None
    row = con.execute(f"SELECT * FROM {_META}").fetchone()
    if row is None or row[0] != FACTS_FORMAT or len(row) != 4:
        return None
    return _Meta(bool(row[1]), bool(row[2]), int(row[3]))


def open_stored_facts(con: Any, d: Dialect, *, run: str | None) -> StoredFacts | None:
    """Point ``fl_spans``, ``fl_requests``, ``fl_exposure``, ``fl_scope_series``,
    ``fl_span_buckets``, ``fl_instances`` and ``fl_service_models`` at the stored facts
    (of ``run``, or of the whole store) when they cover every span; else None.
    """
    if d.name != "duckdb":
        return None
    meta = _stored_meta(con)
    if meta is None or (run is None and not meta.whole_store) or not _exists(con, _RUNS):
        return None
    covered = con.execute(f"SELECT coalesce(sum(spans), 0) FROM {_RUNS}").fetchone()[0]
    if int(covered) != _span_count(con):
        return None
    # A view cannot take a bound parameter: the run is a quoted literal.
    where = "" if run is None else f" WHERE run = {_literal(run)}"
    for stored, (temp, _) in _TABLES.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {temp} AS SELECT * FROM {stored}{where}")
    con.execute(
        d.temp_table(
            "fl_service_models",
            f"""SELECT service, count(DISTINCT model) AS n_models, min(model) AS only_model
                FROM faultlens_service_models{where} GROUP BY service""",
        )
    )
    return StoredFacts(series_bucket_ns=meta.series_bucket_ns)


def _literal(value: str) -> str:
    # A view cannot take a bound parameter: runs are quoted literals.
    return DUCKDB.literal(value)
