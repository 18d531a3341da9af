"""The ClickHouse engines: chDB (embedded) and a ClickHouse server (clickhouse-connect).

Both answer ``query(sql, params) -> DataFrame`` in the ClickHouse dialect, binding
``{name:Type}`` parameters; ``open_engine`` (``_engines.py``) picks one from the target.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ._clickhouse_ddl import quote_identifier
from ._dialect import CLICKHOUSE_SETTINGS
from ._engines import Engine, _arrow_to_frame, _converter
from ._target import DbTargetError, Target

__all__ = ["ChDBEngine", "ClickHouseEngine", "clickhouse_param_text"]


def clickhouse_param_text(value: Any) -> str:
    """``value`` in the text form ClickHouse parses a ``{name:Type}`` query parameter from."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        # Top-level parameters use the escaped (TSV) format.
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return _clickhouse_inner(value)


def _clickhouse_inner(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, datetime):
        return "'" + value.isoformat(sep=" ") + "'"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return "[" + ",".join(_clickhouse_inner(v) for v in items) + "]"
    raise TypeError(f"cannot bind {type(value).__name__} as a ClickHouse parameter")


# chDB runs one embedded server per process, on one directory at a time; sessions
# on that directory share it. Count them so the last close frees the directory.
_chdb_lock = threading.Lock()
_chdb_open: dict[str, int] = {}


class ChDBEngine(Engine):
    """chDB on a directory; ``{name:Type}`` parameters, bound as ClickHouse text."""

    def __init__(self, target: Target) -> None:
        from chdb import session

        self.target = target
        path = str(Path(target.path).resolve()) if target.path != ":memory:" else target.path
        with _chdb_lock:
            others = [p for p, n in _chdb_open.items() if n and p != path]
            if others:
                raise DbTargetError(
                    f"--db chdb:{target.path}: chDB already has {others[0]} open in this "
                    "process (one chDB directory per process)"
                )
            self._session = session.Session(path)
            self._converter = _converter()
            for name, value in CLICKHOUSE_SETTINGS.items():
                self._session.query(f"SET {name} = {_clickhouse_inner(value)}")
            _chdb_open[path] = _chdb_open.get(path, 0) + 1
        self._path = path

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        bound = {k: clickhouse_param_text(v) for k, v in (params or {}).items()}
        table = self._session.query(sql, "ArrowTable", params=bound or None)
        return _arrow_to_frame(table, self._converter)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        bound = {k: clickhouse_param_text(v) for k, v in (params or {}).items()}
        self._session.query(sql, "CSV", params=bound or None)

    def insert_arrow(self, table: str, rows: Any) -> None:
        # Through a Parquet file: chDB reads it natively, Nested columns by their
        # flattened names ("Events.Name"), maps and ns timestamps unchanged.
        import tempfile

        import pyarrow.parquet as pq

        if rows.num_rows == 0:
            return
        with tempfile.TemporaryDirectory(prefix="faultlens-chdb-") as scratch:
            path = Path(scratch) / "rows.parquet"
            pq.write_table(rows, path)
            columns = ", ".join(quote_identifier(c) for c in rows.column_names)
            self.execute(
                f"INSERT INTO {self.table(table)} ({columns}) "
                f"SELECT {columns} FROM file({{path:String}}, Parquet)",
                {"path": str(path)},
            )

    def columns(self, table: str) -> frozenset[str]:
        frame = self.query(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String}",
            {"d": self.target.database, "t": table},
        )
        return frozenset(frame["name"]) if len(frame) else frozenset()

    def __del__(self) -> None:
        # An Analysis dropped without close() (the CLI, a notebook cell) frees the
        # directory, so the process can open another chdb: store afterwards.
        if getattr(self, "_session", None) is not None:
            self.close()

    def close(self) -> None:
        if self._session is None:
            return
        self._session.close()
        self._session = None
        self._converter.close()
        with _chdb_lock:
            _chdb_open[self._path] -= 1


def _short(exc: BaseException) -> str:
    """The operative part of a driver error (urllib3 nests the errno deep inside)."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    if errno:
        return errno.group(0)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


class ClickHouseEngine(Engine):
    """A ClickHouse server through clickhouse-connect; ``{name:Type}`` bound server-side."""

    def __init__(self, target: Target, *, read_only: bool) -> None:
        import clickhouse_connect

        self.target = target
        self._converter = _converter()
        settings: dict[str, Any] = dict(CLICKHOUSE_SETTINGS)
        if read_only:
            settings["readonly"] = 2
        try:
            self._client = clickhouse_connect.get_client(
                host=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                database=target.database,
                secure=target.secure,
                settings=settings,
            )
        except Exception as exc:  # connection refused, auth, unknown database
            raise DbTargetError(f"--db {target}: cannot connect: {_short(exc)}") from None

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        table = self._client.query_arrow(sql, parameters=dict(params or {}))
        return _arrow_to_frame(table, self._converter)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._client.command(sql, parameters=dict(params or {}))

    def insert_arrow(self, table: str, rows: Any) -> None:
        self._client.insert_arrow(table, rows, database=self.target.database)

    def columns(self, table: str) -> frozenset[str]:
        frame = self.query(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String}",
            {"d": self.target.database, "t": table},
        )
        return frozenset(frame["name"]) if len(frame) else frozenset()

    def close(self) -> None:
        self._client.close()
        self._converter.close()
