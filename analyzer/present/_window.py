"""``--since/--until/--last``: the time window of ``incidents``, ``report`` and the read
API, as :class:`TimeWindow` (the analysis bounds ``Timestamp`` by it: facts/_tables.py).

Example::

    a = faultlens.analyzer.open(db, window=parse_window(last="30m"))
"""

from __future__ import annotations

import datetime as dt
import re
import time

from .._settings import TimeWindow

__all__ = ["TimeWindow", "parse_window"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
