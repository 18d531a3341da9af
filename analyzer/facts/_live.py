"""Live facts: the fact tables of a moving window, kept current per committed batch.

`faultlens serve` detects on the last ``window_ns`` of committed data (``serve._live``).
Deriving that window's facts from ``otel_traces`` every cycle costs what the window holds
(issue 17: 4 s of CPU a cycle for a 600 s window of 1,000 spans/s); here a cycle's work
follows what changed since the last one instead:

- the rows committed since (``rowid`` above the last one seen: the store only grows, one
  writer appends, so a new row has a higher rowid) that fall inside the window;
- the traces they belong to, and the traces with rows that left the window's lower edge:
  the *dirty* traces. A trace's spans arrive in several batches and from several processes,
  and the facts of a span need its whole trace (its children, its parent), so a dirty trace
  is derived again whole: its rows already held here plus its new rows, never ``otel_traces``
  again;
- the two maps every span's candidate reads (which service a client span reached; the
  models each service runs) are kept as counts that add up over traces: a dirty trace's old
  contribution is taken out and its new one added. When a map moves, every span's candidate
  is computed again (from the span facts held here);
- the per-scope series, the span sums and the per-instance rows are computed again for the
  buckets the dirty traces' rows (old and new) fall in, and for the buckets where a run's
  first request moved (the ``early`` flag of ``span_buckets_sql``).

The tables are those an analysis reads (``fl_spans``, ``fl_requests``, ``fl_exposure``,
``fl_instances``, ``fl_callee``, ``fl_service_models``, ``fl_scope_series``,
``fl_span_buckets``), on one connection, built by the same SQL as ``derive_fact_tables``
over the window (``by_run=False``): the same rows, so the incidents are those of a full
analysis of the window. ``fl_lv_*`` tables hold the rest: the span facts before the maps
(``fl_lv_facts``) and the maps' counts.

The four tables of a row per span or trace (``fl_lv_facts``, ``fl_spans``,
``fl_exposure``, ``fl_requests``) are Arrow tables held here and registered on the
connection, not DuckDB temporary tables: DuckDB checkpoints its temporary storage once
16 MB of changes have accumulated (``checkpoint_threshold``, global: the store's own WAL
depends on it), and that rewrote the window's tables, about a second of CPU at 600k spans,
every cycle or two. Replacing a dirty trace's rows in an Arrow table costs a filter and a
concatenation. The small tables (series, span sums, maps) stay DuckDB temporary tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..store._dialect import DUCKDB
from . import _sql
from ._schema import ts_within
from ._sql import scope_series_sql, span_buckets_sql
from ._stored import StoredFacts

__all__ = ["LiveFacts", "LiveUpdate"]

_D = DUCKDB
_BASE = (
    "run, trace_id, span_id, parent_id, ts, end_ts, dur, service, model, version, instance, "
    "kind, is_err, route, name, peer, layout"
)  # base_sql's columns, in its order
_KINDS = "SELECT service, model, kind, CAST(count(*) AS BIGINT) AS n FROM {t} GROUP BY ALL"
_MODELS = """SELECT service, count(DISTINCT model) AS n_models, min(model) AS only_model,
                    min(CASE WHEN kind = 'client' THEN 1 ELSE 0 END) AS only_client
             FROM fl_lv_kinds GROUP BY service"""  # service_models_sql, from the counts
_MAX_CHUNKS = 64  # an Arrow table of more pieces than this is cut again into even pieces
_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class LiveUpdate:
    """What one update read and computed again."""

    now: int  # the newest committed span (ns): the window is [now - window, now + 1)
    new_spans: int  # rows read from otel_traces: committed since the last update, in the window
    dropped_spans: int  # rows that left the window at its lower edge
    dirty_traces: int  # traces derived again
    recomputed_spans: int  # span-fact rows derived again (the dirty traces' rows)
    dirty_buckets: int  # buckets whose series, span sums and instance rows were computed again
    maps_changed: bool  # a map moved: every span's candidate and every bucket again
    window_spans: int  # span-fact rows held: the window's spans


def _without(
    table: pa.Table, *, lo: int, first: int | None, last: int | None, traces: pa.ChunkedArray
) -> pa.Table:
    """``table``'s rows from ``lo`` on, but for those of ``traces`` (all between ``first``
    and ``last``): the trace ids are looked up only in that stretch of time (a hash lookup
    per row of the window would cost more than the rest of the update), and only the pieces
    of the table that lose rows are copied."""
    ts = table.column("ts")
    keep = pc.greater_equal(ts, lo)
    if first is not None and len(traces):
        near = pc.and_(keep, pc.and_(pc.greater_equal(ts, first), pc.less_equal(ts, last)))
        rows = pc.indices_nonzero(near)
        hit = pc.is_in(pc.take(table.column("trace_id"), rows), value_set=traces)
        mask = keep.to_numpy(zero_copy_only=False)
        mask[pc.filter(rows, hit).to_numpy(zero_copy_only=False)] = False
        keep = pa.array(mask)
    batches, at = [], 0
    for batch in table.to_batches():
        part = keep.slice(at, batch.num_rows)
        at += batch.num_rows
        kept = pc.sum(part).as_py() or 0
        if kept == batch.num_rows:
            batches.append(batch)  # untouched: not copied
        elif kept:
            batches.append(batch.filter(part))
    return pa.Table.from_batches(batches, schema=table.schema)


def _temp(name: str, sql: str) -> str:
    return _D.temp_table(name, sql)


def _spans_of(buckets: list[int], step: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as [start, end) spans of time, neighbours joined."""
    spans: list[tuple[int, int]] = []
    for b in buckets:
        if spans and spans[-1][1] == b:
            spans[-1] = (spans[-1][0], b + step)
        else:
            spans.append((b, b + step))
    return spans


