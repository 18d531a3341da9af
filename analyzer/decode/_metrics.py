"""OTLP metrics (JSON or protobuf) into the rows of the five metrics tables.

The tables mirror the OpenTelemetry Collector ClickHouse exporter's ``otel_metrics_gauge``,
``_sum``, ``_histogram``, ``_exponential_histogram`` and ``_summary`` (``store/_schema.py``):
one row per data point, values as the exporter stores them (absent sum/min/max as 0, an
integer value as Float64, exemplar ids as hex, ``Exemplars``/``ValueAtQuantiles`` Nested
columns as parallel lists named ``Exemplars.Value`` and so on). faultlens' own columns come
after them: ``ModelName``/``ModelVersion`` (the data point's attributes, else the
resource's, through DESIGN.md's alias list), ``ServiceInstanceId``, ``Layout`` and
``PointId``, the dedupe key: a hash of everything the point holds.

Both encodings go through the protobuf classes (``_metrics_json.py`` parses JSON into them
one metric at a time), so one walker, here, reads both. A data point that parses but is invalid (a
time out of range, bucket counts that do not fit the bounds, an exemplar id of the wrong
length) is quarantined on its own. A metric with no data at all is quarantined too: no
record is dropped in silence.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, MetricsData

from ._columns import Reject
from ._identity import MODEL_KEYS, resolve_model
from ._proto_values import proto_attributes

__all__ = [
    "METRIC_SCHEMAS",
    "METRIC_TABLES",
    "BadPoint",
    "MetricColumns",
    "Scope",
    "add_metric",
    "decode_metrics_message",
    "is_metrics_protobuf",
]

# Metric.data's oneof field -> its table.
METRIC_TABLES = {
    "gauge": "otel_metrics_gauge",
    "sum": "otel_metrics_sum",
    "histogram": "otel_metrics_histogram",
    "exponential_histogram": "otel_metrics_exponential_histogram",
    "summary": "otel_metrics_summary",
}

_MAP = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("ns")
_U64S = pa.list_(pa.uint64())
_F64S = pa.list_(pa.float64())
_COMMON = [
    ("ResourceAttributes", _MAP),
    ("ResourceSchemaUrl", pa.string()),
    ("ScopeName", pa.string()),
    ("ScopeVersion", pa.string()),
    ("ScopeAttributes", _MAP),
    ("ScopeDroppedAttrCount", pa.uint32()),
    ("ScopeSchemaUrl", pa.string()),
    ("ServiceName", pa.string()),
    ("MetricName", pa.string()),
    ("MetricDescription", pa.string()),
    ("MetricUnit", pa.string()),
    ("Attributes", _MAP),
    ("StartTimeUnix", _TS),
    ("TimeUnix", _TS),
]
_EXEMPLARS = [
    ("Exemplars.FilteredAttributes", pa.list_(_MAP)),
    ("Exemplars.TimeUnix", pa.list_(_TS)),
    ("Exemplars.Value", _F64S),
    ("Exemplars.SpanId", pa.list_(pa.string())),
    ("Exemplars.TraceId", pa.list_(pa.string())),
]
_OWN = [
    ("ModelName", pa.string()),
    ("ModelVersion", pa.string()),
    ("ServiceInstanceId", pa.string()),
    ("Layout", pa.string()),
    ("PointId", pa.string()),
]
_SPECIFIC: dict[str, list[tuple[str, pa.DataType]]] = {
    "gauge": [("Value", pa.float64()), ("Flags", pa.uint32()), *_EXEMPLARS],
    "sum": [
        ("Value", pa.float64()),
        ("Flags", pa.uint32()),
        *_EXEMPLARS,
        ("AggregationTemporality", pa.int32()),
        ("IsMonotonic", pa.bool_()),
    ],
    "histogram": [
        ("Count", pa.uint64()),
        ("Sum", pa.float64()),
        ("BucketCounts", _U64S),
        ("ExplicitBounds", _F64S),
        *_EXEMPLARS,
        ("Flags", pa.uint32()),
        ("Min", pa.float64()),
        ("Max", pa.float64()),
        ("AggregationTemporality", pa.int32()),
    ],
    "exponential_histogram": [
        ("Count", pa.uint64()),
        ("Sum", pa.float64()),
        ("Scale", pa.int32()),
        ("ZeroCount", pa.uint64()),
        ("PositiveOffset", pa.int32()),
        ("PositiveBucketCounts", _U64S),
        ("NegativeOffset", pa.int32()),
        ("NegativeBucketCounts", _U64S),
        *_EXEMPLARS,
        ("Flags", pa.uint32()),
        ("Min", pa.float64()),
        ("Max", pa.float64()),
        ("AggregationTemporality", pa.int32()),
    ],
    "summary": [
        ("Count", pa.uint64()),
        ("Sum", pa.float64()),
        ("ValueAtQuantiles.Quantile", _F64S),
        ("ValueAtQuantiles.Value", _F64S),
        ("Flags", pa.uint32()),
    ],
}
METRIC_SCHEMAS = {
    METRIC_TABLES[kind]: pa.schema(_COMMON + specific + _OWN)
    for kind, specific in _SPECIFIC.items()
}
_I63 = 1 << 63


class BadPoint(ValueError):
    """A data point that parses but cannot be stored as it is."""


class MetricColumns:
    """Data points as columns, one set per table; ``to_arrow`` builds the tables."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {}
        self.rejects: list[Reject] = []
        self.read = 0  # data points seen (a unit without any, rejected, counts as one)

    def __len__(self) -> int:
        return sum(len(cols["PointId"]) for cols in self.columns.values())

    def reject(self, position: str, reason: str, record: Any) -> None:
        self.read += 1
        text = record if isinstance(record, str) else _record_text(record)
        self.rejects.append(Reject(position, reason, text[:65536]))

    def _table(self, kind: str) -> dict[str, list[Any]]:
        cols = self.columns.get(kind)
        if cols is None:
            schema = METRIC_SCHEMAS[METRIC_TABLES[kind]]
            cols = self.columns[kind] = {name: [] for name in schema.names}
        return cols

    def to_arrow(self) -> dict[str, pa.Table]:
        """Table name -> the stored rows of that kind (kinds without rows are left out)."""
        out = {}
        for kind, cols in self.columns.items():
            if cols["PointId"]:
                table = METRIC_TABLES[kind]
                out[table] = pa.table(cols, schema=METRIC_SCHEMAS[table])
        return out


