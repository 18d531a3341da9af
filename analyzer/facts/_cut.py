"""A big run cut by time into parts, and the in-order append across parts.

A run of more than ``TUNING.facts_part_spans`` spans is derived a part at a time; each
trace belongs to the part its first span starts in, and the few rows that start after
the next part's first row are carried over to it, so the stored tables stay in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._schema import RUN_EXPR, append, literal

__all__ = ["Cut", "append_in_order", "cut_run"]


@dataclass(frozen=True)
class Cut:
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
        terms = [f"run = {literal(run)}"]
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


def cut_run(con: Any, run: str, k: int) -> Cut:
    """Cut ``run`` into k parts by span start time (``fl_straddle``: the traces that cross
    a bound, by trace id hash, with the part they start in)."""
    where = f"{RUN_EXPR} = {literal(run)}"
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
    return Cut(bounds, ends)


def append_in_order(
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
        append(con, table, f"SELECT * FROM {both} ORDER BY ts")
        con.execute(f"DROP TABLE IF EXISTS {carry}")
        return
    append(con, table, f"SELECT * FROM {both} WHERE ts < {until} ORDER BY ts")
    rest = f"SELECT * FROM {later or rows} WHERE ts >= {until}"
    if carried:
        rest = f"SELECT * FROM {carry} WHERE ts >= {until} UNION ALL {rest}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {carry} AS {rest}")
