"""The server's reads: analysis calls on cursors of its own DuckDB instance.

DuckDB lets one process hold many connections to one database: each read gets a fresh
cursor (its temporary fact tables die with it) and sees the last committed data, while
the writer thread goes on committing. Reads take turns two at a time, so that a burst of
them leaves the writer the CPU it needs, and their results are cached per commit count
(pages that refresh while nothing arrives cost nothing).

A caller that draws several results of the same data (a dashboard page: the incidents,
the layouts, three charts) names its ``generation``: every call of one generation, run
and window is answered by one analysis on one cursor, so the span facts are derived and
the incidents found once for the page, not once per call (while spans arrive the facts
are not stored, and each fresh cursor would derive them from every row again), and its
results all agree. The server keeps the analyses of the last few generations.

Results travel typed: a frame as an Arrow IPC stream, a plotly figure as its JSON,
incidents as the contract's JSON (``faultlens.analyzer.serve._client`` reads them back).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


@dataclass
class _Shared:
    """One generation's analysis of one run and window, on its own cursor (one call at a
    time: a DuckDB connection runs one query at once)."""

    con: duckdb.DuckDBPyConnection
    analysis: Analysis
    lock: threading.Lock = field(default_factory=threading.Lock)


class Reads:
    """Analysis calls on cursors of ``root`` (a connection of the server's store)."""

    def __init__(
        self,
        root: duckdb.DuckDBPyConnection,
        *,
        generation: Callable[[], int],
        parallel: int = 2,
        cache_items: int = 128,
        shared_items: int = 4,
    ) -> None:
        self.root = root
        self.generation = generation
        self._root_lock = threading.Lock()
        self._turns = threading.BoundedSemaphore(parallel)
        self._cache: OrderedDict[bytes, tuple[str, bytes]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_items = cache_items
        self._shared: OrderedDict[tuple, _Shared] = OrderedDict()
        self._shared_items = shared_items

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._root_lock:  # one connection object: hand out cursors one at a time
            return self.root.cursor()

    def analysis(self, con: Any, *, run: str | None, window: TimeWindow) -> Analysis:
        return Analysis(con, run=run, window=window)

    def call(self, request: dict[str, Any]) -> tuple[str, bytes]:
        """(media type, body) of ``request``: {method, args, kwargs, run, since, until,
        other_run, slo_ms, generation}; cached until the next commit, or for the caller's
        ``generation`` when it names one."""
        generation = request.get("generation")
        if generation is None:
            generation = self.generation()
        key = orjson.dumps([generation, request], option=orjson.OPT_SORT_KEYS)
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
        runs = [request.get("run")]
        if method == "contrast" and request.get("other_run") is not None:
            runs.append(request["other_run"])
        with self._turns, self._analyses(request.get("generation"), runs, window) as found:
            a = found[0]
            if len(found) > 1:
                args = [found[1]]
            return self._answer(a, method, args, kwargs)

    @contextlib.contextmanager
    def _analyses(
        self, generation: int | None, runs: list[str | None], window: TimeWindow
    ) -> Iterator[list[Analysis]]:
        """An analysis of each run: on fresh cursors closed after the call, or (for a
        caller's ``generation``) the generation's shared ones, each held for the call."""
        if generation is None:
            cons = [self.cursor() for _ in runs]
            try:
                yield [
                    self.analysis(c, run=r, window=window) for c, r in zip(cons, runs, strict=True)
                ]
            finally:
                for con in cons:
                    con.close()
            return
        # One lock order (no deadlock between two contrasts of the same pair).
        held = sorted({r: self._shared_for(generation, r, window) for r in runs}.items(), key=str)
        with contextlib.ExitStack() as stack:
            for _, shared in held:
                stack.enter_context(shared.lock)
            yield [dict(held)[r].analysis for r in runs]

    def _shared_for(self, generation: int, run: str | None, window: TimeWindow) -> _Shared:
        key = (generation, run, window.since_ns, window.until_ns)
        with self._cache_lock:
            shared = self._shared.get(key)
            if shared is None:
                con = self.cursor()
                shared = self._shared[key] = _Shared(
                    con, self.analysis(con, run=run, window=window)
                )
            self._shared.move_to_end(key)
            # The oldest go; a call still using one keeps it until it returns (its cursor,
            # temporary tables and all, is freed with its last reference).
            while len(self._shared) > self._shared_items:
                self._shared.popitem(last=False)
        return shared

    def _answer(self, a: Analysis, method: str, args: list, kwargs: dict) -> tuple[str, bytes]:
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
