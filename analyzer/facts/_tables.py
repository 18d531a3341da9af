"""The handle every analysis step takes: the fact tables, ready on one connection.

Holding a :class:`FactTables` means ``fl_spans``, ``fl_requests``, ``fl_exposure`` and
``fl_instances`` (and the two small maps) exist on its connection: the stored facts as
views when they cover every span (``_stored.open_stored_facts``), else derived here from
``otel_traces`` into temporary tables (``_sql.derive_fact_tables``: ClickHouse, or a store
a receiver is still writing). A function that reads them takes the handle, so no table is
ever built as a side effect of a check.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._settings import TimeWindow
from ..store._dialect import BoundConnection, Dialect
from ._sql import derive_fact_tables, scope_timeseries, span_buckets_sql
from ._stored import StoredFacts, open_stored_facts

__all__ = ["FactTables", "run_filter"]


def run_filter(
    d: Dialect, run: str | None, window: TimeWindow | None = None
) -> tuple[str, dict[str, Any]]:
    """A WHERE condition on ``otel_traces``/``otel_logs`` for one ``faultlens.run`` and a
    time window: a bound on ``Timestamp`` itself, so that DuckDB skips row groups by their
    zone maps and ClickHouse prunes partitions (the window's cost follows its spans)."""
    conds, params = [], {}
    if run is not None:
        conds.append(f"coalesce({d.attr('ResourceAttributes', 'faultlens.run')}, '') = ")
        conds[-1] += d.param("run")
        params["run"] = run
    if window is not None and window.since_ns is not None:
        conds.append(f"Timestamp >= {d.ns_literal(window.since_ns)}")
    if window is not None and window.until_ns is not None:
        conds.append(f"Timestamp < {d.ns_literal(window.until_ns)}")
    return " AND ".join(conds) or "1 = 1", params


class FactTables:
    """The fact tables of one store (or one run of it) on ``con``."""

    def __init__(
        self,
        con: BoundConnection,
        d: Dialect,
        *,
        run: str | None,
        stored: StoredFacts | None,
        window: TimeWindow | None = None,
    ) -> None:
        self.con, self.d, self.run, self.stored = con, d, run, stored
        self.window = window or TimeWindow()
        assert stored is None or not self.window or not stored.shared, (
            "the stored facts cover the whole store"
        )
        if stored is None:
            where, params = self.where()
            derive_fact_tables(con, d, run_filter=where, params=params)
        self._series: dict[int, pd.DataFrame] = {}
        self._span_buckets: dict[int, bool] = {}

    def where(self) -> tuple[str, dict[str, Any]]:
        """The condition on ``otel_traces``/``otel_logs`` rows these facts hold."""
        return run_filter(self.d, self.run, self.window)

    def stored_at(self, bucket_ns: int) -> bool:
        """Whether the stored series and span sums are at ``bucket_ns``."""
        return self.stored is not None and self.stored.series_bucket_ns == bucket_ns

    def scope_series(self, bucket_ns: int) -> pd.DataFrame:
        """Every scope's time series (read-only: shared by callers), computed once per bucket."""
        if bucket_ns not in self._series:
            self._series[bucket_ns] = scope_timeseries(
                self.con,
                self.d,
                bucket_ns=bucket_ns,
                stored="fl_scope_series" if self.stored_at(bucket_ns) else None,
            )
        return self._series[bucket_ns]

    def span_buckets(self, bucket_ns: int) -> bool:
        """Make ``fl_span_buckets`` hold the span sums at ``bucket_ns``: the stored ones (every
        cursor reads them) when they are at that bucket (True), else derived here into a
        temporary table of this connection (False)."""
        if bucket_ns not in self._span_buckets:
            stored = self.stored_at(bucket_ns)
            if not stored:
                if self.stored is not None:
                    self.con.execute("DROP VIEW IF EXISTS fl_span_buckets")
                sql = span_buckets_sql(self.d, bucket_ns=bucket_ns)
                self.con.execute(self.d.temp_table("fl_span_buckets", sql))
            self._span_buckets[bucket_ns] = stored
        return self._span_buckets[bucket_ns]

    def cursors(self, n: int) -> list[BoundConnection]:
        """``n`` more connections that read the same stored facts (for parallel analysis);
        none when anything was derived here (temporary tables are per connection)."""
        if (
            n < 2
            or self.stored is None
            or not self.stored.shared
            or False in self._span_buckets.values()
            or not hasattr(self.con.raw, "cursor")
        ):
            return []
        cursors = [BoundConnection(self.con.raw.cursor(), self.d) for _ in range(n)]
        for cur in cursors:
            open_stored_facts(cur, self.d, run=self.run)
        return cursors
