"""The server's reads: analysis calls on cursors of its own DuckDB instance.

DuckDB lets one process hold many connections to one database: each read gets a fresh
cursor (its temporary fact tables die with it) and sees the last committed data, while
the writer thread goes on committing. Reads take turns two at a time, so that a burst of
them leaves the writer the CPU it needs, and their results are cached per commit count
(pages that refresh while nothing arrives cost nothing).

Results travel typed: a frame as an Arrow IPC stream, a plotly figure as its JSON,
incidents as the contract's JSON (``faultlens.analyzer.serve._client`` reads them back).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import duckdb
import orjson
import pandas as pd
import pyarrow as pa

from .._settings import TimeWindow
from ..analysis._cost import Prices
from ..present._api import Analysis, incidents_json

__all__ = ["FRAMES", "FIGURES", "Reads", "frame_bytes", "frame_from_bytes"]

# Analysis methods a client may call, by the kind of their result.
FRAMES = frozenset(
    {
        "runs",
        "layouts",
        "timeseries",
        "incidents_frame",
        "candidates",
        "blast_radius",
        "isolation",
        "update_coupling",
        "library_coupling",
        "spans",
        "trace",
        "logs",
        "error_logs",
        "contrast",
    }
)
FIGURES = frozenset(
    {"fig_timeseries", "fig_incident_timeline", "fig_blast_radius", "fig_waterfall"}
)
INCIDENTS = frozenset({"incidents", "incident"})
ARROW = "application/vnd.apache.arrow.stream"
PLOTLY = "application/vnd.plotly.v1+json"


def frame_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def frame_from_bytes(data: bytes) -> pd.DataFrame:
    return pa.ipc.open_stream(data).read_all().to_pandas()


def _priced(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``price_vcpu_hour``/``price_gb_hour`` (the API's query) as the ``prices`` argument."""
    out = {k: v for k, v in kwargs.items() if not k.startswith("price_")}
    vcpu, gb = kwargs.get("price_vcpu_hour"), kwargs.get("price_gb_hour")
    if vcpu is not None or gb is not None:
        out["prices"] = Prices(vcpu_hour=vcpu, gb_hour=gb)
    return out


class Reads:
    """Analysis calls on fresh cursors of ``root`` (a connection of the server's store)."""

    def __init__(
        self,
        root: duckdb.DuckDBPyConnection,
        *,
        generation: Callable[[], int],
        parallel: int = 2,
        cache_items: int = 128,
    ) -> None:
        self.root = root
        self.generation = generation
        self._root_lock = threading.Lock()
        self._turns = threading.BoundedSemaphore(parallel)
        self._cache: OrderedDict[bytes, tuple[str, bytes]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_items = cache_items

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._root_lock:  # one connection object: hand out cursors one at a time
            return self.root.cursor()

    def analysis(self, con: Any, *, run: str | None, window: TimeWindow) -> Analysis:
        return Analysis(con, run=run, window=window)

    def call(self, request: dict[str, Any]) -> tuple[str, bytes]:
        """(media type, body) of ``request``: {method, args, kwargs, run, since, until,
        other_run, slo_ms}; cached until the next commit."""
        key = orjson.dumps([self.generation(), request], option=orjson.OPT_SORT_KEYS)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        result = self._compute(request)
        with self._cache_lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_items:
                self._cache.popitem(last=False)
        return result

    def _compute(self, request: dict[str, Any]) -> tuple[str, bytes]:
        method = request["method"]
        if method not in FRAMES | FIGURES | INCIDENTS | {"incidents_json", "report"}:
            raise KeyError(f"the server does not answer {method!r}")
        args, kwargs = list(request.get("args") or []), dict(request.get("kwargs") or {})
        window = TimeWindow(request.get("since"), request.get("until"))
        with self._turns:
            cons = [self.cursor()]
            try:
                a = self.analysis(cons[0], run=request.get("run"), window=window)
                if method == "contrast" and request.get("other_run") is not None:
                    cons.append(self.cursor())
                    args = [self.analysis(cons[1], run=request["other_run"], window=window)]
                if method == "incidents":
                    doc = {"incidents": [i.to_dict() for i in a.incidents(**kwargs)]}
                    return "application/json", orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
                if method == "incidents_json":
                    doc = incidents_json(a, **_priced(kwargs))
                    return "application/json", orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
                if method == "incident":
                    doc = a.incident(*args, **kwargs).to_dict()
                    return "application/json", orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
                if method == "report":
                    from ..present._report import incident_report

                    fmt = kwargs.get("fmt", "md")
                    text = incident_report(a, *args, **_priced(kwargs))
                    kind = "text/html" if fmt == "html" else "text/markdown"
                    return f"{kind}; charset=utf-8", text.encode()
                result = getattr(a, method)(*args, **kwargs)
                if method in FIGURES:
                    return PLOTLY, result.to_json().encode()
                return ARROW, frame_bytes(result)
            finally:
                for con in cons:
                    con.close()
