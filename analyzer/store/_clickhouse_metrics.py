"""The OpenTelemetry Collector ClickHouse exporter's metrics tables, as it creates them.

One table per data-point kind (opentelemetry-collector-contrib,
``exporter/clickhouseexporter/internal/sqltemplates/metrics_*_table.sql``):
``otel_metrics_gauge``, ``_sum``, ``_histogram``, ``_exponential_histogram`` and
``_summary``, with the exporter's column names and types, ``Exemplars`` /
``ValueAtQuantiles`` as Nested columns, its skip indexes, ``MergeTree`` engine, daily
partitions and sort key. faultlens' DuckDB store mirrors them column for column
(``_schema.py``), so the cost analysis (``analysis/_cost.py``) reads the same columns on
both engines.

Times are ``DateTime64(9)``. Some exporter releases create ``StartTimeUnix`` /
``TimeUnix`` of the sum and exponential-histogram tables as ``DateTime`` (seconds):
``metrics_source_sql`` reads both, as ``DateTime64(9)``, at the precision stored.
"""

from __future__ import annotations

from ..decode._metrics import METRIC_SCHEMAS, METRIC_TABLES
from ._dialect import CLICKHOUSE

__all__ = ["METRIC_COLUMNS", "metrics_create_statements", "metrics_source_sql"]

# faultlens' own columns of its DuckDB metrics tables (decode/_metrics.py), which the
# exporter does not write.
_OWN = ("ModelName", "ModelVersion", "ServiceInstanceId", "Layout", "PointId")
# Table -> the columns the exporter writes (Nested ones by their flattened names).
METRIC_COLUMNS = {
    table: tuple(n for n in schema.names if n not in _OWN)
    for table, schema in METRIC_SCHEMAS.items()
}

_MAP = "Map(LowCardinality(String), String)"
_HEAD = f"""
    ResourceAttributes {_MAP} CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes {_MAP} CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes {_MAP} CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),"""
_EXEMPLARS = f"""
    Exemplars Nested (
        FilteredAttributes {_MAP},
        TimeUnix DateTime64(9),
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),"""
_HISTOGRAM_TAIL = """
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),"""
_INDEXES = "".join(
    f"\n    INDEX idx_{name} {expr} TYPE bloom_filter(0.01) GRANULARITY 1,"
    for name, expr in (
        ("res_attr_key", "mapKeys(ResourceAttributes)"),
        ("res_attr_value", "mapValues(ResourceAttributes)"),
        ("scope_attr_key", "mapKeys(ScopeAttributes)"),
        ("scope_attr_value", "mapValues(ScopeAttributes)"),
        ("attr_key", "mapKeys(Attributes)"),
        ("attr_value", "mapValues(Attributes)"),
    )
).rstrip(",")
_BODIES = {
    "gauge": f"""{_HEAD}
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),{_EXEMPLARS}""",
    "sum": f"""{_HEAD}
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),{_EXEMPLARS}
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),""",
    "histogram": f"""{_HEAD}
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),{_EXEMPLARS}{_HISTOGRAM_TAIL}""",
    "exponential_histogram": f"""{_HEAD}
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),{_EXEMPLARS}{_HISTOGRAM_TAIL}""",
    "summary": f"""{_HEAD}
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested (
        Quantile Float64,
        Value Float64
    ) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),""",
}
_TEMPLATE = """CREATE TABLE IF NOT EXISTS {table} ({body}{indexes}
) ENGINE = MergeTree()
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"""


def _table(database: str, table: str) -> str:
    return f"{CLICKHOUSE.ident(database)}.{CLICKHOUSE.ident(table)}"


def metrics_create_statements(database: str) -> list[str]:
    """The exporter's CREATE TABLE statements of its five metrics tables."""
    return [
        _TEMPLATE.format(table=_table(database, METRIC_TABLES[kind]), body=body, indexes=_INDEXES)
        for kind, body in _BODIES.items()
    ]


def metrics_source_sql(database: str, table: str, *, model_name: str, model_version: str) -> str:
    """The exporter's metrics ``table`` as the analysis reads it: times as ``DateTime64(9)``
    whichever type the exporter release created, and the columns faultlens' DuckDB store
    adds (``ModelName`` / ``ModelVersion`` from the given expressions over ``Attributes``,
    then ``ResourceAttributes``; ``ServiceInstanceId``; ``Layout``)."""
    return (
        "SELECT * REPLACE (toDateTime64(StartTimeUnix, 9) AS StartTimeUnix, "
        "toDateTime64(TimeUnix, 9) AS TimeUnix), "
        f"{model_name} AS ModelName, {model_version} AS ModelVersion, "
        "ResourceAttributes['service.instance.id'] AS ServiceInstanceId, "
        "ResourceAttributes['faultlens.layout'] AS Layout "
        f"FROM {_table(database, table)}"
    )
