"""Span facts kept in the DuckDB store, so an analysis does not derive them again.

DESIGN.md (Storage): "faultlens' own columns beside them, materialized at
ingest for speed: ModelName, ModelVersion ..., and whatever else the
analysis scans often." The per-span facts (entry flag, children's aggregate,
the candidate each span speaks for), the entry requests and each trace's
exposure cost most of an analysis when derived from ``otel_traces``, so
ingest stores them once (:func:`store_facts`), in (run, time) order so that
one run's or one incident's rows are read without scanning the rest:

- ``faultlens_spans``, ``faultlens_requests``, ``faultlens_exposure``: what
  ``build_facts`` makes as ``fl_spans``, ``fl_requests``, ``fl_exposure``,
  each run's facts derived from that run alone; in requests and exposure,
  ``trace_id`` is a dense number per trace (they are only joined and counted
  by trace), in spans the trace id itself;
- ``faultlens_instances``: per process instance and (model, version), when and how much;
- ``faultlens_service_models``: the distinct (run, service, model) rows;
- ``faultlens_scope_series``: the per-scope time series incident detection reads
  (``scope_series_sql``), for the default 5 s bucket;
- ``faultlens_facts_meta``: the facts' format, the number of spans they were
  derived from, and whether a whole-store analysis may read them too.

The store only grows (ingest dedupes, never deletes), so the span count names
what the facts were derived from: after any later write (``faultlens collect``,
another ingest that did not refresh them) they no longer match and the analysis
derives its facts from ``otel_traces`` as before (:func:`use_stored_facts`
answers False). ClickHouse stores never have them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faultlens.analyzer._detect import DetectionSettings, build_facts, scope_series_sql
from faultlens.analyzer._dialect import DUCKDB, Dialect

__all__ = ["FACTS_FORMAT", "StoredFacts", "store_facts", "use_stored_facts"]

FACTS_FORMAT = 5  # bump when a stored table's meaning changes
SERIES_BUCKET_NS = DetectionSettings().bucket_ns
_META = "faultlens_facts_meta"
_TABLES = {  # stored table: (temp table it replaces, order)
    "faultlens_spans": ("fl_spans", "run, ts"),
    "faultlens_requests": ("fl_requests", "run, ts"),
    "faultlens_exposure": ("fl_exposure", "run, trace_id"),
    "faultlens_scope_series": ("fl_scope_series", "run"),
    "faultlens_instances": ("fl_instances", "run"),
}


@dataclass(frozen=True)
class StoredFacts:
    """The stored facts an analysis reads: ``fl_scope_series`` holds this bucket's series."""

    series_bucket_ns: int


def _span_count(con: Any) -> int:
    return int(con.execute("SELECT count(*) FROM otel_traces").fetchone()[0])


