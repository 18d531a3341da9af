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
  ``build_facts`` makes as ``fl_spans``, ``fl_requests``, ``fl_exposure``,
  each run's facts derived from that run alone; in requests and exposure,
  ``trace_id`` is a number per (run, trace) (they are only joined and counted
  by trace), in spans the trace id itself;
- ``faultlens_instances``: per process instance and (model, version), when and how much;
- ``faultlens_service_models``: the distinct (run, service, model) rows;
- ``faultlens_scope_series``: the per-scope time series incident detection reads
  (``scope_series_sql``), for the default 5 s bucket;
- ``faultlens_facts_runs``: per run, the number of spans its facts were derived from;
- ``faultlens_facts_callee``, ``faultlens_facts_services``: each run's callee counts and
  service-model map, to judge whether a whole-store analysis may read the facts;
- ``faultlens_facts_meta``: the facts' format, the series bucket, and whether a
  whole-store analysis may read them.

Memory stays bounded however large the store (issue 5: 10 million spans in at most
1.5 GB): the facts of a span need only its own trace plus two small per-run maps, so
the spans of the runs to derive are read once into a staging table with a partition
number (a run alone or several small runs together, a big run cut by a hash of the
trace id into parts of about ``PART_SPANS``), the facts are derived one partition at a
time, and DuckDB works under a memory limit, spilling to its temporary directory
(beside the store) for the sorts and joins that need more.

The store only grows (ingest dedupes, never deletes), so a run's span count names
what its facts were derived from: :func:`store_facts` derives again only the runs whose
count changed. After any later write that did not refresh them (``faultlens collect``
while it runs) the total no longer matches and the analysis derives its facts from
``otel_traces`` as before (:func:`use_stored_facts` answers False). ClickHouse stores
never have them.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultlens.analyzer import _detect
from faultlens.analyzer._detect import DetectionSettings, scope_series_sql
from faultlens.analyzer._dialect import DUCKDB, Dialect

__all__ = ["FACTS_FORMAT", "StoredFacts", "store_facts", "use_stored_facts"]

FACTS_FORMAT = 7  # bump when a stored table's meaning changes
SERIES_BUCKET_NS = DetectionSettings().bucket_ns
PART_SPANS = int(os.environ.get("FAULTLENS_FACTS_PART_SPANS", 1_000_000))
MEMORY_LIMIT = os.environ.get("FAULTLENS_FACTS_MEMORY", "700MB")
_META = "faultlens_facts_meta"
_RUNS = "faultlens_facts_runs"
_TABLES = {  # stored table: (temp table it replaces, order within a run)
    "faultlens_spans": ("fl_spans", "ts"),
    "faultlens_requests": ("fl_requests", "ts"),
    "faultlens_exposure": ("fl_exposure", "trace_id"),
    "faultlens_scope_series": ("fl_scope_series", "scope, key, bucket_start"),
    "faultlens_instances": ("fl_instances", "service, instance"),
}
_SIDE = ("faultlens_service_models", "faultlens_facts_callee", "faultlens_facts_services")
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


