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
``fl_span_buckets``), temporary tables of one connection, built by the same SQL as
``derive_fact_tables`` over the window (``by_run=False``): the same rows, so the incidents
are those of a full analysis of the window. ``fl_lv_*`` tables hold the rest: the span
facts before the maps (``fl_lv_facts``) and the maps' counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
_DIRTY = "trace_id IN (SELECT trace_id FROM fl_lv_dirty)"
_KINDS = "SELECT service, model, kind, CAST(count(*) AS BIGINT) AS n FROM {t} GROUP BY ALL"
_MODELS = """SELECT service, count(DISTINCT model) AS n_models, min(model) AS only_model,
                    min(CASE WHEN kind = 'client' THEN 1 ELSE 0 END) AS only_client
             FROM fl_lv_kinds GROUP BY service"""  # service_models_sql, from the counts
_TRACE_TABLES = ("fl_lv_facts", "fl_spans", "fl_exposure", "fl_requests")
_COMPACT_MIN = 100_000  # dead rows below this are left (a rewrite would cost more)


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
    connection of its own: the tables are temporary tables of it)."""

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
        return int(self._x(sql).fetchone()[0] or 0)

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
        self.rows = self.dead = 0
        x(_temp("fl_base", _sql.base_sql(_D, run_filter="1 = 0")))
        x(_temp("fl_child", _sql.child_sql(_D, by_run=False)))
        x(_temp("fl_lv_facts", _sql.span_facts_sql(by_run=False)))
        x(_temp("fl_lv_callee_counts", _sql.callee_counts_sql(by_run=False)))
        x(_temp("fl_lv_kinds", _KINDS.format(t="fl_base")))
        x(_temp("fl_callee", _sql.callee_sql(_D, by_run=False, counts="fl_lv_callee_counts")))
        x(_temp("fl_service_models", _MODELS))
        x(_temp("fl_spans", _sql.spans_sql(table="fl_lv_facts", by_run=False)))
        x(_temp("fl_exposure", _sql.exposure_sql()))
        x(_temp("fl_requests", _sql.requests_sql(_D, exposure="fl_exposure")))
        self._buckets(only=None)

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
            dead = self.dead
            if done is not None:
                u = done[0]
                dead += u.recomputed_spans - u.new_spans + u.dropped_spans  # rows deleted
                # A deleted row stays in its row group until the table is written again: once
                # the dead outnumber the living, the tables are rewritten, in time order.
                if dead > max(u.window_spans, _COMPACT_MIN):
                    for table in _TRACE_TABLES:
                        order = "trace_id" if table == "fl_exposure" else "ts"
                        self._x(_temp(table, f"SELECT * FROM {table} ORDER BY {order}"))
                    dead = 0
            self._x("COMMIT")
        except BaseException:
            self._x("ROLLBACK")
            self._reset()
            raise
        if done is None:
            return None
        update, self.now, self.last_rowid, self.run_lo = done
        self.rows, self.dead = update.window_spans, dead
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
        x(_temp("fl_lv_old", f"SELECT * FROM fl_lv_facts WHERE {_DIRTY}"))
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
        for table in _TRACE_TABLES if not changed else ("fl_lv_facts",):
            x(f"DELETE FROM {table} WHERE {_DIRTY}")
        x("INSERT INTO fl_lv_facts SELECT * FROM fl_lv_fresh")
        if changed:
            x(_temp("fl_spans", _sql.spans_sql(table="fl_lv_facts", by_run=False)))
            x(_temp("fl_exposure", _sql.exposure_sql()))
            x(_temp("fl_requests", _sql.requests_sql(_D, exposure="fl_exposure")))
        else:
            x(_temp("fl_lv_spans", _sql.spans_sql(table="fl_lv_fresh", by_run=False)))
            x(_temp("fl_lv_exposure", _sql.exposure_sql(spans="fl_lv_spans")))
            x("INSERT INTO fl_spans SELECT * FROM fl_lv_spans")
            x("INSERT INTO fl_exposure SELECT * FROM fl_lv_exposure")
            requests = _sql.requests_sql(_D, exposure="fl_lv_exposure", spans="fl_lv_spans")
            x(f"INSERT INTO fl_requests {requests}")
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
