"""The OpenTelemetry Collector ClickHouse exporter's tables, and faultlens' optional columns.

``otel_traces`` and ``otel_logs`` below are the exporter's own DDL
(opentelemetry-collector-contrib, ``exporter/clickhouseexporter/internal/
sqltemplates/traces_table.sql`` and ``logs_table.sql``): the same column names,
types, codecs, skip indexes, ``MergeTree`` engine, daily partitions and sort
keys. faultlens reads these tables as the exporter writes them; it creates
them only for tests and for the documented setup (docs/scale-out.md), which
is what the exporter itself does with ``create_schema: true``.

``model_columns_statements`` is the optional DDL of docs/scale-out.md: it adds
``ModelName`` / ``ModelVersion`` as MATERIALIZED columns that resolve model
identity through DESIGN.md's alias list at insert time, so the analysis scans
two low-cardinality columns instead of two maps. Without them the analysis
evaluates the very same expressions (``model_name_sql`` /
``model_version_sql``) inline.

The exporter's metrics tables are in ``_clickhouse_metrics.py``; ``create_statements``,
``faultlens_columns_sql`` and ``load_from_duckdb`` cover them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..decode._identity import (
    INVOCATION_KEYS,
    REQUESTED_KEYS,
    SERVED_KEYS,
    SERVED_ONLY_KEYS,
    VERSION_KEY,
)
from ._clickhouse_metrics import METRIC_COLUMNS, metrics_create_statements, metrics_source_sql
from ._dialect import CLICKHOUSE

if TYPE_CHECKING:
    import pyarrow as pa

    from ._engines import Engine

__all__ = [
    "DEFAULT_DATABASE",
    "LOG_COLUMNS",
    "TRACE_COLUMNS",
    "create_statements",
    "exporter_rows",
    "faultlens_columns_sql",
    "load_from_duckdb",
    "model_columns_statements",
    "model_name_sql",
    "model_version_sql",
    "quote_identifier",
]

DEFAULT_DATABASE = "otel"

# The exporter's traces table (create_schema: true, ttl: 0).
_TRACES = """
CREATE TABLE IF NOT EXISTS {table} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

