"""Browsing the store as a trace viewer does: spans, one trace's waterfall, log records.

Each function takes the fact tables (spans) or the connection (logs) and bound filters;
values are parameters, never spliced into the SQL.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..facts._tables import FactTables, run_filter
from ..store._dialect import BoundConnection, Dialect

__all__ = ["find_logs", "find_spans", "trace_waterfall"]


def _conditions(
    filters: tuple[tuple[str, Any, str], ...], conds: list[str], params: dict[str, Any]
) -> None:
    for key, value, cond in filters:
        if value is not None:
            conds.append(cond)
            params[key] = value


def find_spans(
    tables: FactTables,
    *,
    model: str | None,
    endpoint: str | None,
    status: str | None,
    start_ns: int | None,
    end_ns: int | None,
    min_duration_ms: float | None,
    limit: int,
) -> pd.DataFrame:
    """Spans, newest first: [ts_ns, trace_id, span_id, parent_id, service, model, version,
    kind, name, endpoint, duration_ms, error, instance]."""
    p = tables.d.param
    conds = ["1 = 1"]
    params: dict[str, Any] = {"limit": int(limit)}
    min_ns = None if min_duration_ms is None else int(min_duration_ms * 1e6)
    _conditions(
        (
            ("model", model, f"model = {p('model')}"),
            ("endpoint", endpoint, f"route = {p('endpoint')}"),
            ("start_ns", start_ns, f"ts >= {p('start_ns', 'Int64')}"),
            ("end_ns", end_ns, f"ts < {p('end_ns', 'Int64')}"),
            ("min_ns", min_ns, f"dur >= {p('min_ns', 'Int64')}"),
        ),
        conds,
        params,
    )
    if status is not None:
        conds.append(
            "is_err = 1" if status.lower() in ("error", "status_code_error") else "is_err = 0"
        )
    return tables.con.execute(
        f"""SELECT ts AS ts_ns, trace_id, span_id, parent_id, service, model, version, kind,
                   name, route AS endpoint, dur / 1e6 AS duration_ms, is_err = 1 AS error,
                   instance
            FROM fl_spans WHERE {" AND ".join(conds)}
            ORDER BY ts DESC LIMIT {p("limit", "UInt64")}""",
        params,
    ).df()


def trace_waterfall(tables: FactTables, trace_id: str) -> pd.DataFrame:
    """All spans of one trace in start order, with depth and start offset (ms)."""
    f = tables.con.execute(
        f"""SELECT ts AS ts_ns, span_id, parent_id, service, model, version, kind, name,
                   dur / 1e6 AS duration_ms, is_err = 1 AS error
            FROM fl_spans WHERE trace_id = {tables.d.param("trace_id")} ORDER BY ts""",
        {"trace_id": trace_id.lower()},
    ).df()
    if f.empty:
        return f.assign(depth=[], offset_ms=[])
    parent = dict(zip(f.span_id, f.parent_id, strict=True))

    def depth(s: str) -> int:
        n = 0
        while parent.get(s) in parent and n < 64:
            s, n = parent[s], n + 1
        return n

    f["depth"] = f.span_id.map(depth)
    f["offset_ms"] = (f.ts_ns - f.ts_ns.min()) / 1e6
    return f


def find_logs(
    con: BoundConnection,
    d: Dialect,
    *,
    run: str | None,
    trace_id: str | None,
    model: str | None,
    min_severity: int | None,
    start_ns: int | None,
    end_ns: int | None,
    service: str | None,
    limit: int,
) -> pd.DataFrame:
    """Log records, newest first: [ts_ns, service, model, version, severity, severity_number,
    body, trace_id, span_id]."""
    p = d.param
    where, params = run_filter(d, run)
    conds = [where]
    params = {**params, "limit": int(limit)}
    ts = d.epoch_ns("Timestamp")
    _conditions(
        (
            ("trace_id", trace_id, f"TraceId = {p('trace_id')}"),
            ("model", model, f"ModelName = {p('model')}"),
            ("service", service, f"ServiceName = {p('service')}"),
            ("min_severity", min_severity, f"SeverityNumber >= {p('min_severity', 'Int64')}"),
            ("start_ns", start_ns, f"{ts} >= {p('start_ns', 'Int64')}"),
            ("end_ns", end_ns, f"{ts} < {p('end_ns', 'Int64')}"),
        ),
        conds,
        params,
    )
    return con.execute(
        f"""SELECT {ts} AS ts_ns, ServiceName AS service, nullif(ModelName, '') AS model,
                   nullif(ModelVersion, '') AS version, SeverityText AS severity,
                   SeverityNumber AS severity_number, Body AS body, TraceId AS trace_id,
                   SpanId AS span_id
            FROM otel_logs WHERE {" AND ".join(conds)}
            ORDER BY Timestamp DESC LIMIT {p("limit", "UInt64")}""",
        params,
    ).df()
