"""The DuckDB store: connect (creating the schema), and the one transactional write.

Every batch (a chunk of a file, or a group commit of the receiver) is written by
:func:`write_batch` in ONE transaction: its new rows, its quarantined records and
its ledger rows. A process killed mid-ingest therefore leaves whole batches or
nothing, and the ledger always reconciles with the tables.

Dedupe: spans on (TraceId, SpanId), log records on RecordId, metric data points on
PointId. The anti-join only scans stored rows inside the batch's own time range
(row-group zone maps skip the rest), which is exact for re-ingested data: a span
seen again has the same start time. An empty range skips the join entirely, so a
fresh load pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..decode._columns import Reject
from ..decode._metrics import METRIC_TABLES
from ._schema import DDL

__all__ = ["DEFAULT_DB", "BatchCounts", "StoreError", "connect", "write_batch"]

DEFAULT_DB = Path(".faultlens/faultlens.duckdb")
_KEYS = {
    "otel_traces": ("TraceId", "SpanId"),
    "otel_logs": ("RecordId",),
    **{table: ("PointId",) for table in METRIC_TABLES.values()},
}
# The column whose range bounds the dedupe scan (the metrics tables have no Timestamp).
_TIME = {table: "TimeUnix" for table in METRIC_TABLES.values()}


class StoreError(ValueError):
    """A store that cannot be opened as asked (a user error, not a bug)."""


def connect(db: str | Path = DEFAULT_DB, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB store; when writable, create its folder and tables first.

    Example: ``con = connect(".faultlens/faultlens.duckdb", read_only=True)``
    """
    text = str(db)
    if text.startswith(("chdb:", "clickhouse://")):
        raise StoreError(
            f"{text}: faultlens writes DuckDB files; on ClickHouse the OpenTelemetry "
            "Collector's exporter writes the tables"
        )
    if text != ":memory:":
        path = Path(text)
        if read_only and not path.exists():
            raise StoreError(f"{path}: no such database (run `faultlens ingest` first)")
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(text, read_only=read_only)
    except duckdb.IOException as exc:
        raise StoreError(f"{text}: cannot open ({str(exc).splitlines()[0]})") from None
    if not read_only:
        for ddl in DDL:
            con.execute(ddl)
    return con


@dataclass(frozen=True)
class BatchCounts:
    """What one committed batch did, per signal."""

    read: dict[str, int]
    stored: dict[str, int]
    duplicates: dict[str, int]
    quarantined: dict[str, int]


_REPEATED_MAPS = ("SpanAttributes", "LogAttributes")
_ARROW_DISTINCT = 8192  # rows: a batch up to this size counts its repeats with Arrow


def _distinct_maps(maps: pa.MapArray) -> pa.DictionaryArray | None:
    """The maps as a dictionary of the distinct ones (exact: equal key and value codes in
    the same order), or None when they are not repetitive or hold nulls."""
    if maps.null_count or len(maps) == 0:
        return None
    offsets = maps.offsets.to_numpy()
    start, count = int(offsets[0]), int(offsets[-1] - offsets[0])
    pairs = np.empty((count, 2), np.int32)
    for i, part in enumerate((maps.keys, maps.items)):
        codes = pc.dictionary_encode(part.slice(start, count), null_encoding="encode").indices
        pairs[:, i] = codes.to_numpy(zero_copy_only=False)
    offsets = ((offsets - start) * 8).astype(np.int32)
    rows = pa.Array.from_buffers(
        pa.binary(), len(maps), [None, pa.py_buffer(offsets), pa.py_buffer(pairs)]
    )
    encoded = pc.dictionary_encode(rows)
    distinct = len(encoded.dictionary)
    if distinct * 2 > len(maps):
        return None
    codes = encoded.indices.to_numpy()
    first = np.empty(distinct, np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return pa.DictionaryArray.from_arrays(encoded.indices, maps.take(pa.array(first)))


def _for_duckdb(rows: pa.Table) -> pa.Table:
    """Attribute maps that repeat (they mostly do: a handful of keys with a few values each)
    as dictionaries: DuckDB checks each MAP it imports for duplicate keys, at a cost per
    entry (~40% of the insert); a dictionary is checked once per distinct map. The stored
    values are the same."""
    for name in _REPEATED_MAPS:
        if name not in rows.column_names or not pa.types.is_map(rows.schema.field(name).type):
            continue
        column = rows[name]
        encoded = [_distinct_maps(chunk) for chunk in column.chunks]
        if encoded and all(e is not None for e in encoded):
            index = rows.column_names.index(name)
            rows = rows.set_column(index, name, pa.chunked_array(encoded))
    return rows


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table | None) -> tuple[int, int]:
    """Insert the rows not already stored; (stored, duplicates)."""
    if rows is None or rows.num_rows == 0:
        return 0, 0
    rows = _for_duckdb(rows)
    keys = _KEYS[table]
    key_list = ", ".join(keys)
    time = _TIME.get(table, "Timestamp")
    # DuckDB reads the Arrow batch through its replacement scan, which finds this local
    # variable by the name in the SQL (so `con` must be a DuckDB connection, not a proxy):
    # registering and unregistering a view instead costs about a millisecond per batch,
    # and a receiver's whole write of 512 spans costs about fifteen.
    _faultlens_batch = rows  # noqa: F841 (read by name in the SQL below)
    # The batch's own repeats: a receiver's few hundred rows are counted by Arrow's hash
    # kernel (a tenth of a DuckDB statement's fixed cost), a file's big batches by DuckDB
    # (three times faster per row). Hex ids hold no '/', so the joined key is one-to-one.
    if rows.num_rows <= _ARROW_DISTINCT:
        key = pc.binary_join_element_wise(*(rows[k] for k in keys), "/")
        distinct = pc.count_distinct(key, mode="all").as_py()
    else:
        distinct = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {key_list} FROM _faultlens_batch)"
        ).fetchone()[0]
    source = "_faultlens_batch"
    if distinct != rows.num_rows:
        source = (
            f"(SELECT * FROM _faultlens_batch QUALIFY row_number() OVER "
            f"(PARTITION BY {key_list} ORDER BY {time}) = 1)"
        )
    bounds = pc.min_max(rows[time].cast(pa.int64()))
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    window = f"{time} BETWEEN make_timestamp_ns(?) AND make_timestamp_ns(?)"
    overlap = con.execute(f"SELECT count(*) FROM {table} WHERE {window}", [lo, hi]).fetchone()[0]
    if overlap == 0:
        stored = con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {source}")
    else:
        match = " AND ".join(f"t.{k} = b.{k}" for k in keys)
        stored = con.execute(
            f"INSERT INTO {table} BY NAME SELECT * FROM {source} b WHERE NOT EXISTS "
            f"(SELECT 1 FROM {table} t WHERE t.{window} AND {match})",
            [lo, hi],
        )
    count = stored.fetchone()[0]
    return count, rows.num_rows - count