# The exporter's logs table (create_schema: true, ttl: 0), EventName included
# as in current exporter releases.
_LOGS = """
CREATE TABLE IF NOT EXISTS {table} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = MergeTree()
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

# The alias list is the decoder's own (decode/_columns.py), in the same order.
_VERSION_KEY = VERSION_KEY


def quote_identifier(name: str) -> str:
    """``name`` as a ClickHouse identifier (the project's one quoter)."""
    return CLICKHOUSE.ident(name)


def _literal(text: str) -> str:
    return CLICKHOUSE.literal(text)


def _get(attrs: str, key: str) -> str:
    # A missing map key reads as '' in ClickHouse, so "absent" and "empty" are one case.
    return f"{attrs}[{_literal(key)}]"


def _own_name(attrs: str) -> str:
    """The alias list over one map; NULL when no key names a model."""
    candidates = [_get(attrs, key) for key in REQUESTED_KEYS]
    # The first invocation-parameters text whose "model" is a JSON string decides,
    # even when that string is empty ({"model": 7} names no model), as at ingest.
    arms = [
        f"JSONType({_get(attrs, key)}, 'model') = 'String', "
        f"JSONExtractString({_get(attrs, key)}, 'model')"
        for key in INVOCATION_KEYS
    ]
    candidates.append(f"multiIf({', '.join(arms)}, '')")
    candidates += [_get(attrs, key) for key in SERVED_KEYS]
    arms = ", ".join(f"{e} != '', {e}" for e in candidates)
    return f"multiIf({arms}, NULL)"


def _own_version(attrs: str) -> str:
    """``ml.model.version``, else the first served name that differs from the resolved name."""
    name = _own_name(attrs)
    arms = [f"{_get(attrs, _VERSION_KEY)} != '', {_get(attrs, _VERSION_KEY)}"]
    for key in SERVED_ONLY_KEYS:
        served = _get(attrs, key)
        arms.append(f"{served} != '' AND {served} != {name}, {served}")
    return f"multiIf({', '.join(arms)}, NULL)"


def model_name_sql(attrs: str = "SpanAttributes", resource: str = "ResourceAttributes") -> str:
    """ClickHouse expression: the model name through the alias list, NULL when none.

    The record's own attributes first; when they name no model, the resource's
    (a process that serves one model may say so once, on its resource).
    """
    return f"coalesce({_own_name(attrs)}, {_own_name(resource)})"


def model_version_sql(attrs: str = "SpanAttributes", resource: str = "ResourceAttributes") -> str:
    """ClickHouse expression: the version, from wherever ``model_name_sql`` took the name."""
    return f"if({_own_name(attrs)} IS NOT NULL, {_own_version(attrs)}, {_own_version(resource)})"


def faultlens_columns_sql(
    database: str = DEFAULT_DATABASE, *, table: str, model_columns: bool
) -> str:
    """The exporter's ``table`` with the columns faultlens' own store materializes at ingest.

    ``ModelName`` / ``ModelVersion`` (the optional materialized columns when
    present, else the alias list inline), ``ServiceInstanceId``, ``HttpRoute``
    and ``Layout`` (``_schema.py``), computed as ingest computes them, so the
    analysis SQL reads the same column names on both engines. A metrics table
    (``otel_metrics_*``) gets its data point's model identity, instance and layout.
    """
    if table in METRIC_COLUMNS:
        return metrics_source_sql(
            database,
            table,
            model_name=model_name_sql("Attributes"),
            model_version=model_version_sql("Attributes"),
        )
    attrs = "SpanAttributes" if table == "otel_traces" else "LogAttributes"
    if model_columns:  # MATERIALIZED columns are not part of SELECT *
        model = "ModelName, ModelVersion"
    else:
        model = f"{model_name_sql(attrs)} AS ModelName, {model_version_sql(attrs)} AS ModelVersion"
    extra = ["ResourceAttributes['service.instance.id'] AS ServiceInstanceId"]
    if table == "otel_traces":
        extra += [
            "if(SpanAttributes['http.route'] != '', SpanAttributes['http.route'], "
            "SpanAttributes['url.template']) AS HttpRoute",
            "ResourceAttributes['faultlens.layout'] AS Layout",
        ]
    return f"SELECT *, {model}, {', '.join(extra)} FROM {_table(database, table)}"


def _table(database: str, table: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def create_statements(
    database: str = DEFAULT_DATABASE,
    *,
    traces_table: str = "otel_traces",
    logs_table: str = "otel_logs",
) -> list[str]:
    """The exporter's ``CREATE DATABASE`` / ``CREATE TABLE`` statements, in order: traces,
    logs and the five metrics tables."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}",
        _TRACES.format(table=_table(database, traces_table)).strip(),
        _LOGS.format(table=_table(database, logs_table)).strip(),
        *metrics_create_statements(database),
    ]


def model_columns_statements(
    database: str = DEFAULT_DATABASE,
    *,
    traces_table: str = "otel_traces",
    logs_table: str = "otel_logs",
    materialize_existing: bool = True,
) -> list[str]:
    """The optional DDL: materialized ``ModelName`` / ``ModelVersion`` on both tables.

    New rows get the columns at insert; ``materialize_existing`` also rewrites
    the parts already on disk (``MATERIALIZE COLUMN``, a background mutation
    on a server; chDB runs it synchronously with ``mutations_sync``).
    """
    statements = []
    for table, attrs in ((traces_table, "SpanAttributes"), (logs_table, "LogAttributes")):
        target = _table(database, table)
        statements.append(
            f"ALTER TABLE {target}"
            f" ADD COLUMN IF NOT EXISTS ModelName LowCardinality(Nullable(String))"
            f" MATERIALIZED {model_name_sql(attrs)},"
            f" ADD COLUMN IF NOT EXISTS ModelVersion LowCardinality(Nullable(String))"
            f" MATERIALIZED {model_version_sql(attrs)}"
        )
        if materialize_existing:
            for column in ("ModelName", "ModelVersion"):
                statements.append(
                    f"ALTER TABLE {target} MATERIALIZE COLUMN {column} SETTINGS mutations_sync = 2"
                )
    return statements


# The columns the exporter writes, in its INSERT order (TimestampTime is a DEFAULT).
def _words(text: str) -> list[str]:
    return text.split()


TRACE_COLUMNS = tuple(
    _words(
        "Timestamp TraceId SpanId ParentSpanId TraceState SpanName SpanKind ServiceName "
        "ResourceAttributes ScopeName ScopeVersion SpanAttributes Duration StatusCode "
        "StatusMessage Events.Timestamp Events.Name Events.Attributes Links.TraceId "
        "Links.SpanId Links.TraceState Links.Attributes"
    )
)
LOG_COLUMNS = tuple(
    _words(
        "Timestamp TraceId SpanId TraceFlags SeverityText SeverityNumber ServiceName Body "
        "ResourceSchemaUrl ResourceAttributes ScopeSchemaUrl ScopeName ScopeVersion "
        "ScopeAttributes LogAttributes EventName"
    )
)


def exporter_rows(
    con: Any, table: str, *, legacy_enums: bool = False, where: str = "TRUE"
) -> pa.Table:
    """Rows of a faultlens DuckDB table as the Collector's exporter writes them.

    faultlens' own columns (ModelName, HttpRoute, ...) are left out: the
    exporter does not write them. ``legacy_enums`` spells SpanKind and
    StatusCode as older exporter releases did (``SPAN_KIND_SERVER``,
    ``STATUS_CODE_ERROR``). A metrics table's rows come in time order.
    """
    wanted = METRIC_COLUMNS.get(table) or (TRACE_COLUMNS if table == "otel_traces" else LOG_COLUMNS)
    order = "TimeUnix, PointId" if table in METRIC_COLUMNS else "Timestamp"
    present = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $t",
            {"t": table},
        ).fetchall()
    }
    select = []
    for column in wanted:
        quoted = '"' + column + '"'
        if column not in present:
            continue
        if legacy_enums and column == "SpanKind":
            quoted = "'SPAN_KIND_' || upper(SpanKind)"
        elif legacy_enums and column == "StatusCode":
            quoted = "'STATUS_CODE_' || upper(StatusCode)"
        select.append(f'{quoted} AS "{column}"')
    sql = f"SELECT {', '.join(select)} FROM {table} WHERE {where} ORDER BY {order}"
    return con.sql(sql).to_arrow_table()


def load_from_duckdb(
    source: str | Path,
    engine: Engine,
    *,
    legacy_enums: bool = False,
    model_columns: bool = False,
) -> dict[str, int]:
    """Copy a faultlens DuckDB store into the exporter's tables on ``engine``.

    What the Collector would have written for the same telemetry: the
    exporter's DDL (created when missing), its columns, its enum spelling,
    attribute values as strings. ``model_columns`` first applies the optional
    DDL, so the materialized ModelName / ModelVersion are computed at insert.
    Returns the rows copied per table: traces and logs, and each metrics table
    that holds any. Used by tests and the benchmark, and by anyone who wants to
    try the ClickHouse path on a DuckDB store.
    """
    import duckdb

    database = engine.target.database or DEFAULT_DATABASE
    for statement in create_statements(database):
        engine.execute(statement)
    if model_columns:
        for statement in model_columns_statements(database, materialize_existing=False):
            engine.execute(statement)
    copied = {}
    with duckdb.connect(str(source), read_only=True) as con:
        present = {
            name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        for table in ("otel_traces", "otel_logs", *METRIC_COLUMNS):
            if table not in present:  # a store written before metrics existed
                continue
            rows = exporter_rows(con, table, legacy_enums=legacy_enums)
            engine.insert_arrow(table, rows)
            if rows.num_rows or table in ("otel_traces", "otel_logs"):
                copied[table] = rows.num_rows
    return copied


def ddl_text(database: str = DEFAULT_DATABASE, *, tables: bool = False) -> str:
    """What ``faultlens clickhouse ddl`` prints: the optional model columns, or with
    ``tables`` the exporter's own CREATE statements, metrics tables included
    (docs/scale-out.md)."""
    statements = create_statements(database) if tables else model_columns_statements(database)
    return ";\n\n".join(statements) + ";"
