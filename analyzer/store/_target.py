"""``--db`` parsed: which engine holds the store, where, and what a caller may ask of it.

Three forms:

- a DuckDB file path (the embedded default, written by ``faultlens ingest``);
- ``chdb:PATH[?database=NAME]``: chDB, ClickHouse's engine embedded in Python, over the
  tables the OpenTelemetry Collector's ClickHouse exporter writes;
- ``clickhouse://user:pass@host:port/database[?database=NAME&secure=1]``: a ClickHouse
  server (HTTP interface, port 8123, or 8443 with ``secure=1`` / ``clickhouses://``).

The CLI, the dashboard and the analysis ask a :class:`Target` their engine questions
(is it a file? where does the app open it? has it changed?) instead of matching kinds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from ._clickhouse_ddl import DEFAULT_DATABASE
from ._write import StoreError

__all__ = ["DbTargetError", "EngineKind", "Target", "parse_db"]

EngineKind = Literal["duckdb", "chdb", "clickhouse"]


class DbTargetError(StoreError):
    """A ``--db`` value that cannot be parsed or opened (a user error, one line)."""


@dataclass(frozen=True)
class Target:
    """A parsed ``--db``: which engine, where, and which database holds the tables."""

    kind: EngineKind
    path: str = ""  # DuckDB file or chDB directory
    database: str | None = None  # ClickHouse database; None for DuckDB
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    secure: bool = False
    text: str = field(default="", repr=False, compare=False)  # the --db as given

    @property
    def dialect(self) -> Literal["duckdb", "clickhouse"]:
        return "duckdb" if self.kind == "duckdb" else "clickhouse"

    @property
    def is_duckdb(self) -> bool:
        """A DuckDB file: faultlens' own store, with stored facts."""
        return self.kind == "duckdb"

    @property
    def is_server(self) -> bool:
        """A ClickHouse server: nothing local to check, results at most a minute old."""
        return self.kind == "clickhouse"

    @property
    def collector_tables(self) -> bool:
        """The OpenTelemetry Collector's ClickHouse exporter writes its tables (chDB, server)."""
        return self.kind != "duckdb"

    @property
    def single_threaded(self) -> bool:
        """One query at a time in the whole process (chDB's embedded engine)."""
        return self.kind == "chdb"

    def missing(self) -> str | None:
        """Why there is no store here (one line), or None when there may be one."""
        if self.kind == "chdb" and not Path(self.path).is_dir():
            return f"{self.text or self.path}: no such chDB directory."
        if self.kind == "duckdb" and not Path(self.path).is_file():
            return f"{self.text or self.path}: no such store; run `faultlens ingest` first."
        return None

    def resolved(self) -> str:
        """The ``--db`` another process opens: local paths made absolute."""
        if self.kind == "duckdb":
            return str(Path(self.path).resolve())
        if self.kind == "chdb":
            return f"chdb:{Path(self.path).resolve()}?database={self.database}"
        return self.text  # a server's URL as given, password included: never printed

    def data_version(self) -> int:
        """Changes when the data may have: a file's modification time (ns), the latest of a
        chDB directory's parts, or the current minute for a server; 0 when there is none."""
        if self.kind == "clickhouse":
            return int(time.time() // 60) * 60 * 10**9
        root = Path(self.path)
        if self.kind == "chdb":
            if not root.is_dir():
                return 0
            return max(
                (p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()),
                default=root.stat().st_mtime_ns,
            )
        try:
            return root.stat().st_mtime_ns
        except OSError:
            return 0

    def __str__(self) -> str:  # never shows the password
        if self.kind == "duckdb":
            return self.path
        if self.kind == "chdb":
            return f"chdb:{self.path}?database={self.database}"
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.database}"


def _query_database(query: str, db: str) -> str | None:
    values = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(values) - {"database", "secure"})
    if unknown:
        raise DbTargetError(f"--db {db!r}: unknown option {unknown[0]!r} (known: database, secure)")
    names = values.get("database")
    if names is not None and not names[-1]:
        raise DbTargetError(f"--db {db!r}: ?database= needs a name")
    return names[-1] if names else None


def parse_db(db: str | Path) -> Target:
    """Parse a ``--db`` value; raises ``DbTargetError`` naming the value when it is malformed."""
    text = str(db)
    if text.startswith("chdb:"):
        rest = text[len("chdb:") :]
        path, _, query = rest.partition("?")
        if not path:
            raise DbTargetError(f"--db {text!r}: chdb: needs a directory, e.g. chdb:.faultlens/ch")
        database = _query_database(query, text) or DEFAULT_DATABASE
        return Target(kind="chdb", path=path, database=database, text=text)
    if text.startswith(("clickhouse://", "clickhouses://")):
        parts = urlsplit(text)
        values = parse_qs(parts.query)
        secure = parts.scheme == "clickhouses" or values.get("secure", ["0"])[-1].lower() in (
            "1",
            "true",
            "yes",
        )
        if not parts.hostname:
            raise DbTargetError(f"--db {text!r}: no host, e.g. clickhouse://default@localhost:8123")
        try:
            port = parts.port or (8443 if secure else 8123)
        except ValueError:
            raise DbTargetError(f"--db {text!r}: the port is not a number") from None
        path_db = unquote(parts.path.strip("/")) or None
        database = _query_database(parts.query, text) or path_db or DEFAULT_DATABASE
        return Target(
            kind="clickhouse",
            database=database,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
            secure=secure,
            text=text,
        )
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise DbTargetError(
            f"--db {text!r}: unknown scheme {scheme!r} (a DuckDB file, chdb:PATH or clickhouse://)"
        )
    return Target(kind="duckdb", path=text, text=text)
