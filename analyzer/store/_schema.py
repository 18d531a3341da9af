"""The DuckDB store: tables that mirror the OpenTelemetry Collector's ClickHouse exporter.

Column for column, ``otel_traces`` and ``otel_logs`` follow the exporter's DDL
(Nested ``Events``/``Links`` become parallel list columns named ``Events.Name``
and so on, as ClickHouse flattens them), so analysis SQL ports to ClickHouse.
faultlens' own columns come after them, materialized at ingest:

- ``ModelName`` / ``ModelVersion``: model identity resolved through the alias
  list of DESIGN.md ("Model identity");
- ``ServiceInstanceId``: ``service.instance.id``, scanned for restarts;
- ``HttpRoute``: ``http.route`` (else a client span's ``url.template``), the endpoint of
  entry spans;
- ``Layout``: the ``faultlens.layout`` resource attribute, '' when absent;
- ``ScopeAttributes`` on ``otel_traces`` (the exporter keeps them for logs only);
- ``RecordId`` on ``otel_logs``: a hash of the record's identity (resource,
  scope, times, ids, severity, body, attributes, event name), the dedupe key.

The ledger holds one row per committed batch (``RunId`` names the ingest run or
the receiver), written in the same transaction as the rows it counts, so it
reconciles at every commit: Read = Stored + Duplicates + Quarantined.

The metrics tables (``otel_metrics_gauge``, ``_sum``, ``_histogram``,
``_exponential_histogram``, ``_summary``) follow the exporter's metrics DDL the same way
(one row per data point; ``Exemplars`` and ``ValueAtQuantiles`` flattened to parallel
lists), then faultlens' ``ModelName``/``ModelVersion``/``ServiceInstanceId``/``Layout``
and ``PointId``, the dedupe key (``decode/_metrics.py``).

Timestamps are ``TIMESTAMP_NS``; ``epoch_ns(Timestamp)`` gives integer ns.
"""

from __future__ import annotations

__all__ = ["DDL", "SCHEMA_VERSION", "TABLES"]

SCHEMA_VERSION = 1

_ATTRS = "MAP(VARCHAR, VARCHAR)"

OTEL_TRACES = f"""
CREATE TABLE IF NOT EXISTS otel_traces (
    Timestamp TIMESTAMP_NS NOT NULL,
    TraceId VARCHAR NOT NULL,
    SpanId VARCHAR NOT NULL,
    ParentSpanId VARCHAR NOT NULL,
    TraceState VARCHAR NOT NULL,
    SpanName VARCHAR NOT NULL,
    SpanKind VARCHAR NOT NULL,
    ServiceName VARCHAR NOT NULL,
    ResourceAttributes {_ATTRS} NOT NULL,
    ScopeName VARCHAR NOT NULL,
    ScopeVersion VARCHAR NOT NULL,
    SpanAttributes {_ATTRS} NOT NULL,
    Duration UBIGINT NOT NULL,
    StatusCode VARCHAR NOT NULL,
    StatusMessage VARCHAR NOT NULL,
    "Events.Timestamp" TIMESTAMP_NS[] NOT NULL,
    "Events.Name" VARCHAR[] NOT NULL,
    "Events.Attributes" {_ATTRS}[] NOT NULL,
    "Links.TraceId" VARCHAR[] NOT NULL,
    "Links.SpanId" VARCHAR[] NOT NULL,
    "Links.TraceState" VARCHAR[] NOT NULL,
    "Links.Attributes" {_ATTRS}[] NOT NULL,
    ModelName VARCHAR,
    ModelVersion VARCHAR,
    ServiceInstanceId VARCHAR NOT NULL,
    HttpRoute VARCHAR NOT NULL,
    Layout VARCHAR NOT NULL,
    ScopeAttributes {_ATTRS} NOT NULL
)
"""

OTEL_LOGS = f"""
CREATE TABLE IF NOT EXISTS otel_logs (
    Timestamp TIMESTAMP_NS NOT NULL,
    TraceId VARCHAR NOT NULL,
    SpanId VARCHAR NOT NULL,
    TraceFlags UTINYINT NOT NULL,
    SeverityText VARCHAR NOT NULL,
    SeverityNumber UTINYINT NOT NULL,
    ServiceName VARCHAR NOT NULL,
    Body VARCHAR NOT NULL,
    ResourceSchemaUrl VARCHAR NOT NULL,
    ResourceAttributes {_ATTRS} NOT NULL,
    ScopeSchemaUrl VARCHAR NOT NULL,
    ScopeName VARCHAR NOT NULL,
    ScopeVersion VARCHAR NOT NULL,
    ScopeAttributes {_ATTRS} NOT NULL,
    LogAttributes {_ATTRS} NOT NULL,
    EventName VARCHAR NOT NULL,
    ModelName VARCHAR,
    ModelVersion VARCHAR,
    ServiceInstanceId VARCHAR NOT NULL,
    RecordId VARCHAR NOT NULL
)
"""