def store_facts(con: Any) -> int:
    """Derive and store the span facts of every run whose span count changed since they
    were stored; returns the spans the stored facts cover (every span of the store).

    Each run's facts are derived from that run alone (``build_facts(by_run=True)``'s
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
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        if meta is None:  # another format, or none yet: derive every run
            for table in (*_TABLES, *_SIDE, _RUNS, _META):
                con.execute(f"DROP TABLE IF EXISTS {table}")
            stale, gone, split = sorted(counts), [], False
        else:
            split = meta.split
        # A crash from here on leaves the whole-store flag off until the end.
        _write_meta(con, whole_store=False, split=split)
        if stale:
            stage = _stage_dir(con)
            try:
                others = len(stale) < len(counts)
                derived = _derive(con, {r: counts[r] for r in stale}, stage, had_others=others)
            finally:
                con.execute("DROP VIEW IF EXISTS fl_stage")
                shutil.rmtree(stage, ignore_errors=True)
            split = derived or split
        _finish(con, stale + gone, split=split)
    finally:
        con.execute(f"SET memory_limit = '{limit}'")
        for temp in (
            "fl_parts",
            "fl_spans_acc",
            "fl_requests_acc",
            "fl_exposure_acc",
            "fl_callee",
            "fl_service_models",
            "fl_base",
            "fl_child",
            "fl_part_spans",
            "fl_trace_numbers",
            "fl_callee_all",
            "fl_service_models_by_run",
            "fl_client_parents",
        ):
            con.execute(f"DROP TABLE IF EXISTS {temp}")
        for view in ("fl_spans", "fl_requests", "fl_exposure"):
            con.execute(f"DROP VIEW IF EXISTS {view}")
    return total


def _partitions(counts: dict[str, int]) -> list[tuple[str, int, int]]:
    """(run, first partition, parts) per run: small runs share a partition up to
    ``PART_SPANS`` spans, a big run is cut into parts of about that many."""
    out: list[tuple[str, int, int]] = []
    part, filled = 0, 0
    for run, n in sorted(counts.items()):
        if n > PART_SPANS:
            if filled:
                part, filled = part + 1, 0
            k = math.ceil(n / PART_SPANS)
            out.append((run, part, k))
            part += k
            continue
        if filled and filled + n > PART_SPANS:
            part, filled = part + 1, 0
        out.append((run, part, 1))
        filled += n
    return out


def _stage_dir(con: Any) -> Path:
    """A fresh directory for the staged spans, beside the store (else a temporary one)."""
    path = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()[0]
    where = Path(path).parent if path and path != ":memory:" else None
    name = Path(path).name if where is not None else "faultlens"
    return Path(tempfile.mkdtemp(prefix=f"{name}.facts-", dir=where))


def _derive(con: Any, counts: dict[str, int], stage: Path, *, had_others: bool) -> bool:
    """Derive the facts of these runs into ``fl_*_acc`` temp tables, a partition of traces
    at a time; returns whether a trace of theirs spans two runs.

    The spans are staged once, as Parquet files in ``stage`` (one folder per partition),
    so that each partition is read alone; a single partition stays a temporary table."""
    d = DUCKDB
    layout = _partitions(counts)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fl_parts (run VARCHAR, first BIGINT, k BIGINT, spans BIGINT)"
    )
    con.executemany(
        "INSERT INTO fl_parts VALUES (?, ?, ?, ?)", [(*p, counts[p[0]]) for p in layout]
    )
    parts = max(first + k for _, first, k in layout)
    # The spans of these runs, read once (one scan of the wide rows), with their partition.
    stage_sql = f"""
        SELECT b.*, p.first + CASE WHEN p.k = 1 THEN 0 ELSE hash(b.trace_id) % p.k END AS part
        FROM ({_detect.base_sql(d, run_filter="1 = 1")}) b JOIN fl_parts p ON p.run = b.run"""
    if parts == 1:  # one partition: it is the whole stage, a temporary table
        con.execute(d.temp_table("fl_base", f"SELECT * EXCLUDE (part) FROM ({stage_sql})"))
        con.execute("CREATE OR REPLACE TEMP VIEW fl_stage AS SELECT * FROM fl_base")
    else:
        con.execute(
            f"""COPY ({stage_sql}) TO {_literal(str(stage))}
                (FORMAT parquet, PARTITION_BY (part), OVERWRITE_OR_IGNORE)"""
        )
        files = _literal(str(stage / "*" / "*.parquet"))
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW fl_stage AS
                SELECT * FROM read_parquet({files}, hive_partitioning = true)"""
        )
    split = False
    if len(counts) > 1:
        split = bool(
            con.execute(
                """SELECT count(*) FROM (SELECT trace_id FROM fl_stage GROUP BY trace_id
                                         HAVING min(run) <> max(run))"""
            ).fetchone()[0]
        )
    if had_others and not split:
        split = bool(
            con.execute(
                """SELECT count(*) FROM faultlens_spans o
                   WHERE o.trace_id IN (SELECT trace_id FROM fl_stage)
                     AND o.run NOT IN (SELECT run FROM fl_parts)"""
            ).fetchone()[0]
        )
    # The two small per-run maps first. Which service a client span reaches needs only the
    # children of client spans: their aggregate, over the run at once (joins spill).
    con.execute(
        d.temp_table(
            "fl_client_parents",
            """SELECT DISTINCT run, trace_id, span_id AS parent_id FROM fl_stage
               WHERE kind = 'client' AND peer IS NOT NULL""",
        )
    )
    children = """(SELECT s.* FROM fl_stage s SEMI JOIN fl_client_parents p
                   ON p.run = s.run AND p.trace_id = s.trace_id AND p.parent_id = s.parent_id) c"""
    con.execute(d.temp_table("fl_child", _detect.child_sql(d, by_run=True, base=children)))
    con.execute("DROP TABLE fl_client_parents")
    con.execute(
        d.temp_table("fl_callee_all", _detect.callee_counts_sql(by_run=True, base="fl_stage"))
    )
    con.execute(d.temp_table("fl_callee", _detect.callee_sql(d, by_run=True)))
    con.execute(
        d.temp_table("fl_service_models", _detect.service_models_sql(by_run=True, base="fl_stage"))
    )
    con.execute(
        d.temp_table(
            "fl_service_models_by_run", "SELECT DISTINCT run, service, model FROM fl_stage"
        )
    )
    # Then per partition: children's aggregate, entry flag, the candidate of each span,
    # requests and exposure. Requests and exposure are only ever joined and counted by
    # trace: a number per (run, trace) stands for its id (one-to-one within a run), so the
    # per-incident joins hash integers.
    offset = 0
    if _exists(con, "faultlens_exposure"):
        offset = int(
            con.execute("SELECT coalesce(max(trace_id), 0) FROM faultlens_exposure").fetchone()[0]
        )
    spans = f"""
        WITH f AS ({_detect.span_facts_sql(by_run=True)})
        {_detect.spans_sql(table="f", by_run=True)}"""
    for part in range(parts):
        files = stage / f"part={part}"
        if parts > 1 and not files.is_dir():  # no trace hashed to it
            continue
        if parts > 1:
            con.execute(
                d.temp_table(
                    "fl_base",
                    f"""SELECT * FROM read_parquet({_literal(str(files / "*.parquet"))},
                                                   hive_partitioning = false)""",
                )
            )
        con.execute(d.temp_table("fl_child", _detect.child_sql(d, by_run=True)))
        con.execute(d.temp_table("fl_part_spans", spans))
        con.execute(
            d.temp_table(
                "fl_trace_numbers",
                f"""SELECT run, trace_id, CAST({offset} + row_number() OVER () AS BIGINT)
                           AS trace_no
                    FROM (SELECT DISTINCT run, trace_id FROM fl_part_spans)""",
            )
        )
        offset += int(con.execute("SELECT count(*) FROM fl_trace_numbers").fetchone()[0])
        _append_temp(con, "fl_spans_acc", "SELECT * FROM fl_part_spans")
        for acc, sql in (
            ("fl_requests_acc", _detect.REQUESTS_SQL),
            ("fl_exposure_acc", _detect.EXPOSURE_SQL),
        ):
            _append_temp(
                con,
                acc,
                f"""SELECT t.* REPLACE (n.trace_no AS trace_id)
                    FROM ({sql.replace("fl_spans", "fl_part_spans")}) t
                    JOIN fl_trace_numbers n ON n.run = t.run AND n.trace_id = t.trace_id""",
            )
    return split