class LiveFacts:
    """The fact tables of the window ending at the newest committed span, on ``con`` (a
    connection of its own: its temporary tables, and the Arrow tables registered on it)."""

    def __init__(self, con: Any, *, window_ns: int, bucket_ns: int) -> None:
        self.con = con
        self.window_ns = int(window_ns)
        self.bucket_ns = int(bucket_ns)
        self._reset()

    @property
    def stored(self) -> StoredFacts:
        """What an analysis of these tables is told (``FactTables(stored=...)``)."""
        return StoredFacts(series_bucket_ns=self.bucket_ns, shared=False)

    def _x(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.con.execute(sql, params)

    def _n(self, sql: str) -> int:
        return int(self._x(sql).fetchall()[0][0] or 0)

    def _instances_sql(self, only: list[tuple[int, int]] | None) -> str:
        b = _D.bucket("ts", self.bucket_ns)
        keep = f" WHERE 1 = 1{ts_within('ts', only)}"
        return f"""SELECT run, service, instance, model, version, {b} AS bucket_start,
                          max(layout) AS layout, min(ts) AS first_ts, max(ts) AS last_ts,
                          max(end_ts) AS last_end_ts, CAST(count(*) AS BIGINT) AS n_spans
                   FROM fl_spans{keep} GROUP BY run, service, instance, model, version, {b}"""

    def _reset(self) -> None:
        """Empty tables of the right shapes, built by the same SQL as the rows to come."""
        x = self._x
        self.last_rowid = -1
        self.now: int | None = None
        self.run_lo: dict[str, int] = {}
        self.rows = 0
        self.arrow: dict[str, pa.Table] = {}
        x(_temp("fl_base", _sql.base_sql(_D, run_filter="1 = 0")))
        x(_temp("fl_child", _sql.child_sql(_D, by_run=False)))
        self._put("fl_lv_facts", self._arrow(_sql.span_facts_sql(by_run=False)))
        x(_temp("fl_lv_callee_counts", _sql.callee_counts_sql(by_run=False)))
        x(_temp("fl_lv_kinds", _KINDS.format(t="fl_base")))
        x(_temp("fl_callee", _sql.callee_sql(_D, by_run=False, counts="fl_lv_callee_counts")))
        x(_temp("fl_service_models", _MODELS))
        self._candidates()
        self._buckets(only=None)

    def _arrow(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def _put(self, name: str, table: pa.Table) -> None:
        """Hold ``table`` as ``name`` (registered on the connection: SQL reads it by name)."""
        pieces = table.column(0).chunks if table.num_columns else []
        if len(pieces) > _MAX_CHUNKS or any(len(c) > 2 * _CHUNK_ROWS for c in pieces):
            # Pieces of about _CHUNK_ROWS rows: few, and a change copies only its own.
            batches = table.combine_chunks().to_batches(max_chunksize=_CHUNK_ROWS)
            table = pa.Table.from_batches(batches, schema=table.schema)
        self.arrow[name] = table
        self.con.register(name, table)

    def _candidates(self) -> None:
        """Every span's candidate, exposure and request, from the span facts held."""
        self._put("fl_spans", self._arrow(_sql.spans_sql(table="fl_lv_facts", by_run=False)))
        self._put("fl_exposure", self._arrow(_sql.exposure_sql()))
        self._put("fl_requests", self._arrow(_sql.requests_sql(_D, exposure="fl_exposure")))

    def _buckets(self, *, only: list[tuple[int, int]] | None) -> None:
        """The per-bucket tables: all of them again, or only the buckets inside ``only``'s
        [start, end) spans of time."""
        x = self._x
        bns = self.bucket_ns
        per_bucket = {
            "fl_scope_series": scope_series_sql(_D, bucket_ns=bns, only=only),
            "fl_span_buckets": span_buckets_sql(_D, bucket_ns=bns, only=only),
            "fl_lv_instances": self._instances_sql(only),
        }
        for table, sql in per_bucket.items():
            if only is None:
                x(_temp(table, sql))
            else:
                x(f"DELETE FROM {table} WHERE 1 = 1{ts_within('bucket_start', only)}")
                x(f"INSERT INTO {table} {sql}")
        x(
            _temp(
                "fl_instances",
                """SELECT run, service, instance, model, version, max(layout) AS layout,
                          min(first_ts) AS first_ts, max(last_ts) AS last_ts,
                          max(last_end_ts) AS last_end_ts, CAST(sum(n_spans) AS BIGINT) AS n_spans
                   FROM fl_lv_instances GROUP BY run, service, instance, model, version""",
            )
        )

    def update(self) -> LiveUpdate | None:
        """Bring the tables to the window ending at the newest committed span, in one
        snapshot of the store; None while the store holds no span. Any failure leaves empty
        tables (the next update derives the window whole) and raises."""
        self._x("BEGIN TRANSACTION")
        try:
            done = self._update()
            self._x("COMMIT")
        except BaseException:
            self._x("ROLLBACK")
            self._reset()
            raise
        if done is None:
            return None
        update, self.now, self.last_rowid, self.run_lo = done
        self.rows = update.window_spans
        return update

    def _update(self) -> tuple[LiveUpdate, int, int, dict[str, int]] | None:
        x, n = self._x, self._n
        low = self.now or 0
        row = x(
            f"""SELECT epoch_ns(max(Timestamp)), (SELECT max(rowid) FROM otel_traces)
                FROM otel_traces WHERE Timestamp >= {_D.ns_literal(low)}"""
        ).fetchone()
        if row is None or row[0] is None:
            return None
        now, top = int(row[0]), int(row[1])
        lo, hi = now - self.window_ns, now + 1
        # 1. The rows committed since the last update that fall inside the window.
        where = (
            f"rowid > {self.last_rowid} AND rowid <= {top} "
            f"AND Timestamp >= {_D.ns_literal(lo)} AND Timestamp < {_D.ns_literal(hi)}"
        )
        x(_temp("fl_lv_new", _sql.base_sql(_D, run_filter=where)))
        # 2. The dirty traces: those rows' traces and the traces leaving at the lower edge;
        # their rows held so far, and their rows now (the held ones still inside, the new).
        x(
            _temp(
                "fl_lv_dirty",
                f"""SELECT trace_id FROM fl_lv_new
                    UNION SELECT trace_id FROM fl_lv_facts WHERE ts < {lo}""",
            )
        )
        # Looked up in Arrow, on the trace id column alone (DuckDB would convert every
        # column of the window's rows before joining).
        dirty = self._arrow("SELECT trace_id FROM fl_lv_dirty").column(0)
        facts = self.arrow["fl_lv_facts"]
        self.con.register("fl_lv_old", facts.filter(pc.is_in(facts.column("trace_id"), dirty)))
        x(
            _temp(
                "fl_base",
                f"SELECT {_BASE} FROM fl_lv_old WHERE ts >= {lo} UNION ALL SELECT * FROM fl_lv_new",
            )
        )
        x(_temp("fl_child", _sql.child_sql(_D, by_run=False)))
        x(_temp("fl_lv_old_child", _sql.child_sql(_D, by_run=False, base="fl_lv_old")))
        # 3. The maps' counts: the dirty traces' old contribution out, their new one in.
        old = _sql.callee_counts_sql(by_run=False, base="fl_lv_old", child="fl_lv_old_child")
        x(
            f"""CREATE OR REPLACE TEMP TABLE fl_lv_callee_counts AS
                SELECT caller, peer, callee, CAST(sum(n) AS BIGINT) AS n FROM (
                    SELECT * FROM fl_lv_callee_counts
                    UNION ALL SELECT caller, peer, callee, -n FROM ({old})
                    UNION ALL SELECT * FROM ({_sql.callee_counts_sql(by_run=False)}))
                GROUP BY caller, peer, callee HAVING sum(n) <> 0"""
        )
        x(
            f"""CREATE OR REPLACE TEMP TABLE fl_lv_kinds AS
                SELECT service, model, kind, CAST(sum(n) AS BIGINT) AS n FROM (
                    SELECT * FROM fl_lv_kinds
                    UNION ALL SELECT service, model, kind, -n FROM ({_KINDS.format(t="fl_lv_old")})
                    UNION ALL {_KINDS.format(t="fl_base")})
                GROUP BY service, model, kind HAVING sum(n) <> 0"""
        )
        x(_temp("fl_lv_callee", _sql.callee_sql(_D, by_run=False, counts="fl_lv_callee_counts")))
        x(_temp("fl_lv_models", _MODELS))
        changed = self._differ("fl_callee", "fl_lv_callee") or self._differ(
            "fl_service_models", "fl_lv_models"
        )
        if changed:
            x(_temp("fl_callee", "SELECT * FROM fl_lv_callee"))
            x(_temp("fl_service_models", "SELECT * FROM fl_lv_models"))
        # 4. The dirty traces' span facts; their candidates, exposure and requests (every
        # span's when a map moved).
        x(_temp("fl_lv_fresh", _sql.span_facts_sql(by_run=False)))
        # The held rows to replace: all rows before the window's start (only dirty traces
        # have any), and the dirty traces' rows inside it, which lie between these times.
        held = self._arrow(f"SELECT DISTINCT trace_id FROM fl_lv_old WHERE ts >= {lo}").column(0)
        ((first, last),) = x(f"SELECT min(ts), max(ts) FROM fl_lv_old WHERE ts >= {lo}").fetchall()
        traces = self._arrow("SELECT DISTINCT trace_id FROM fl_lv_old").column(0)

        def swap(name: str, fresh: str) -> None:
            """``name``'s rows of the dirty traces replaced by ``fresh``'s rows."""
            table = self.arrow[name]
            if "ts" in table.column_names:
                kept = _without(table, lo=lo, first=first, last=last, traces=held)
            else:  # exposure: a row per trace and item
                kept = table.filter(pc.invert(pc.is_in(table.column("trace_id"), traces)))
            self._put(name, pa.concat_tables([kept, self._arrow(f"SELECT * FROM {fresh}")]))

        swap("fl_lv_facts", "fl_lv_fresh")
        if changed:
            self._candidates()
        else:
            x(_temp("fl_lv_spans", _sql.spans_sql(table="fl_lv_fresh", by_run=False)))
            x(_temp("fl_lv_exposure", _sql.exposure_sql(spans="fl_lv_spans")))
            requests = _sql.requests_sql(_D, exposure="fl_lv_exposure", spans="fl_lv_spans")
            x(_temp("fl_lv_requests", requests))
            for name, fresh in {
                "fl_spans": "fl_lv_spans",
                "fl_exposure": "fl_lv_exposure",
                "fl_requests": "fl_lv_requests",
            }.items():
                swap(name, fresh)
        # 5. The buckets those rows fall in, and where a run's first request moved.
        run_lo = {
            str(r): int(t)
            for r, t in x("SELECT run, min(ts) FROM fl_requests GROUP BY run").fetchall()
        }
        step = self.bucket_ns
        b = _D.bucket("ts", step)
        buckets = {
            int(r[0])
            for r in x(
                f"""SELECT DISTINCT {b} FROM (
                        SELECT ts FROM fl_lv_old UNION ALL SELECT ts FROM fl_base)"""
            ).fetchall()
        }
        moved = {r for r in set(run_lo) | set(self.run_lo) if run_lo.get(r) != self.run_lo.get(r)}
        whole = changed or any(r not in run_lo or r not in self.run_lo for r in moved)
        for r in moved if not whole else ():
            first, last = sorted((run_lo[r], self.run_lo[r]))
            buckets.update(range(first // step * step, last // step * step + step, step))
        self._buckets(only=None if whole else _spans_of(sorted(buckets), step))
        new, dropped = (
            n("SELECT count(*) FROM fl_lv_new"),
            n(f"SELECT count(*) FROM fl_lv_old WHERE ts < {lo}"),
        )
        update = LiveUpdate(
            now=now,
            new_spans=new,
            dropped_spans=dropped,
            dirty_traces=n("SELECT count(*) FROM fl_lv_dirty"),
            recomputed_spans=n("SELECT count(*) FROM fl_lv_fresh"),
            dirty_buckets=-1 if whole else len(buckets),
            maps_changed=changed,
            window_spans=self.rows + new - dropped,
        )
        return update, now, top, run_lo

    def _differ(self, a: str, b: str) -> bool:
        return bool(
            self._n(
                f"""SELECT count(*) FROM ((SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})
                    UNION ALL (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}))"""
            )
        )
