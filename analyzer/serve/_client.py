"""Readers of a store that ``faultlens serve`` holds: they ask the server.

``faultlens.analyzer.open(FILE)``, ``faultlens incidents --db FILE`` and ``faultlens
report ID --db FILE`` find the server through the state file beside the store
(``_state``) and call its read API; ``FAULTLENS_TOKEN`` is the bearer token when the
server requires one. A call the server does not answer is one line naming the server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import orjson

from .._settings import TimeWindow
from ..analysis._contract import Candidate
from ..analysis._cost import Prices
from ..present._api import Analysis, incidents_json
from ..present._api import open as _open_local
from ..present._report import incident_report
from ..store._write import StoreError
from ._reads import ARROW, FIGURES, FRAMES, PLOTLY, frame_from_bytes
from ._state import ServerInfo, find_server

__all__ = [
    "ServedAnalysis",
    "ServedError",
    "ServedIncident",
    "Server",
    "incidents_doc",
    "open",
    "report_text",
    "server_for",
]


class ServedError(StoreError):
    """The server holding the store did not answer a call (one line, naming it)."""


class Server:
    """The read API of one running ``faultlens serve``."""

    def __init__(self, info: ServerInfo, *, token: str | None = None, timeout_s: float = 120):
        self.info = info
        token = token if token is not None else os.environ.get("FAULTLENS_TOKEN")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=info.url, headers=headers, timeout=timeout_s)

    @property
    def name(self) -> str:
        return f"faultlens serve at {self.info.url} (pid {self.info.pid})"

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code == 401:
            raise ServedError(f"{self.name} requires its token: set FAULTLENS_TOKEN")
        if r.status_code >= 400:
            reason = r.text.strip().splitlines()[0] if r.text.strip() else r.reason_phrase
            raise ServedError(f"{self.name}: {reason}")
        return r

    def get(self, path: str, **params: Any) -> httpx.Response:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            return self._check(self.client.get(path, params=query))
        except httpx.HTTPError as exc:
            raise ServedError(f"{self.name} does not answer ({exc})") from None

    def call(self, request: dict[str, Any]) -> Any:
        """One analysis call: a frame, a plotly figure, or parsed JSON."""
        try:
            r = self._check(self.client.post("/api/analysis", content=orjson.dumps(request)))
        except httpx.HTTPError as exc:
            raise ServedError(f"{self.name} does not answer ({exc})") from None
        kind = r.headers.get("content-type", "").split(";")[0]
        if kind == ARROW:
            return frame_from_bytes(r.content)
        if kind == PLOTLY:
            import plotly.io as pio

            return pio.from_json(r.text)
        if kind == "application/json":
            return orjson.loads(r.content)
        return r.text


_SERVERS: dict[tuple[ServerInfo, str | None], Server] = {}


def server_for(db: str | Path, *, token: str | None = None) -> Server | None:
    """The running server holding ``db``, if any.

    One client per server and token, kept: a reader that asks every few seconds (the
    dashboard's refresh) reuses its connection instead of building a client (an SSL
    context, a connection pool) each time."""
    info = find_server(db)
    if info is None:
        return None
    token = token if token is not None else os.environ.get("FAULTLENS_TOKEN")
    key = (info, token)
    if key not in _SERVERS:
        _SERVERS[key] = Server(info, token=token)
    return _SERVERS[key]


class ServedIncident:
    """An incident as the server sends it (the contract's shape), with the attributes of
    :class:`faultlens.analyzer.Incident` that the contract holds."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.id: str = doc["id"]
        self.run: str = doc["run"]
        self.layout: str = doc["layout"]
        self.onset_ns: int = doc["onset_ns"]
        self.end_ns: int = doc["end_ns"]
        self.scopes = tuple(doc["scopes"])
        self.suspect_models = tuple(doc["suspect_models"])
        self.candidates = tuple(
            Candidate(
                c["rank"], c["service"], c["model"], c["version"], c["score"], tuple(c["evidence"])
            )
            for c in doc["candidates"]
        )
        self.culprit = self.candidates[0]

    def to_dict(self) -> dict[str, Any]:
        return self.doc

    def __repr__(self) -> str:
        c = self.culprit
        return f"ServedIncident(id={self.id!r}, culprit={c.service}/{c.model})"


class ServedAnalysis:
    """The analysis calls of :class:`faultlens.analyzer.Analysis` that return incidents,
    frames or figures, answered by the server holding the store."""

    def __init__(
        self,
        server: Server,
        *,
        run: str | None = None,
        window: TimeWindow | None = None,
        generation: int | None = None,
    ) -> None:
        self.server = server
        self.run = run
        self.window = window or TimeWindow()
        # The data generation the caller shows (the dashboard's page): the server answers
        # all of its calls from one analysis (serve/_reads.py). None: each call afresh.
        self.generation = generation

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        request = {"method": method, "args": list(args), "kwargs": kwargs, "run": self.run}
        request.update(since=self.window.since_ns, until=self.window.until_ns)
        if self.generation is not None:
            request["generation"] = self.generation
        if method == "contrast" and args:
            other = args[0]
            request["args"], request["other_run"] = [], getattr(other, "run", None)
        return self.server.call(request)

    def incidents(self, *, slo_ms: float | None = None) -> list[ServedIncident]:
        doc = self._call("incidents", slo_ms=slo_ms)
        return [ServedIncident(d) for d in doc["incidents"]]

    def incident(self, incident_id: str, *, slo_ms: float | None = None) -> ServedIncident:
        return ServedIncident(self._call("incident", incident_id, slo_ms=slo_ms))

    def __getattr__(self, name: str) -> Any:
        if name in FRAMES or name in FIGURES:
            return lambda *args, **kwargs: self._call(name, *args, **kwargs)
        raise AttributeError(
            f"{name!r} is not answered by {self.server.name}, which holds the store; "
            "stop it to open the file directly"
        )

    def __repr__(self) -> str:
        return f"ServedAnalysis({self.server.name}, run={self.run!r})"


def open(  # noqa: A001 - faultlens.analyzer.open
    db: str | Path | Any, *, read_only: bool = True, run: str | None = None, **kwargs: Any
) -> Analysis | ServedAnalysis:
    """``faultlens.analyzer.open``: the store itself, or (when ``faultlens serve`` holds
    it) the server's answers for the incident list, its frames and figures."""
    if isinstance(db, str | Path) and read_only:
        server = server_for(db)
        if server is not None:
            return ServedAnalysis(server, run=run)
    return _open_local(db, read_only=read_only, run=run, **kwargs)


def _price_query(prices: Prices | None) -> dict[str, Any]:
    if prices is None:
        return {}
    return {"price_vcpu_hour": prices.vcpu_hour, "price_gb_hour": prices.gb_hour}


def incidents_doc(
    db: str,
    *,
    slo_ms: float | None,
    run: str | None,
    window: TimeWindow,
    prices: Prices | None = None,
) -> dict[str, Any]:
    """``faultlens incidents``: the contract's JSON, from the server holding ``db`` if any."""
    server = server_for(db)
    if server is not None:
        q = {"slo_ms": slo_ms, "run": run, **window.query(), **_price_query(prices)}
        return server.get("/api/incidents", **q).json()
    return incidents_json(db, slo_ms=slo_ms, run=run, window=window, prices=prices)


def report_text(
    db: str,
    incident_id: str,
    *,
    fmt: str,
    slo_ms: float | None,
    window: TimeWindow,
    prices: Prices | None = None,
) -> str:
    """``faultlens report``: the post-mortem, from the server holding ``db`` if any."""
    server = server_for(db)
    if server is not None:
        q = {"format": fmt, "slo_ms": slo_ms, **window.query(), **_price_query(prices)}
        return server.get(f"/api/incidents/{incident_id}/report", **q).text.rstrip("\n")
    a = _open_local(db, window=window)
    return incident_report(a, incident_id, fmt=fmt, slo_ms=slo_ms, prices=prices)
