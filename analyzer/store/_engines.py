"""Where the store lives: ``--db`` parsed into an engine with one query interface.

Three forms of ``--db``:

- a DuckDB file path (the embedded default, written by ``faultlens ingest``);
- ``chdb:PATH[?database=NAME]``: chDB, ClickHouse's engine embedded in Python,
  over the tables the OpenTelemetry Collector's ClickHouse exporter writes;
- ``clickhouse://user:pass@host:port/database[?database=NAME&secure=1]``: a
  ClickHouse server through clickhouse-connect (HTTP interface, port 8123, or
  8443 with ``secure=1`` / ``clickhouses://``).

ClickHouse tables are looked up in database ``otel`` (the exporter's default)
unless the URL names another, by path or ``?database=``.

Every engine answers ``query(sql, params) -> DataFrame`` with the SQL written
in its own ``dialect`` (``duckdb`` or ``clickhouse``): DuckDB binds ``$name``,
ClickHouse binds ``{name:Type}``. What differs between the two dialects lives
in ``_dialect.py``, not here.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ._clickhouse_ddl import (
    DEFAULT_DATABASE,
    faultlens_columns_sql,
    quote_identifier,
)
from ._clickhouse_metrics import METRIC_COLUMNS
from ._dialect import (
    CLICKHOUSE,
    DUCKDB,
    Dialect,
    clickhouse_statements,
)
from ._target import DbTargetError, Target, parse_db

__all__ = [
    "DbTargetError",
    "Engine",
    "EngineConnection",
    "QueryResult",
    "analysis_connection",
    "Target",
    "open_engine",
    "parse_db",
]

MODEL_COLUMNS = ("ModelName", "ModelVersion")


def _arrow_to_frame(table: Any, converter: Any) -> pd.DataFrame:
    """An Arrow result as the DataFrame DuckDB would have returned for it.

    Both engines then hand the analysis the same pandas types (missing text,
    nullable integers, maps as dicts, naive ns timestamps in UTC).
    """
    import pyarrow as pa

    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            column = column.cast(pa.timestamp(field.type.unit))
        columns.append(column)
    naive = pa.table(columns, names=table.column_names)
    return converter.from_arrow(naive).df()


def _converter() -> Any:
    import duckdb

    return duckdb.connect()


class Engine(ABC):
    """One store behind one interface; subclasses bind parameters their own way."""

    target: Target

    @property
    def dialect(self) -> Literal["duckdb", "clickhouse"]:
        return self.target.dialect

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one statement in this engine's dialect with bound ``params``; rows as a frame."""

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one statement for its effect (DDL, inserts)."""
        self.query(sql, params)

    @abstractmethod
    def insert_arrow(self, table: str, rows: Any) -> None:
        """Append an Arrow table's rows to ``table`` (columns matched by name)."""

    def table(self, name: str) -> str:
        """``name`` qualified and quoted for this engine."""
        if self.target.database is None:
            return '"' + name.replace('"', '""') + '"'
        return f"{quote_identifier(self.target.database)}.{quote_identifier(name)}"

    @abstractmethod
    def columns(self, table: str) -> frozenset[str]:
        """Column names of ``table``; empty when the table does not exist."""

    @property
    def has_model_columns(self) -> bool:
        """True when ``otel_traces`` and ``otel_logs`` both carry ModelName and ModelVersion."""
        return all(
            set(MODEL_COLUMNS) <= self.columns(table) for table in ("otel_traces", "otel_logs")
        )

    @abstractmethod
    def close(self) -> None:
        """Release the store."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target}>"


class DuckDBEngine(Engine):
    """A DuckDB connection; ``$name`` parameters."""

    def __init__(self, target: Target, connection: Any) -> None:
        self.target = target
        self.connection = connection

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self.connection.execute(sql, dict(params or {})).df()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.connection.execute(sql, dict(params or {}))

    def insert_arrow(self, table: str, rows: Any) -> None:
        self.connection.register("fl_insert_rows", rows)
        try:
            self.connection.execute(
                f"INSERT INTO {self.table(table)} BY NAME SELECT * FROM fl_insert_rows"
            )
        finally:
            self.connection.unregister("fl_insert_rows")

    def columns(self, table: str) -> frozenset[str]:
        rows = self.connection.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = $t AND table_schema = current_schema()",
            {"t": table},
        ).fetchall()
        return frozenset(name for (name,) in rows)

    def close(self) -> None:
        self.connection.close()


class QueryResult:
    """What ``EngineConnection.execute`` returns: the DuckDB result methods the analysis uses."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def df(self) -> pd.DataFrame:
        return self._frame

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._frame.itertuples(index=False, name=None))

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None