def _append_temp(con: Any, table: str, select: str) -> None:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND temporary", {"t": table}
    ).fetchone()[0]
    if exists:
        con.execute(f"INSERT INTO {table} {select}")
    else:
        con.execute(f"CREATE TEMP TABLE {table} AS {select}")


def _finish(con: Any, runs: list[str], *, split: bool) -> None:
    """Replace the stored facts of ``runs`` by the derived ones (none for a run gone), and
    judge whether a whole-store analysis may read them; in one transaction."""
    d = DUCKDB
    derived = (
        bool(runs)
        and con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'fl_spans_acc' AND temporary"
        ).fetchone()[0]
    )
    con.execute("BEGIN TRANSACTION")
    try:
        if derived:
            for temp in ("fl_spans", "fl_requests", "fl_exposure"):
                con.execute(f"CREATE OR REPLACE TEMP VIEW {temp} AS SELECT * FROM {temp}_acc")
            rows = {
                "fl_spans": "SELECT * FROM fl_spans",
                "fl_requests": "SELECT * FROM fl_requests",
                "fl_exposure": "SELECT * FROM fl_exposure",
                "fl_scope_series": scope_series_sql(d, bucket_ns=SERIES_BUCKET_NS),
                "fl_instances": _detect.INSTANCES_SQL,
            }
        for stored, (temp, order) in _TABLES.items():
            if runs and _exists(con, stored):
                con.execute(f"DELETE FROM {stored} WHERE run IN (SELECT unnest($r))", {"r": runs})
            if not derived:
                continue
            select = f"SELECT * FROM ({rows[temp]}) ORDER BY run, {order}"
            if _exists(con, stored):
                con.execute(f"INSERT INTO {stored} {select}")
            else:
                con.execute(f"CREATE TABLE {stored} AS {select}")
        side = {
            "faultlens_service_models": "SELECT * FROM fl_service_models_by_run",
            "faultlens_facts_callee": "SELECT * FROM fl_callee_all",
            "faultlens_facts_services": "SELECT * FROM fl_service_models",
            _RUNS: "SELECT run, spans FROM fl_parts",
        }
        for stored, select in side.items():
            if _exists(con, stored):
                if runs:
                    con.execute(
                        f"DELETE FROM {stored} WHERE run IN (SELECT unnest($r))", {"r": runs}
                    )
                if derived:
                    con.execute(f"INSERT INTO {stored} {select}")
            elif derived:
                con.execute(f"CREATE TABLE {stored} AS {select}")
        _write_meta(con, whole_store=not split and _maps_agree(con), split=split)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


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


def use_stored_facts(con: Any, d: Dialect, *, run: str | None) -> StoredFacts | None:
    """Point ``fl_spans``, ``fl_requests``, ``fl_exposure``, ``fl_scope_series`` and
    ``fl_service_models`` at the stored facts (of ``run``, or of the whole store) when
    they cover every span; else None.
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
    return "'" + value.replace("'", "''") + "'"