def _record_text(record: Any) -> str:
    if isinstance(record, bytes | bytearray):
        return bytes(record[:65536]).decode("utf-8", "replace")
    if hasattr(record, "SerializeToString"):
        return json_format.MessageToJson(record, indent=None)
    try:
        return orjson.dumps(record, default=str).decode()
    except TypeError:
        return repr(record)


class Scope:
    """The resource and scope every data point of one ScopeMetrics shares."""

    __slots__ = ("common", "identity", "model")

    def __init__(self, resource: Any, resource_url: str, scope_container: Any) -> None:
        res = proto_attributes(resource.attributes)
        scope = scope_container.scope
        scope_attrs = proto_attributes(scope.attributes)
        self.model = resolve_model(res)
        self.common = {
            "ResourceAttributes": list(res.items()),
            "ResourceSchemaUrl": resource_url,
            "ScopeName": scope.name,
            "ScopeVersion": scope.version,
            "ScopeAttributes": list(scope_attrs.items()),
            "ScopeDroppedAttrCount": scope.dropped_attributes_count,
            "ScopeSchemaUrl": scope_container.schema_url,
            "ServiceName": res.get("service.name", ""),
            "ServiceInstanceId": res.get("service.instance.id", ""),
            "Layout": res.get("faultlens.layout", ""),
        }
        self.identity = orjson.dumps(
            [
                sorted(res.items()),
                resource_url,
                scope.name,
                scope.version,
                sorted(scope_attrs.items()),
            ]
        )


def _time(value: int, what: str) -> int:
    if value >= _I63:
        raise BadPoint(f"{what} is out of range")
    return value


def _number(point: Any) -> float:
    which = point.WhichOneof("value")
    if which == "as_int":
        return float(point.as_int)
    return point.as_double if which == "as_double" else 0.0


def _exemplars(point: Any) -> dict[str, list[Any]]:
    attrs, times, values, span_ids, trace_ids = [], [], [], [], []
    for exemplar in point.exemplars:
        if len(exemplar.span_id) not in (0, 8) or len(exemplar.trace_id) not in (0, 16):
            raise BadPoint("an exemplar's spanId/traceId is not 8/16 bytes")
        attrs.append(list(proto_attributes(exemplar.filtered_attributes).items()))
        times.append(_time(exemplar.time_unix_nano, "an exemplar's timeUnixNano"))
        values.append(_number(exemplar))
        span_ids.append(exemplar.span_id.hex())
        trace_ids.append(exemplar.trace_id.hex())
    return {
        "Exemplars.FilteredAttributes": attrs,
        "Exemplars.TimeUnix": times,
        "Exemplars.Value": values,
        "Exemplars.SpanId": span_ids,
        "Exemplars.TraceId": trace_ids,
    }


