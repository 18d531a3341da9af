"""OTLP protobuf (TracesData / LogsData, or the Export*ServiceRequest with the same
wire layout) into store columns, through opentelemetry-proto's generated classes."""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from ._columns import LogColumns, TraceColumns
from ._identity import (
    KIND_NAMES,
    MODEL_KEYS,
    STATUS_NAMES,
    resolve_model,
    route_of,
    severity_number,
)
from ._metrics import decode_metrics_message, is_metrics_protobuf
from ._otlp_json import Decoded
from ._proto_values import proto_attributes as _attributes
from ._proto_values import proto_value_text as _value_text

__all__ = ["decode_message", "decode_protobuf", "detect_protobuf_signal"]


def _scopes(cols: TraceColumns | LogColumns, container: Any, scope_container: Any, res: int) -> int:
    scope = scope_container.scope
    attrs = _attributes(scope.attributes)
    return cols.scopes.add_scope(
        res,
        scope.name,
        scope.version,
        list(attrs),
        list(attrs.values()),
        scope_container.schema_url,
    )


def _resource(cols: TraceColumns | LogColumns, container: Any) -> int:
    attrs = _attributes(container.resource.attributes)
    return cols.scopes.add_resource(list(attrs), list(attrs.values()), container.schema_url)


def _traces(msg: TracesData, label: str, cols: TraceColumns) -> None:
    cols.begin_unit(label)
    unit = len(cols.units) - 1
    # The per-span appends, bound once: a receiver's request walks hundreds of spans.
    scope_idx, units, raw = cols.scope_idx.append, cols.unit.append, cols.raw.append
    trace_id, span_id, parent_id = cols.trace_id.append, cols.span_id.append, cols.parent_id.append
    trace_state, name_of, kind = cols.trace_state.append, cols.name.append, cols.kind.append
    start, end = cols.start.append, cols.end.append
    status_code, status_message = cols.status_code.append, cols.status_message.append
    attr_keys, attr_vals, attr_off = cols.attr_keys, cols.attr_vals, cols.attr_off.append
    model_name, model_version = cols.model_name.append, cols.model_version.append
    route, ev_off, ln_off = cols.route.append, cols.ev_off.append, cols.ln_off.append
    kinds, statuses = KIND_NAMES.get, STATUS_NAMES.get
    for rs in msg.resource_spans:
        res = _resource(cols, rs)
        for ss in rs.scope_spans:
            scope = _scopes(cols, rs, ss, res)
            default_model = cols.scopes.scope_model[scope]
            for span in ss.spans:
                cols.read += 1
                attrs = _attributes(span.attributes)
                if MODEL_KEYS.isdisjoint(attrs):
                    name, version = default_model
                else:
                    name, version = resolve_model(attrs)
                    if name is None:
                        name, version = default_model
                scope_idx(scope)
                units(unit)
                raw(span)
                trace_id(span.trace_id.hex())
                span_id(span.span_id.hex())
                parent_id(span.parent_span_id.hex())
                trace_state(span.trace_state)
                name_of(span.name)
                kind(kinds(span.kind, ""))
                start(span.start_time_unix_nano)
                end(span.end_time_unix_nano)
                status = span.status
                status_code(statuses(status.code, "Unset"))
                status_message(status.message)
                attr_keys.extend(attrs)
                attr_vals.extend(attrs.values())
                attr_off(len(attr_keys))
                model_name(name)
                model_version(version)
                route(route_of(attrs))
                events, links = span.events, span.links
                if events:
                    _events(cols, events)
                ev_off(len(cols.ev_name))
                if links:
                    _links(cols, links)
                ln_off(len(cols.ln_tid))


def _events(cols: TraceColumns, events: Any) -> None:
    for event in events:
        ev_attrs = _attributes(event.attributes)
        cols.ev_ts.append(event.time_unix_nano)
        cols.ev_name.append(event.name)
        cols.ev_keys.extend(ev_attrs)
        cols.ev_vals.extend(ev_attrs.values())
        cols.ev_attr_off.append(len(cols.ev_keys))


