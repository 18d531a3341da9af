"""OTLP values into store columns: the parts every decoder (JSON, protobuf) shares.

A decoder appends spans or log records to a :class:`TraceColumns` or
:class:`LogColumns`; ``to_arrow()`` then validates ids vectorized, lower-cases
them and returns a pyarrow table whose columns are named as in ``_schema`` plus
the records it rejected. Values are stored as the OpenTelemetry Collector's
ClickHouse exporter stores them (pcommon ``Value.AsString``): arrays and maps as
JSON text with sorted keys, bytes as standard base64, doubles in the shortest
round-trip form.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ._scopes import Scopes, flat_maps

__all__ = [
    "LOG_COLUMNS",
    "TRACE_COLUMNS",
    "LogColumns",
    "Reject",
    "TraceColumns",
]


@dataclass(frozen=True, slots=True)
class Reject:
    """One record (or one undecodable unit) that goes to the quarantine."""

    position: str
    reason: str
    record: str


_HEX32 = r"^[0-9a-f]{32}$"
_HEX16 = r"^[0-9a-f]{16}$"
_ZERO32 = "0" * 32
_ZERO16 = "0" * 16
_I63 = 1 << 63
_ATTRS = pa.map_(pa.string(), pa.string())

TRACE_COLUMNS = [
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
    "ModelName",
    "ModelVersion",
    "ServiceInstanceId",
    "HttpRoute",
    "Layout",
    "ScopeAttributes",
]
LOG_COLUMNS = [
    "Timestamp",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "SeverityText",
    "SeverityNumber",
    "ServiceName",
    "Body",
    "ResourceSchemaUrl",
    "ResourceAttributes",
    "ScopeSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "LogAttributes",
    "EventName",
    "ModelName",
    "ModelVersion",
    "ServiceInstanceId",
    "RecordId",
]


def _strings(raw: list[Any], what: str, bads: list[tuple[pa.Array, str]]) -> pa.Array:
    """A string column; values of another type become '' and their rows are rejected."""
    try:
        return pa.array(raw, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        mask = [not isinstance(r, str | None) for r in raw]
        bads.append((pa.array(mask, pa.bool_()), f"{what} is not a string"))
        return pa.array([r if isinstance(r, str | None) else "" for r in raw], pa.string())


def _ids(raw: list[Any], pattern: str, zero: str | None) -> tuple[pa.Array, pa.Array]:
    """Lower-cased ids and a boolean mask of the invalid ones."""
    try:
        arr = pa.array(raw, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array([r if isinstance(r, str) else "\x00bad" for r in raw], pa.string())
    low = pc.utf8_lower(arr)
    bad = pc.invert(pc.match_substring_regex(low, pattern))
    if zero is not None:
        bad = pc.or_(bad, pc.equal(low, zero))
    return low, bad


class _Rows:
    """Row bookkeeping shared by spans and log records: positions and rejects."""

    def __init__(self) -> None:
        self.scopes = Scopes()
        self.rejects: list[Reject] = []
        self.read = 0
        self.scope_idx: list[int] = []
        self.unit: list[int] = []  # row -> index into self.units
        self.units: list[tuple[str, int]] = []  # (position label, first row)
        self.raw: list[Any] = []  # row -> the decoded record, for the quarantine
        self.skipped: dict[int, list[int]] = {}

    def begin_unit(self, position: str) -> None:
        self.units.append((position, len(self.scope_idx)))

    def reject(self, position: str, reason: str, record: Any) -> None:
        self.read += 1
        self.rejects.append(Reject(position, reason, _record_text(record)))

    def row_position(self, row: int) -> str:
        unit = self.unit[row]
        label, first = self.units[unit]
        number = row - first + 1
        for skipped in self.skipped.get(unit, ()):  # records rejected before they got a row
            if skipped <= number:
                number += 1
        return f"{label} record {number}"

    def reject_record(self, reason: str, record: Any) -> None:
        """Reject the record being decoded (of the last unit) before it gets a row."""
        unit = len(self.units) - 1
        label, first = self.units[unit]
        skipped = self.skipped.setdefault(unit, [])
        number = len(self.scope_idx) - first + 1 + len(skipped)
        skipped.append(number)
        self.reject(f"{label} record {number}", reason, record)

    def _drop_rejected(
        self, table: pa.Table, reasons: list[tuple[pa.Array, str]]
    ) -> pa.Table | None:
        bad = reasons[0][0]
        for mask, _ in reasons[1:]:
            bad = pc.or_(bad, mask)
        if pc.any(bad).as_py():
            for row in pc.indices_nonzero(bad).to_pylist():
                why = [text for mask, text in reasons if mask[row].as_py()]
                self.rejects.append(
                    Reject(self.row_position(row), "; ".join(why), _record_text(self.raw[row]))
                )
            table = table.filter(pc.invert(bad))
        return table if table.num_rows else None


def _record_text(record: Any) -> str:
    if isinstance(record, bytes | bytearray):
        return bytes(record[:65536]).decode("utf-8", "replace")
    if isinstance(record, str):
        return record[:65536]
    try:
        return orjson.dumps(record, default=str).decode()[:65536]
    except TypeError:
        return repr(record)[:65536]


class TraceColumns(_Rows):
    """Spans as columns; decoders append, ``to_arrow`` builds the table."""

    def __init__(self) -> None:
        super().__init__()
        self.trace_id: list[Any] = []
        self.span_id: list[Any] = []
        self.parent_id: list[Any] = []
        self.trace_state: list[str] = []
        self.name: list[str] = []
        self.kind: list[str] = []
        self.start: list[int] = []
        self.end: list[int] = []
        self.status_code: list[str] = []
        self.status_message: list[str] = []
        self.attr_off: list[int] = [0]
        self.attr_keys: list[str] = []
        self.attr_vals: list[str] = []
        self.model_name: list[str | None] = []
        self.model_version: list[str | None] = []
        self.route: list[str] = []
        self.ev_off: list[int] = [0]
        self.ev_ts: list[int] = []
        self.ev_name: list[str] = []
        self.ev_attr_off: list[int] = [0]
        self.ev_keys: list[str] = []
        self.ev_vals: list[str] = []
        self.ln_off: list[int] = [0]
        self.ln_tid: list[Any] = []
        self.ln_sid: list[Any] = []
        self.ln_state: list[str] = []
        self.ln_attr_off: list[int] = [0]
        self.ln_keys: list[str] = []
        self.ln_vals: list[str] = []

    def __len__(self) -> int:
        return len(self.scope_idx)

    def to_arrow(self) -> pa.Table | None:
        """The valid spans as a table (None when there are none); rejects are recorded."""
        n = len(self.scope_idx)
        if n == 0:
            return None
        tid, bad_t = _ids(self.trace_id, _HEX32, _ZERO32)
        sid, bad_s = _ids(self.span_id, _HEX16, _ZERO16)
        pid, bad_p = _ids(self.parent_id, r"^([0-9a-f]{16})?$", None)
        start = pa.array(self.start, pa.uint64())
        end = pa.array(self.end, pa.uint64())
        bad_time = pc.greater_equal(start, pa.scalar(_I63, pa.uint64()))
        reasons = [
            (bad_t, "traceId is not 32 hex digits (or is all zero)"),
            (bad_s, "spanId is not 16 hex digits (or is all zero)"),
            (bad_p, "parentSpanId is not empty or 16 hex digits"),
            (bad_time, "startTimeUnixNano is out of range"),
        ]
        scope_idx = pa.array(self.scope_idx, pa.int32())
        cols: dict[str, pa.Array] = {
            "Timestamp": start.cast(pa.int64(), safe=False).cast(pa.timestamp("ns")),
            "TraceId": tid,
            "SpanId": sid,
            "ParentSpanId": pid,
            "TraceState": _strings(self.trace_state, "traceState", reasons),
            "SpanName": _strings(self.name, "name", reasons),
            "SpanKind": pa.array(self.kind, pa.string()),
            "SpanAttributes": flat_maps(self.attr_off, self.attr_keys, self.attr_vals),
            "Duration": pc.if_else(
                pc.greater(end, start),
                pc.subtract_checked(pc.max_element_wise(end, start), start),
                0,
            ).cast(pa.uint64()),
            "StatusCode": pa.array(self.status_code, pa.string()),
            "StatusMessage": _strings(self.status_message, "status.message", reasons),
            "ModelName": pa.array(self.model_name, pa.string()),
            "ModelVersion": pa.array(self.model_version, pa.string()),
            "HttpRoute": pa.array(self.route, pa.string()),
        }
        cols.update(_events(self))
        links, bad_links = _links(self)
        cols.update(links)
        reasons.append((bad_links, "a link's traceId/spanId is not hex of the right length"))
        cols.update(self.scopes.per_scope(scope_idx))
        del cols["ResourceSchemaUrl"], cols["ScopeSchemaUrl"]
        table = pa.table({name: cols[name] for name in TRACE_COLUMNS})
        return self._drop_rejected(table, reasons)


def _events(cols: TraceColumns) -> dict[str, pa.Array]:
    off = pa.array(cols.ev_off, pa.int32())
    ts = pa.array(cols.ev_ts, pa.uint64()).cast(pa.int64(), safe=False).cast(pa.timestamp("ns"))
    return {
        "Events.Timestamp": pa.ListArray.from_arrays(off, ts),
        "Events.Name": pa.ListArray.from_arrays(off, pa.array(cols.ev_name, pa.string())),
        "Events.Attributes": pa.ListArray.from_arrays(
            off, flat_maps(cols.ev_attr_off, cols.ev_keys, cols.ev_vals)
        ),
    }


def _links(cols: TraceColumns) -> tuple[dict[str, pa.Array], pa.Array]:
    off = pa.array(cols.ln_off, pa.int32())
    n = len(cols.ln_off) - 1
    bad_rows: list[int] = []
    if cols.ln_tid:
        tid, bad_t = _ids(cols.ln_tid, _HEX32, None)
        sid, bad_s = _ids(cols.ln_sid, _HEX16, None)
        bad_link = pc.or_(bad_t, bad_s)
        parents = pc.list_parent_indices(pa.ListArray.from_arrays(off, bad_link))
        bad_rows = pc.filter(parents, bad_link).to_pylist()
    else:
        tid = sid = pa.array([], pa.string())
    mask = [False] * n
    for row in bad_rows:
        mask[row] = True
    bad = pa.array(mask, pa.bool_())
    return {
        "Links.TraceId": pa.ListArray.from_arrays(off, tid),
        "Links.SpanId": pa.ListArray.from_arrays(off, sid),
        "Links.TraceState": pa.ListArray.from_arrays(off, pa.array(cols.ln_state, pa.string())),
        "Links.Attributes": pa.ListArray.from_arrays(
            off, flat_maps(cols.ln_attr_off, cols.ln_keys, cols.ln_vals)
        ),
    }, bad


class LogColumns(_Rows):
    """Log records as columns; decoders append, ``to_arrow`` builds the table."""

    def __init__(self) -> None:
        super().__init__()
        self.time: list[int] = []
        self.trace_id: list[Any] = []
        self.span_id: list[Any] = []
        self.flags: list[int] = []
        self.severity_text: list[str] = []
        self.severity_number: list[int] = []
        self.body: list[str] = []
        self.attr_off: list[int] = [0]
        self.attr_keys: list[str] = []
        self.attr_vals: list[str] = []
        self.event_name: list[str] = []
        self.model_name: list[str | None] = []
        self.model_version: list[str | None] = []
        self.identity: list[bytes] = []

    def __len__(self) -> int:
        return len(self.scope_idx)

    def to_arrow(self) -> pa.Table | None:
        """The valid log records as a table (None when there are none)."""
        n = len(self.scope_idx)
        if n == 0:
            return None
        tid, bad_t = _ids(self.trace_id, r"^([0-9a-f]{32})?$", None)
        sid, bad_s = _ids(self.span_id, r"^([0-9a-f]{16})?$", None)
        time = pa.array(self.time, pa.uint64())
        bad_time = pc.greater_equal(time, pa.scalar(_I63, pa.uint64()))
        reasons = [
            (bad_t, "traceId is not empty or 32 hex digits"),
            (bad_s, "spanId is not empty or 16 hex digits"),
            (bad_time, "timeUnixNano is out of range"),
        ]
        scope_idx = pa.array(self.scope_idx, pa.int32())
        # The record's identity: its scope's resource and scope, and its own fields.
        scope_keys = [
            orjson.dumps(
                [
                    self.scopes.res_keys[r],
                    self.scopes.res_vals[r],
                    self.scopes.scope_name[s],
                    self.scopes.scope_version[s],
                ]
            )
            for s, r in enumerate(self.scopes.scope_res)
        ]
        tid_l = tid.to_pylist()
        sid_l = sid.to_pylist()
        record_id = [
            hashlib.blake2b(
                scope_keys[self.scope_idx[i]] + tid_l[i].encode() + sid_l[i].encode() + ident,
                digest_size=16,
            ).hexdigest()
            for i, ident in enumerate(self.identity)
        ]
        cols: dict[str, pa.Array] = {
            "Timestamp": time.cast(pa.int64(), safe=False).cast(pa.timestamp("ns")),
            "TraceId": tid,
            "SpanId": sid,
            "TraceFlags": pa.array(self.flags, pa.uint8()),
            "SeverityText": _strings(self.severity_text, "severityText", reasons),
            "SeverityNumber": pa.array(self.severity_number, pa.uint8()),
            "Body": pa.array(self.body, pa.string()),
            "LogAttributes": flat_maps(self.attr_off, self.attr_keys, self.attr_vals),
            "EventName": _strings(self.event_name, "eventName", reasons),
            "ModelName": pa.array(self.model_name, pa.string()),
            "ModelVersion": pa.array(self.model_version, pa.string()),
            "RecordId": pa.array(record_id, pa.string()),
        }
        cols.update(self.scopes.per_scope(scope_idx))
        del cols["Layout"]
        table = pa.table({name: cols[name] for name in LOG_COLUMNS})
        return self._drop_rejected(table, reasons)
