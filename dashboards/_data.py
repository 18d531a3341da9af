"""The dashboard's one way to reach the analyzer: a cached connection, cached results.

The connection (a read-only ``faultlens.analyzer.Analysis``) comes from
``st.cache_resource``; every result comes from ``st.cache_data`` keyed on the
database (path and file version), the run and the call's arguments. The
connection is passed as ``_con`` so Streamlit does not hash it.

Pages never build SQL: they name an analyzer method and its arguments.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from ..analyzer import DEFAULT_DB

__all__ = [
    "DEFAULT_DB",
    "Connection",
    "Filters",
    "as_text",
    "connection",
    "collector_tables",
    "contrast",
    "incidents",
    "db_path",
    "db_version",
    "query",
    "served",
    "sibling_run",
    "store_label",
]


def db_path() -> str:
    """The store the dashboard reads: ``FAULTLENS_DB``, else the default file."""
    return os.environ.get("FAULTLENS_DB") or str(DEFAULT_DB)


# chDB runs one embedded server per process: its sessions (one per run) take turns.
_CHDB_LOCK = threading.Lock()


def _target(db: str) -> Any | None:
    """The analyzer's own reading of ``--db``; None when it cannot be read."""
    from ..analyzer import DbTargetError, parse_db

    try:
        return parse_db(db)
    except DbTargetError:
        return None


def collector_tables(db: str) -> bool:
    """Whether ``db`` holds the OpenTelemetry Collector's ClickHouse tables."""
    target = _target(db)
    return target is not None and target.collector_tables


def store_label(db: str) -> str:
    """The store as the page shows it: a ClickHouse URL without its password."""
    target = _target(db)
    if target is None:
        return db.partition("://")[0] + "://..." if "://" in db else db
    return str(target)


def served(db: str) -> dict[str, Any] | None:
    """The health of the ``faultlens serve`` holding ``db`` (its commits, the newest span
    it analysed), or None when no server holds it."""
    from ..analyzer.serve._client import server_for

    server = server_for(db)
    if server is None:
        return None
    return {**server.get("/api/health").json(), "url": server.info.url}


def db_version(db: str, *, health: dict[str, Any] | None = None) -> int:
    """Part of every cache key, so new data shows; 0 when there is no store.

    A store ``faultlens serve`` holds: the count of its live detection cycles (+1), as the
    server reports it (``health``, when the caller has just asked it: :func:`served`). A
    cycle runs only when spans were committed since the last one: the pages rerun when
    detection has looked at new data (at most once a detection interval, not once a
    commit), and what they draw agrees with the incidents the server has opened.

    A DuckDB file: its modification time (ns). A chDB directory (``chdb:PATH``): the
    latest modification time of what it holds (each insert writes new parts). A
    ClickHouse server (``clickhouse://``), which the Collector keeps writing: the current
    minute, so results are at most a minute old.
    """
    target = _target(db)
    if target is not None and target.is_duckdb:
        if health is None:
            health = served(db)
        if health is not None:
            return int(health["detection_cycles"]) + 1
    return 0 if target is None else target.data_version()


@dataclass(frozen=True)
class Filters:
    """What the sidebar chose; every cached result is keyed on it."""

    db: str
    version: int
    run: str | None
    start_ns: int | None = None
    end_ns: int | None = None
    bucket_s: int = 5

    @property
    def key(self) -> tuple[str, int, str | None]:
        """The part of the filters that names the data (not the view of it)."""
        return (self.db, self.version, self.run)


@dataclass(frozen=True)
class Connection:
    """An analyzer handle (its own DuckDB connection) and the lock that guards it.

    Streamlit serves every browser session from its own thread; one DuckDB
    connection must not run two queries at once. Different runs have
    different connections, so they may be analysed in parallel.
    """

    analysis: Any
    lock: threading.Lock


@st.cache_resource(show_spinner=False, max_entries=16)
def connection(db: str, version: int, run: str | None) -> Connection:
    """A read-only analyzer over ``db`` restricted to ``run`` (None: the whole store).

    While ``faultlens serve`` holds the store, the server's answers for this ``version``
    (its detection cycle): it answers every call of the page from one analysis."""
    from faultlens import analyzer

    from ..analyzer.serve._client import ServedAnalysis, server_for

    target = _target(db)
    lock = _CHDB_LOCK if target is not None and target.single_threaded else threading.Lock()
    server = server_for(db) if target is not None and target.is_duckdb else None
    if server is not None:
        return Connection(ServedAnalysis(server, run=run, generation=version), lock)
    return Connection(analyzer.open(db, read_only=True, run=run), lock)


@st.cache_data(show_spinner=False, max_entries=1024)
def _cached(_con: Connection, key: tuple, method: str, args: tuple, kwargs: dict) -> Any:
    del key  # only part of the cache key
    with _con.lock:
        return getattr(_con.analysis, method)(*args, **kwargs)


def query(con: Connection, filters: Filters, method: str, /, *args: Any, **kwargs: Any) -> Any:
    """``con.analysis.<method>(*args, **kwargs)``, cached on the database, run and arguments."""
    return _cached(con, filters.key, method, args, kwargs)


def incidents(con: Connection, filters: Filters) -> list[dict[str, Any]]:
    """The run's incidents in the shape of incidents.schema.json (the CLI's JSON)."""
    return [i.to_dict() for i in query(con, filters, "incidents")]


def sibling_run(filters: Filters) -> str | None:
    """The other layout's run of the chosen run's scenario, when the store holds one."""
    store = Filters(filters.db, filters.version, None)
    runs = query(connection(filters.db, filters.version, None), store, "runs")
    scenario = (filters.run or "").partition("/")[0]
    others = [r for r in runs["run"] if r != filters.run and r.partition("/")[0] == scenario]
    return others[0] if others else None


def _incidents_of(con: Connection) -> None:
    with con.lock:
        con.analysis.incidents()


@st.cache_data(show_spinner=False, max_entries=64)
def _contrast(_con: Connection, _other: Connection | None, key: tuple, other: str | None) -> Any:
    del key, other  # only part of the cache key
    if _other is None:
        with _con.lock:
            return _con.analysis.contrast(None)
    # Each run's first analysis is the slow part: run both at once (DuckDB frees the GIL).
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(_incidents_of, (_con, _other)))
    # One lock order (no deadlock); chDB's sessions share one lock, taken once.
    locks = list({id(c.lock): c.lock for c in sorted((_con, _other), key=id)}.values())
    with contextlib.ExitStack() as held:
        for lock in locks:
            held.enter_context(lock)
        return _con.analysis.contrast(_other.analysis)


def contrast(con: Connection, filters: Filters) -> pd.DataFrame:
    """The analyzer's layout contrast for the chosen run's scenario, columns labelled.

    Beside the chosen run: the other layout's actual run when the store holds
    one, and the monolith's per-model projection whenever it has one.
    """
    other = sibling_run(filters)
    other_con = None if other is None else connection(filters.db, filters.version, other)
    return _contrast(con, other_con, filters.key, other)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose non-scalar cells (maps, lists, dicts) are plain text.

    Attribute values are data, never markup: the dataframe widget shows text.
    """
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(_cell_text)
    return out


def _cell_text(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        return "; ".join(str(v) for v in items)
    return str(value)