def _links(cols: TraceColumns, links: Any) -> None:
    for link in links:
        ln_attrs = _attributes(link.attributes)
        cols.ln_tid.append(link.trace_id.hex())
        cols.ln_sid.append(link.span_id.hex())
        cols.ln_state.append(link.trace_state)
        cols.ln_keys.extend(ln_attrs)
        cols.ln_vals.extend(ln_attrs.values())
        cols.ln_attr_off.append(len(cols.ln_keys))


def _logs(msg: LogsData, label: str, cols: LogColumns) -> None:
    cols.begin_unit(label)
    unit = len(cols.units) - 1
    for rl in msg.resource_logs:
        res = _resource(cols, rl)
        for sl in rl.scope_logs:
            scope = _scopes(cols, rl, sl, res)
            default_model = cols.scopes.scope_model[scope]
            for record in sl.log_records:
                cols.read += 1
                attrs = _attributes(record.attributes)
                name, version = resolve_model(attrs)
                if name is None:
                    name, version = default_model
                time = record.time_unix_nano
                observed = record.observed_time_unix_nano
                flags = record.flags & 0xFF
                body = _value_text(record.body)
                severity = severity_number(record.severity_number)
                cols.scope_idx.append(scope)
                cols.unit.append(unit)
                cols.raw.append(record)
                cols.time.append(time or observed)
                cols.trace_id.append(record.trace_id.hex())
                cols.span_id.append(record.span_id.hex())
                cols.flags.append(flags)
                cols.severity_text.append(record.severity_text)
                cols.severity_number.append(severity)
                cols.body.append(body)
                cols.attr_keys.extend(attrs)
                cols.attr_vals.extend(attrs.values())
                cols.attr_off.append(len(cols.attr_keys))
                cols.event_name.append(record.event_name)
                cols.model_name.append(name)
                cols.model_version.append(version)
                cols.identity.append(
                    orjson.dumps(
                        [
                            time,
                            observed,
                            flags,
                            record.severity_text,
                            severity,
                            body,
                            record.event_name,
                            list(attrs.items()),
                        ]
                    )
                )


def detect_protobuf_signal(data: bytes) -> str | None:
    """'traces', 'logs' or 'metrics' from the bytes of a bare message; None when none parses."""
    try:
        traces = TracesData.FromString(data)
    except DecodeError:
        traces = None
    if traces is not None and traces.resource_spans:
        for rs in traces.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    return "traces" if len(span.trace_id) == 16 else "logs"
    if is_metrics_protobuf(data):
        return "metrics"
    try:
        logs = LogsData.FromString(data)
    except DecodeError:
        return "traces" if traces is not None else None
    for rl in logs.resource_logs:
        for sl in rl.scope_logs:
            if sl.log_records:
                return "logs"
    return "traces" if traces is not None else "logs"


def decode_message(message: TracesData | LogsData | MetricsData, label: str, out: Decoded) -> None:
    """One parsed message into ``out`` (the receiver parses a body once, to answer 400
    when it does not parse)."""
    if isinstance(message, TracesData):
        _traces(message, label, out.traces)
    elif isinstance(message, MetricsData):
        decode_metrics_message(message, label, out.metrics)
    else:
        _logs(message, label, out.logs)


def decode_protobuf(data: bytes, label: str, out: Decoded, *, signal: str | None = None) -> None:
    """One protobuf message; an undecodable one is quarantined as a whole."""
    signal = signal or detect_protobuf_signal(data)
    try:
        if signal == "traces":
            _traces(TracesData.FromString(data), label, out.traces)
        elif signal == "logs":
            _logs(LogsData.FromString(data), label, out.logs)
        elif signal == "metrics":
            decode_metrics_message(MetricsData.FromString(data), label, out.metrics)
        else:
            out.reject(label, "not an OTLP protobuf message", data[:4096])
    except DecodeError as exc:
        out.reject(label, f"not an OTLP protobuf message ({exc})", data[:4096])
