"""The analysis on a time window: ``--since/--until/--last`` pushed down as a bound on
``Timestamp``, so DuckDB skips row groups by their zone maps and ClickHouse prunes
partitions; the window's cost grows with its spans, not with the table.

Example::

    a = windowed(".faultlens/faultlens.duckdb", since_ns=..., until_ns=None)
    a.incidents()
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..facts import _stored as _stored_facts
from ._api import Analysis, open

__all__ = ["TimeWindow", "WindowedAnalysis", "parse_window", "windowed"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class TimeWindow:
    """[since_ns, until_ns) in ns since the epoch; None leaves that side open."""

    since_ns: int | None = None
    until_ns: int | None = None

    def __bool__(self) -> bool:
        return self.since_ns is not None or self.until_ns is not None

    def query(self) -> dict[str, str]:
        """The window as the read API's query parameters."""
        out = {}
        if self.since_ns is not None:
            out["since"] = str(self.since_ns)
        if self.until_ns is not None:
            out["until"] = str(self.until_ns)
        return out


def _instant(text: str, what: str) -> int:
    """ns since the epoch from an integer (ns) or an ISO-8601 time (UTC unless it says)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{what} {text!r}: expected an ISO time (2026-01-02T10:00:00Z) or ns since the epoch"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000) * 1_000


def parse_window(
    *, since: str | None = None, until: str | None = None, last: str | None = None
) -> TimeWindow:
    """The window of ``--since/--until`` (ISO times or ns) or ``--last 30m`` (s, m, h, d:
    up to now). ValueError, with one line naming the flag, on anything else."""
    if last is not None:
        if since is not None:
            raise ValueError("--last and --since: give one of them")
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", last)
        if m is None:
            raise ValueError(f"--last {last!r}: expected a duration like 90s, 30m, 2h or 1d")
        end = _instant(until, "--until") if until is not None else time.time_ns()
        return TimeWindow(end - int(float(m[1]) * _UNITS[m[2]] * 1e9), end)
    window = TimeWindow(
        None if since is None else _instant(since, "--since"),
        None if until is None else _instant(until, "--until"),
    )
    w = window
    if w.since_ns is not None and w.until_ns is not None and w.since_ns >= w.until_ns:
        raise ValueError("--since is not before --until")
    return window


class WindowedAnalysis(Analysis):
    """An :class:`Analysis` of the spans and logs whose ``Timestamp`` is in the window."""

    def __init__(self, con: Any, *, window: TimeWindow, **kwargs: Any) -> None:
        super().__init__(con, **kwargs)
        self.window = window

    def _bound(self, ns: int) -> str:
        if self.d.name == "duckdb":
            return f"make_timestamp_ns(CAST({int(ns)} AS BIGINT))"
        return f"fromUnixTimestamp64Nano(toInt64({int(ns)}))"

    @property
    def _run_filter(self) -> tuple[str, dict[str, Any]]:
        where, params = super()._run_filter
        w = self.window
        if w.since_ns is not None:
            where += f" AND Timestamp >= {self._bound(w.since_ns)}"
        if w.until_ns is not None:
            where += f" AND Timestamp < {self._bound(w.until_ns)}"
        return where, params

    @cached_property
    def _stored(self) -> _stored_facts.StoredFacts | None:
        # The stored facts cover the whole store: a window derives its own.
        return None if self.window else super()._stored

    def with_run(self, run: str | None) -> WindowedAnalysis:
        return WindowedAnalysis(
            self.con.raw, window=self.window, run=run, dialect=self.d, settings=self.settings
        )


def windowed(
    db: str | Path | Any, window: TimeWindow, *, run: str | None = None, **kwargs: Any
) -> Analysis:
    """``open(db)``, restricted to ``window`` when it bounds anything."""
    a = open(db, run=run, **kwargs)
    if not window:
        return a
    return WindowedAnalysis(a.con.raw, window=window, run=run, dialect=a.d, settings=a.settings)
