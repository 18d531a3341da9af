"""OTLP/JSON (the spec's "JSON Protobuf Encoding") into store columns.

Accepts what the encoding allows: hex ids in either case, 64-bit integers as
strings or numbers, enums as integers or names, omitted defaults, unknown
fields (ignored), ``bytesValue`` in base64 (standard or URL-safe), and the
legacy ``instrumentationLibrarySpans`` / ``instrumentationLibraryLogs``.
Each span loop is written out inline: it runs once per span and is the
hottest code of an ingest.
"""

from __future__ import annotations

from typing import Any

import orjson

from ._columns import LogColumns, Reject, TraceColumns
from ._identity import (
    KIND_NAMES,
    MODEL_KEYS,
    STATUS_NAMES,
    resolve_model,
    route_of,
    severity_number,
)
from ._json_values import (
    BadValue,
    attributes,
    int_value,
    str_value,
    value_text,
)
from ._metrics import MetricColumns
from ._metrics_json import decode_metrics_json

__all__ = ["Decoded", "decode_document", "decode_json_lines"]

_SEVERITY: dict[Any, int] = {"SEVERITY_NUMBER_UNSPECIFIED": 0}
for _base, _name in ((1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR")):
    for _k in range(4):
        _SEVERITY[f"SEVERITY_NUMBER_{_name}{_k + 1 if _k else ''}"] = _base + _k
for _k in range(4):
    _SEVERITY[f"SEVERITY_NUMBER_FATAL{_k + 1 if _k else ''}"] = 21 + _k


_OTLP_KEYS = ("resourceSpans", "resourceLogs", "resourceMetrics", "resourceProfiles")


class Decoded:
    """What one unit of input (a chunk of lines, a document, a protobuf message) held."""

    def __init__(self) -> None:
        self.traces = TraceColumns()
        self.logs = LogColumns()
        self.metrics = MetricColumns()
        self.rejects: list[Reject] = []  # units that are neither traces nor logs
        self.read = 0

    def reject(self, position: str, reason: str, record: Any) -> None:
        self.read += 1
        self.rejects.append(Reject(position, reason, _text(record)))


def _text(record: Any) -> str:
    if isinstance(record, bytes | bytearray):
        return bytes(record[:65536]).decode("utf-8", "replace")
    return str(record)[:65536]


def _add_resource(cols: TraceColumns | LogColumns, container: dict) -> int:
    resource = container.get("resource") or {}
    attrs = attributes(resource.get("attributes"))
    return cols.scopes.add_resource(
        list(attrs), list(attrs.values()), str_value(container.get("schemaUrl"), "schemaUrl")
    )


def _add_scope(cols: TraceColumns | LogColumns, resource: int, container: dict) -> int:
    scope = container.get("scope") or container.get("instrumentationLibrary") or {}
    attrs = attributes(scope.get("attributes"))
    return cols.scopes.add_scope(
        resource,
        str_value(scope.get("name"), "scope.name"),
        str_value(scope.get("version"), "scope.version"),
        list(attrs),
        list(attrs.values()),
        str_value(container.get("schemaUrl"), "schemaUrl"),
    )


def _spans(cols: TraceColumns, spans: list, scope: int, label: str) -> None:
    # Locals for speed: this loop runs once per span.
    scope_res_model = cols.scopes.scope_model[scope]
    kinds = KIND_NAMES
    statuses = STATUS_NAMES
    model_keys = MODEL_KEYS
    a_scope, a_unit, a_raw = cols.scope_idx.append, cols.unit.append, cols.raw.append
    a_tid, a_sid, a_pid = cols.trace_id.append, cols.span_id.append, cols.parent_id.append
    a_state, a_name, a_kind = cols.trace_state.append, cols.name.append, cols.kind.append
    a_start, a_end = cols.start.append, cols.end.append
    a_code, a_msg = cols.status_code.append, cols.status_message.append
    a_off, keys, vals = cols.attr_off.append, cols.attr_keys, cols.attr_vals
    a_mname, a_mver, a_route = cols.model_name.append, cols.model_version.append, cols.route.append
    a_evoff, a_lnoff = cols.ev_off.append, cols.ln_off.append
    unit = len(cols.units) - 1
    for span in spans:
        cols.read += 1
        try:
            attrs = attributes(span.get("attributes"))
            start = int_value(span.get("startTimeUnixNano"))
            end = int_value(span.get("endTimeUnixNano"))
            kind = kinds.get(span.get("kind", 0), "")
            status = span.get("status")
            if status:
                code = statuses.get(status.get("code", 0), "Unset")
                message = status.get("message", "")
            else:
                code, message = "Unset", ""
            events = span.get("events")
            links = span.get("links")
            if events or links:
                _events_links(cols, events, links)
            if model_keys.isdisjoint(attrs):
                name, version = scope_res_model
                route = ""
            else:
                name, version = resolve_model(attrs)
                if name is None:
                    name, version = scope_res_model
                route = route_of(attrs)
        except (BadValue, KeyError, TypeError, AttributeError, ValueError) as exc:
            cols.read -= 1
            cols.reject_record(_reason(exc), span)
            continue
        a_scope(scope)
        a_unit(unit)
        a_raw(span)
        a_tid(span.get("traceId", ""))
        a_sid(span.get("spanId", ""))
        a_pid(span.get("parentSpanId", ""))
        a_state(span.get("traceState", ""))
        a_name(span.get("name", ""))
        a_kind(kind)
        a_start(start)
        a_end(end)
        a_code(code)
        a_msg(message)
        keys += attrs
        vals += attrs.values()
        a_off(len(keys))
        a_mname(name)
        a_mver(version)
        a_route(route)
        if not (events or links):
            a_evoff(len(cols.ev_name))
            a_lnoff(len(cols.ln_tid))


def _events_links(cols: TraceColumns, events: Any, links: Any) -> None:
    # Decode fully before appending, so a bad event leaves no partial row behind.
    ev = []
    for event in events or ():
        attrs = attributes(event.get("attributes"))
        ev.append(
            (
                int_value(event.get("timeUnixNano")),
                str_value(event.get("name"), "event name"),
                attrs,
            )
        )
    ln = []
    for link in links or ():
        attrs = attributes(link.get("attributes"))
        ln.append(
            (
                link.get("traceId", ""),
                link.get("spanId", ""),
                str_value(link.get("traceState"), "link traceState"),
                attrs,
            )
        )
    for ts, name, attrs in ev:
        cols.ev_ts.append(ts)
        cols.ev_name.append(name)
        cols.ev_keys.extend(attrs)
        cols.ev_vals.extend(attrs.values())
        cols.ev_attr_off.append(len(cols.ev_keys))
    for tid, sid, state, attrs in ln:
        cols.ln_tid.append(tid)
        cols.ln_sid.append(sid)
        cols.ln_state.append(state)
        cols.ln_keys.extend(attrs)
        cols.ln_vals.extend(attrs.values())
        cols.ln_attr_off.append(len(cols.ln_keys))
    cols.ev_off.append(len(cols.ev_name))
    cols.ln_off.append(len(cols.ln_tid))


def _reason(exc: Exception) -> str:
    if isinstance(exc, BadValue):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"malformed record ({exc})"


def _logs(cols: LogColumns, records: list, scope: int, label: str) -> None:
    scope_res_model = cols.scopes.scope_model[scope]
    unit = len(cols.units) - 1
    for record in records:
        cols.read += 1
        try:
            attrs = attributes(record.get("attributes"))
            time = int_value(record.get("timeUnixNano"))
            observed = int_value(record.get("observedTimeUnixNano"))
            flags = int_value(record.get("flags")) & 0xFF
            severity = record.get("severityNumber", 0)
            if isinstance(severity, str):
                if severity not in _SEVERITY:
                    raise BadValue(f"unknown severityNumber {severity!r}")
                severity = _SEVERITY[severity]
            elif type(severity) is int:  # an int32 enum: a -1 is as unknown as a 300
                severity = severity_number(severity)
            else:
                severity = severity_number(int_value(severity))
            body = value_text(record.get("body"))
            event_name = record.get("eventName", "")
            text = record.get("severityText", "")
            name, version = resolve_model(attrs)
            if name is None:
                name, version = scope_res_model
            identity = orjson.dumps(
                [time, observed, flags, text, severity, body, event_name, list(attrs.items())],
                default=str,
            )
        except (BadValue, KeyError, TypeError, AttributeError, ValueError) as exc:
            cols.read -= 1
            cols.reject_record(_reason(exc), record)
            continue
        cols.scope_idx.append(scope)
        cols.unit.append(unit)
        cols.raw.append(record)
        cols.time.append(time or observed)
        cols.trace_id.append(record.get("traceId", ""))
        cols.span_id.append(record.get("spanId", ""))
        cols.flags.append(flags)
        cols.severity_text.append(text)
        cols.severity_number.append(severity)
        cols.body.append(body)
        cols.attr_keys.extend(attrs)
        cols.attr_vals.extend(attrs.values())
        cols.attr_off.append(len(cols.attr_keys))
        cols.event_name.append(event_name)
        cols.model_name.append(name)
        cols.model_version.append(version)
        cols.identity.append(identity)


def _signal(
    out: Decoded, doc: dict, label: str, key: str, legacy: str, items: str, cols: Any, add: Any
) -> None:
    resources = doc.get(key)
    if not resources:
        return
    if not isinstance(resources, list):
        out.reject(label, f"{key} is not a list", doc)
        return
    cols.begin_unit(label)
    for r, container in enumerate(resources):
        where = f"{key}[{r}]"
        try:
            resource = _add_resource(cols, container)
            scopes = container.get(legacy.replace("instrumentationLibrary", "scope")) or (
                container.get(legacy) or []
            )
            for s, scope_container in enumerate(scopes):
                where = f"{key}[{r}].scopes[{s}]"
                scope = _add_scope(cols, resource, scope_container)
                records = scope_container.get(items) or []
                if not isinstance(records, list):
                    raise BadValue(f"{items} is not a list")
                add(cols, records, scope, label)
        except (BadValue, KeyError, TypeError, AttributeError, ValueError) as exc:
            out.reject(label, f"{where}: {_reason(exc)}", container)


def decode_document(doc: Any, label: str, out: Decoded) -> None:
    """One TracesData/LogsData/MetricsData (or Export*ServiceRequest) object, already parsed."""
    if not isinstance(doc, dict):
        out.reject(label, "not an OTLP JSON object", orjson.dumps(doc, default=str))
        return
    if doc and not any(key in doc for key in _OTLP_KEYS):
        out.reject(label, "not OTLP (no resourceSpans/resourceLogs)", orjson.dumps(doc))
        return
    if "resourceSpans" in doc:
        _signal(
            out,
            doc,
            label,
            "resourceSpans",
            "instrumentationLibrarySpans",
            "spans",
            out.traces,
            _spans,
        )
    if "resourceLogs" in doc:
        _signal(
            out,
            doc,
            label,
            "resourceLogs",
            "instrumentationLibraryLogs",
            "logRecords",
            out.logs,
            _logs,
        )
    if "resourceMetrics" in doc:
        decode_metrics_json(doc["resourceMetrics"] or [], label, out.metrics)
    if doc.get("resourceProfiles"):
        out.reject(label, "resourceProfiles: profiles are not stored", b"")


def decode_json_lines(data: bytes, source: str, first_line: int, out: Decoded) -> None:
    """OTLP JSON Lines: one object per line; a line that is not JSON is quarantined."""
    line_no = first_line - 1
    for line in data.split(b"\n"):
        line_no += 1
        if not line.strip():
            continue
        label = f"{source}:{line_no}"
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            out.reject(label, f"not valid JSON at column {exc.colno} ({exc.msg})", line)
            continue
        decode_document(doc, label, out)