INGEST_LEDGER = """
CREATE TABLE IF NOT EXISTS faultlens_ingest_ledger (
    RunId VARCHAR NOT NULL,
    Source VARCHAR NOT NULL,
    Signal VARCHAR NOT NULL,
    Read UBIGINT NOT NULL,
    Stored UBIGINT NOT NULL,
    Duplicates UBIGINT NOT NULL,
    Quarantined UBIGINT NOT NULL,
    FinishedAt TIMESTAMP NOT NULL
)
"""

QUARANTINE = """
CREATE TABLE IF NOT EXISTS faultlens_quarantine (
    Source VARCHAR NOT NULL,
    Position VARCHAR NOT NULL,
    Reason VARCHAR NOT NULL,
    Record VARCHAR NOT NULL,
    QuarantinedAt TIMESTAMP NOT NULL
)
"""

_METRIC_HEAD = f"""
    ResourceAttributes {_ATTRS} NOT NULL,
    ResourceSchemaUrl VARCHAR NOT NULL,
    ScopeName VARCHAR NOT NULL,
    ScopeVersion VARCHAR NOT NULL,
    ScopeAttributes {_ATTRS} NOT NULL,
    ScopeDroppedAttrCount UINTEGER NOT NULL,
    ScopeSchemaUrl VARCHAR NOT NULL,
    ServiceName VARCHAR NOT NULL,
    MetricName VARCHAR NOT NULL,
    MetricDescription VARCHAR NOT NULL,
    MetricUnit VARCHAR NOT NULL,
    Attributes {_ATTRS} NOT NULL,
    StartTimeUnix TIMESTAMP_NS NOT NULL,
    TimeUnix TIMESTAMP_NS NOT NULL,"""
_EXEMPLARS = f"""
    "Exemplars.FilteredAttributes" {_ATTRS}[] NOT NULL,
    "Exemplars.TimeUnix" TIMESTAMP_NS[] NOT NULL,
    "Exemplars.Value" DOUBLE[] NOT NULL,
    "Exemplars.SpanId" VARCHAR[] NOT NULL,
    "Exemplars.TraceId" VARCHAR[] NOT NULL,"""
_METRIC_TAIL = """
    ModelName VARCHAR,
    ModelVersion VARCHAR,
    ServiceInstanceId VARCHAR NOT NULL,
    Layout VARCHAR NOT NULL,
    PointId VARCHAR NOT NULL"""
_HISTOGRAM_TAIL = """
    Flags UINTEGER NOT NULL,
    Min DOUBLE NOT NULL,
    Max DOUBLE NOT NULL,
    AggregationTemporality INTEGER NOT NULL,"""

OTEL_METRICS = {
    "otel_metrics_gauge": f"""{_METRIC_HEAD}
    Value DOUBLE NOT NULL,
    Flags UINTEGER NOT NULL,{_EXEMPLARS}{_METRIC_TAIL}""",
    "otel_metrics_sum": f"""{_METRIC_HEAD}
    Value DOUBLE NOT NULL,
    Flags UINTEGER NOT NULL,{_EXEMPLARS}
    AggregationTemporality INTEGER NOT NULL,
    IsMonotonic BOOLEAN NOT NULL,{_METRIC_TAIL}""",
    "otel_metrics_histogram": f"""{_METRIC_HEAD}
    Count UBIGINT NOT NULL,
    Sum DOUBLE NOT NULL,
    BucketCounts UBIGINT[] NOT NULL,
    ExplicitBounds DOUBLE[] NOT NULL,{_EXEMPLARS}{_HISTOGRAM_TAIL}{_METRIC_TAIL}""",
    "otel_metrics_exponential_histogram": f"""{_METRIC_HEAD}
    Count UBIGINT NOT NULL,
    Sum DOUBLE NOT NULL,
    Scale INTEGER NOT NULL,
    ZeroCount UBIGINT NOT NULL,
    PositiveOffset INTEGER NOT NULL,
    PositiveBucketCounts UBIGINT[] NOT NULL,
    NegativeOffset INTEGER NOT NULL,
    NegativeBucketCounts UBIGINT[] NOT NULL,{_EXEMPLARS}{_HISTOGRAM_TAIL}{_METRIC_TAIL}""",
    "otel_metrics_summary": f"""{_METRIC_HEAD}
    Count UBIGINT NOT NULL,
    Sum DOUBLE NOT NULL,
    "ValueAtQuantiles.Quantile" DOUBLE[] NOT NULL,
    "ValueAtQuantiles.Value" DOUBLE[] NOT NULL,
    Flags UINTEGER NOT NULL,{_METRIC_TAIL}""",
}

TABLES = (
    "otel_traces",
    "otel_logs",
    "faultlens_ingest_ledger",
    "faultlens_quarantine",
    *OTEL_METRICS,
)
DDL = (
    OTEL_TRACES,
    OTEL_LOGS,
    INGEST_LEDGER,
    QUARANTINE,
    *(f"CREATE TABLE IF NOT EXISTS {name} ({body}\n)\n" for name, body in OTEL_METRICS.items()),
)
