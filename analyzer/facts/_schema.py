"""The stored facts' tables, and the few helpers that write them.

Which ``faultlens_*`` table stands for which ``fl_*`` table an analysis reads, the
temporary tables a derivation leaves behind (dropped however it ends), and the one way
rows are appended (``append``). The facts' own story is in ``_stored.py``.
"""

from __future__ import annotations

from typing import Any

from .._settings import DetectionSettings
from ..store._dialect import DUCKDB

__all__ = [
    "META_TABLE",
    "RUNS_TABLE",
    "RUN_EXPR",
    "SERIES_BUCKET_NS",
    "SIDE_TABLES",
    "STORED_TABLES",
    "TEMP_TABLES",
    "append",
    "literal",
    "table_exists",
    "ts_within",
]

SERIES_BUCKET_NS = DetectionSettings().bucket_ns
META_TABLE = "faultlens_facts_meta"
RUNS_TABLE = "faultlens_facts_runs"
STORED_TABLES = {  # stored table: (temp table it replaces, order within a run)
    "faultlens_spans": ("fl_spans", "ts"),
    "faultlens_requests": ("fl_requests", "ts"),
    "faultlens_exposure": ("fl_exposure", "trace_id"),
    "faultlens_scope_series": ("fl_scope_series", "scope, key, bucket_start"),
    "faultlens_span_buckets": ("fl_span_buckets", "bucket_start"),
    "faultlens_instances": ("fl_instances", "service, instance"),
}
SIDE_TABLES = ("faultlens_service_models", "faultlens_facts_callee", "faultlens_facts_services")
TEMP_TABLES = (  # dropped when the step ends, however it ends
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
RUN_EXPR = f"coalesce({DUCKDB.attr('ResourceAttributes', 'faultlens.run')}, '')"


def table_exists(con: Any, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND NOT temporary",
            {"t": table},
        ).fetchone()[0]
    )


def append(con: Any, table: str, select: str, *, temp: bool = False) -> None:
    """Insert the rows of ``select`` into ``table``, creating it from them when new."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND temporary = $temp",
        {"t": table, "temp": temp},
    ).fetchone()[0]
    if exists:
        con.execute(f"INSERT INTO {table} {select}")
    else:
        con.execute(f"CREATE {'TEMP ' if temp else ''}TABLE {table} AS {select}")


def literal(value: str) -> str:
    """A run as a DuckDB literal: a view cannot take a bound parameter."""
    return DUCKDB.literal(value)


def ts_within(column: str, spans: list[tuple[int, int]] | None) -> str:
    """`` AND`` a condition: ``column`` (ns) inside one of ``spans`` ([start, end) pairs), a
    bound on the column itself that zone maps can use; '' for None (no bound)."""
    if spans is None:
        return ""
    terms = [f"({column} >= {int(a)} AND {column} < {int(b)})" for a, b in spans]
    return f" AND ({' OR '.join(terms) or 'false'})"