def store_facts(con: Any) -> int:
    """Derive the span facts of every run and store them; returns the spans they cover.

    Each run's facts are derived from that run alone (``build_facts(by_run=True)``),
    which is what an analysis of one run computes. A whole-store analysis may read
    them only when it would compute the same: no trace spans two runs, and the
    callee and service-model maps of each run agree with the whole store's.
    Nothing is rewritten when the stored facts already cover every span.
    """
    spans = _span_count(con)
    meta = _stored_meta(con)
    if meta is not None and meta[1] == spans:
        return spans
    d = DUCKDB
    build_facts(con, d, run_filter="1 = 1", params={}, by_run=True)
    split = con.execute(
        """SELECT count(*) FROM (SELECT trace_id FROM fl_spans GROUP BY trace_id
                                 HAVING min(run) <> max(run))"""
    ).fetchone()[0]
    callee_differs = con.execute(
        f"""WITH g AS (SELECT caller, peer, {d.arg_max("callee", "n")} AS callee
                       FROM (SELECT caller, peer, callee, sum(n) AS n FROM fl_callee_all
                             GROUP BY caller, peer, callee)
                       GROUP BY caller, peer)
            SELECT count(*) FROM fl_callee r JOIN g ON g.caller = r.caller AND g.peer = r.peer
            WHERE g.callee IS DISTINCT FROM r.callee"""
    ).fetchone()[0]
    con.execute(
        d.temp_table(
            "fl_service_models_by_run",
            "SELECT DISTINCT run, service, model FROM fl_spans",
        )
    )
    models_differ = con.execute(
        """WITH g AS (SELECT service, count(DISTINCT model) AS n_models,
                             min(model) AS only_model
                      FROM fl_service_models_by_run GROUP BY service)
           SELECT count(*) FROM fl_service_models r JOIN g ON g.service = r.service
           WHERE g.n_models <> r.n_models OR g.only_model IS DISTINCT FROM r.only_model"""
    ).fetchone()[0]
    whole_store = split == 0 and callee_differs == 0 and models_differ == 0
    con.execute(d.temp_table("fl_scope_series", scope_series_sql(d, bucket_ns=SERIES_BUCKET_NS)))
    # Requests and exposure are only ever joined and counted by trace: there a dense
    # number stands for each trace id (a one-to-one map, so every answer is the same),
    # and the per-incident joins hash integers, not 32-character strings.
    con.execute(
        d.temp_table(
            "fl_trace_numbers",
            """SELECT trace_id, CAST(row_number() OVER () AS BIGINT) AS trace_no
               FROM (SELECT DISTINCT trace_id FROM fl_exposure)""",
        )
    )
    numbered = {"fl_requests", "fl_exposure"}
    con.execute("BEGIN TRANSACTION")
    try:
        for stored, (temp, order) in _TABLES.items():
            rows = (
                f"""SELECT t.* REPLACE (n.trace_no AS trace_id) FROM {temp} t
                    JOIN fl_trace_numbers n ON n.trace_id = t.trace_id"""
                if temp in numbered
                else f"SELECT * FROM {temp}"
            )
            con.execute(f"DROP TABLE IF EXISTS {stored}")
            con.execute(f"CREATE TABLE {stored} AS {rows} ORDER BY {order}")
        con.execute("DROP TABLE IF EXISTS faultlens_service_models")
        con.execute(
            "CREATE TABLE faultlens_service_models AS SELECT * FROM fl_service_models_by_run"
        )
        con.execute(f"DROP TABLE IF EXISTS {_META}")
        con.execute(
            f"""CREATE TABLE {_META} AS SELECT CAST($format AS INTEGER) AS format,
                       CAST($spans AS BIGINT) AS spans, CAST($whole AS BOOLEAN) AS whole_store,
                       CAST($bucket AS BIGINT) AS series_bucket_ns""",
            {
                "format": FACTS_FORMAT,
                "spans": spans,
                "whole": whole_store,
                "bucket": SERIES_BUCKET_NS,
            },
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for temp in ("fl_callee", "fl_callee_all", *(t for t, _ in _TABLES.values())):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    con.execute("DROP TABLE IF EXISTS fl_service_models")
    con.execute("DROP TABLE IF EXISTS fl_service_models_by_run")
    con.execute("DROP TABLE IF EXISTS fl_trace_numbers")
    return spans


def _stored_meta(con: Any, *, whole_store: bool = False) -> tuple[int, int, int] | None:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND NOT temporary",
        {"t": _META},
    ).fetchone()[0]
    if not exists:
        return None
    row = con.execute(f"SELECT * FROM {_META}").fetchone()
    if row is None or row[0] != FACTS_FORMAT or (whole_store and not row[2]):
        return None
    return int(row[0]), int(row[1]), int(row[3])


def use_stored_facts(con: Any, d: Dialect, *, run: str | None) -> StoredFacts | None:
    """Point ``fl_spans``, ``fl_requests``, ``fl_exposure``, ``fl_scope_series`` and
    ``fl_service_models`` at the stored facts (of ``run``, or of the whole store) when
    they cover every span; else None.
    """
    if d.name != "duckdb":
        return None
    meta = _stored_meta(con, whole_store=run is None)
    if meta is None or meta[1] != _span_count(con):
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
    return StoredFacts(series_bucket_ns=meta[2])


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