def _optional(point: Any, name: str) -> float:
    return getattr(point, name) if point.HasField(name) else 0.0


def _specific(kind: str, point: Any, data: Any) -> dict[str, Any]:
    """The kind's own columns of one data point."""
    if kind in ("gauge", "sum"):
        values = {"Value": _number(point), "Flags": point.flags, **_exemplars(point)}
        if kind == "sum":
            values["AggregationTemporality"] = data.aggregation_temporality
            values["IsMonotonic"] = data.is_monotonic
        return values
    if kind == "histogram":
        counts, bounds = list(point.bucket_counts), list(point.explicit_bounds)
        if counts and len(counts) != len(bounds) + 1:
            raise BadPoint(
                f"bucketCounts has {len(counts)} entries for {len(bounds)} explicitBounds"
            )
        return {
            "Count": point.count,
            "Sum": _optional(point, "sum"),
            "BucketCounts": counts,
            "ExplicitBounds": bounds,
            **_exemplars(point),
            "Flags": point.flags,
            "Min": _optional(point, "min"),
            "Max": _optional(point, "max"),
            "AggregationTemporality": data.aggregation_temporality,
        }
    if kind == "exponential_histogram":
        return {
            "Count": point.count,
            "Sum": _optional(point, "sum"),
            "Scale": point.scale,
            "ZeroCount": point.zero_count,
            "PositiveOffset": point.positive.offset,
            "PositiveBucketCounts": list(point.positive.bucket_counts),
            "NegativeOffset": point.negative.offset,
            "NegativeBucketCounts": list(point.negative.bucket_counts),
            **_exemplars(point),
            "Flags": point.flags,
            "Min": _optional(point, "min"),
            "Max": _optional(point, "max"),
            "AggregationTemporality": data.aggregation_temporality,
        }
    return {
        "Count": point.count,
        "Sum": point.sum,
        "ValueAtQuantiles.Quantile": [q.quantile for q in point.quantile_values],
        "ValueAtQuantiles.Value": [q.value for q in point.quantile_values],
        "Flags": point.flags,
    }


def add_metric(out: MetricColumns, context: Scope, metric: Metric, where: str) -> None:
    """The data points of one parsed metric into ``out``; bad points are quarantined."""
    kind = metric.WhichOneof("data")
    if kind is None:
        out.reject(where, f"metric {metric.name!r} has no data (no gauge/sum/histogram)", metric)
        return
    data = getattr(metric, kind)
    cols = out._table(kind)
    common = {
        **context.common,
        "MetricName": metric.name,
        "MetricDescription": metric.description,
        "MetricUnit": metric.unit,
    }
    series = context.identity + orjson.dumps([metric.name, metric.description, metric.unit])
    for p, point in enumerate(data.data_points):
        try:
            start = _time(point.start_time_unix_nano, "startTimeUnixNano")
            time = _time(point.time_unix_nano, "timeUnixNano")
            attrs = proto_attributes(point.attributes)
            values = _specific(kind, point, data)
        except BadPoint as exc:
            out.reject(f"{where}.dataPoints[{p}]", str(exc), point)
            continue
        name, version = context.model
        if not MODEL_KEYS.isdisjoint(attrs):
            own = resolve_model(attrs)
            if own[0] is not None:
                name, version = own
        identity = orjson.dumps([kind, list(attrs.items()), start, time, values])
        values.update(common)
        values["Attributes"] = list(attrs.items())
        values["StartTimeUnix"] = start
        values["TimeUnix"] = time
        values["ModelName"] = name
        values["ModelVersion"] = version
        values["PointId"] = hashlib.blake2b(series + identity, digest_size=16).hexdigest()
        out.read += 1
        for column, value in values.items():
            cols[column].append(value)


def decode_metrics_message(message: MetricsData, label: str, out: MetricColumns) -> None:
    """One MetricsData (or ExportMetricsServiceRequest, the same wire layout)."""
    for r, rm in enumerate(message.resource_metrics):
        for s, sm in enumerate(rm.scope_metrics):
            context = Scope(rm.resource, rm.schema_url, sm)
            for m, metric in enumerate(sm.metrics):
                where = f"{label} resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]"
                add_metric(out, context, metric, where)


def is_metrics_protobuf(data: bytes) -> bool:
    """Whether a bare protobuf message reads as MetricsData: its first metric has a name
    and data. Traces and logs do not: a span's 16-byte trace id is not a metric name
    (field 1 is a string there), and a log record's field 1 is a fixed64."""
    try:
        message = MetricsData.FromString(data)
    except DecodeError:
        return False
    for rm in message.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                return bool(metric.name) and metric.WhichOneof("data") is not None
    return False
