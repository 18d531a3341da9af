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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from .._settings import TUNING
from ..store._dialect import Dialect
from ._derive import derive, maps_agree
from ._schema import (
    META_TABLE,
    RUN_EXPR,
    RUNS_TABLE,
    SERIES_BUCKET_NS,
    SIDE_TABLES,
    STORED_TABLES,
    TEMP_TABLES,
    literal,
    table_exists,
)

__all__ = ["FACTS_FORMAT", "StoredFacts", "open_stored_facts", "store_facts"]

FACTS_FORMAT = 9  # bump when a stored table's meaning changes


@dataclass(frozen=True)
class StoredFacts:
    """The stored facts an analysis reads: ``fl_scope_series`` holds this bucket's series.
    ``shared``: every cursor of the store can open them (False: temporary tables of one
    connection, the live facts of ``_live``)."""

    series_bucket_ns: int
    shared: bool = True


def _span_count(con: Any) -> int:
    return int(con.execute("SELECT count(*) FROM otel_traces").fetchone()[0])


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
        con.execute(f"SELECT {RUN_EXPR} AS run, count(*) FROM otel_traces GROUP BY 1").fetchall()
    )
    total = sum(counts.values())
    meta = _stored_meta(con)
    stored: dict[str, int] = {}
    if meta is not None and table_exists(con, RUNS_TABLE):
        stored = dict(con.execute(f"SELECT run, spans FROM {RUNS_TABLE}").fetchall())
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
            for table in (*STORED_TABLES, *SIDE_TABLES, RUNS_TABLE, META_TABLE):
                con.execute(f"DROP TABLE IF EXISTS {table}")
            stale, gone, split = sorted(counts), [], False
        else:
            split = meta.split
        # A crash from here on leaves the whole-store flag off until the end.
        _write_meta(con, whole_store=False, split=split)
        offset = 0  # trace numbers go on from the stored ones
        if table_exists(con, "faultlens_exposure"):
            offset = int(
                con.execute("SELECT coalesce(max(trace_id), 0) FROM faultlens_exposure").fetchone()[
                    0
                ]
            )
        # The old rows of these runs go and the new ones come in one transaction: each
        # partition's rows are written as soon as they are derived.
        con.execute("BEGIN TRANSACTION")
        try:
            for table in (*STORED_TABLES, *SIDE_TABLES, RUNS_TABLE):
                if (stale or gone) and table_exists(con, table):
                    con.execute(
                        f"DELETE FROM {table} WHERE run IN (SELECT unnest($r))",
                        {"r": stale + gone},
                    )
            if stale:
                others = len(stale) < len(counts)
                derived = derive(
                    con,
                    {r: counts[r] for r in stale},
                    had_others=others,
                    offset=offset,
                    progress=progress,
                )
                split = derived or split
            _write_meta(con, whole_store=not split and maps_agree(con), split=split)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        _restore_memory_limit(con, limit)
        con.execute(f"SET enable_progress_bar = {'true' if bar else 'false'}")
        for temp in TEMP_TABLES:
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


def _write_meta(con: Any, *, whole_store: bool, split: bool) -> None:
    con.execute(
        f"""CREATE OR REPLACE TABLE {META_TABLE} AS
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
    if not table_exists(con, META_TABLE):
        return None
    row = con.execute(f"SELECT * FROM {META_TABLE}").fetchone()
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
    if meta is None or (run is None and not meta.whole_store) or not table_exists(con, RUNS_TABLE):
        return None
    covered = con.execute(f"SELECT coalesce(sum(spans), 0) FROM {RUNS_TABLE}").fetchone()[0]
    if int(covered) != _span_count(con):
        return None
    # A view cannot take a bound parameter: the run is a quoted literal.
    where = "" if run is None else f" WHERE run = {literal(run)}"
    for stored, (temp, _) in STORED_TABLES.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {temp} AS SELECT * FROM {stored}{where}")
    con.execute(
        d.temp_table(
            "fl_service_models",
            f"""SELECT service, count(DISTINCT model) AS n_models, min(model) AS only_model
                FROM faultlens_service_models{where} GROUP BY service""",
        )
    )
    return StoredFacts(series_bucket_ns=meta.series_bucket_ns)