_NO_RESULT = re.compile(r"^\s*(CREATE|DROP|SET|INSERT|ALTER)\b", re.IGNORECASE)


class EngineConnection:
    """An engine shaped like a DuckDB connection: ``execute(sql, params).df()``.

    The analysis writes its SQL once, with ``_dialect`` fragments; on ClickHouse
    ``prepare`` (``Dialect.prepare``) turns each statement into what runs there.
    """

    def __init__(self, engine: Engine, prepare: Any = None) -> None:
        self.engine = engine
        self._prepare = prepare

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        statements = self._prepare(sql) if self._prepare else [sql]
        frame = pd.DataFrame()
        for statement in statements:
            if _NO_RESULT.match(statement):
                self.engine.execute(statement, params)
            else:
                frame = self.engine.query(statement, params)
        return QueryResult(frame)

    def close(self) -> None:
        self.engine.close()


def open_engine(db: str | Path | Target, *, read_only: bool = True) -> Engine:
    """Open the store ``db`` names (see the module docstring for the three forms).

    ``read_only`` opens DuckDB read-only and sets ``readonly=2`` on a ClickHouse
    server session. chDB opens its directory as is: it is the caller's own
    embedded store, and the analysis issues only SELECTs.
    """
    target = db if isinstance(db, Target) else parse_db(db)
    if target.kind == "duckdb":
        import duckdb

        path = Path(target.path)
        if read_only and not path.exists():
            raise DbTargetError(f"--db {target.path}: no such DuckDB file")
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            raise DbTargetError(f"--db {target.path}: {str(exc).splitlines()[0]}") from None
        return DuckDBEngine(target, connection)
    from ._clickhouse_engines import ChDBEngine, ClickHouseEngine

    if target.kind == "chdb":
        return ChDBEngine(target)
    return ClickHouseEngine(target, read_only=read_only)


def analysis_connection(
    db: str | Path | Target, *, read_only: bool = True
) -> tuple[EngineConnection, Dialect]:
    """A ClickHouse store as the analysis reads it: a DuckDB-shaped connection and its dialect.

    The exporter's tables are read with faultlens' store columns added
    (``faultlens_columns_sql``: the materialized ModelName / ModelVersion when
    the optional DDL ran, else the alias list inline), and every statement goes
    through ``_dialect.clickhouse_statements``. Raises ``DbTargetError`` when
    the exporter's tables are not there.
    """
    engine = open_engine(db, read_only=read_only)
    if engine.dialect == "duckdb":
        return EngineConnection(engine), DUCKDB
    database = engine.target.database or DEFAULT_DATABASE
    missing = [t for t in ("otel_traces", "otel_logs") if not engine.columns(t)]
    if missing:
        engine.close()
        raise DbTargetError(
            f"--db {engine.target}: no table {database}.{missing[0]} "
            "(the Collector's ClickHouse exporter creates it; see docs/scale-out.md)"
        )
    model_columns = engine.has_model_columns
    # The metrics tables too, present or not: a query of a missing one fails naming it,
    # as on a DuckDB store written before metrics existed (the cost analysis says none).
    sources = {
        t: faultlens_columns_sql(database, table=t, model_columns=model_columns)
        for t in ("otel_traces", "otel_logs", *METRIC_COLUMNS)
    }

    def describe(table: str) -> list[str]:
        return list(engine.query(f"DESCRIBE TABLE {quote_identifier(table)}")["name"])

    def prepare(sql: str) -> list[str]:
        return clickhouse_statements(sql, sources=sources, describe=describe)

    return EngineConnection(engine, prepare), CLICKHOUSE