def _quarantine(
    con: duckdb.DuckDBPyConnection, source: str, rejects: list[tuple[str, Reject]], now: datetime
) -> None:
    """Store rejects; one already quarantined (same source, position, reason) is not repeated."""
    if not rejects:
        return
    table = pa.table(
        {
            "Source": [source] * len(rejects),
            "Position": [r.position for _, r in rejects],
            "Reason": [r.reason for _, r in rejects],
            "Record": [r.record for _, r in rejects],
            "QuarantinedAt": pa.array([now] * len(rejects), pa.timestamp("us")),
        }
    )
    con.register("_faultlens_rejects", table)
    try:
        con.execute(
            "INSERT INTO faultlens_quarantine BY NAME "
            "SELECT DISTINCT ON (Source, Position, Reason) "
            "* FROM _faultlens_rejects r WHERE NOT EXISTS (SELECT 1 FROM faultlens_quarantine q "
            "WHERE q.Source = r.Source AND q.Position = r.Position AND q.Reason = r.Reason)"
        )
    finally:
        con.unregister("_faultlens_rejects")


def write_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    source: str,
    traces: pa.Table | None,
    logs: pa.Table | None,
    rejects: list[tuple[str, Reject]],
    read: dict[str, int],
    metrics: dict[str, pa.Table] | None = None,
) -> BatchCounts:
    """Write one batch in one transaction: rows (deduplicated), quarantine, ledger.

    ``metrics`` maps a metrics table to its rows; the ledger counts them as one signal,
    ``metrics``, in data points."""
    now = datetime.now(UTC).replace(tzinfo=None)
    quarantined = {signal: 0 for signal in read}
    for signal, _ in rejects:
        quarantined[signal] = quarantined.get(signal, 0) + 1
    con.execute("BEGIN TRANSACTION")
    try:
        spans = _insert(con, "otel_traces", traces)
        records = _insert(con, "otel_logs", logs)
        points = [_insert(con, table, rows) for table, rows in (metrics or {}).items()]
        stored = {"traces": spans[0], "logs": records[0], "metrics": sum(p[0] for p in points)}
        duplicates = {
            "traces": spans[1],
            "logs": records[1],
            "metrics": sum(p[1] for p in points),
        }
        _quarantine(con, source, rejects, now)
        for signal, count in read.items():
            if count:
                con.execute(
                    "INSERT INTO faultlens_ingest_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        run_id,
                        source,
                        signal,
                        count,
                        stored.get(signal, 0),
                        duplicates.get(signal, 0),
                        quarantined.get(signal, 0),
                        now,
                    ],
                )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return BatchCounts(dict(read), stored, duplicates, quarantined)
