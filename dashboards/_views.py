"""Drawing helpers more than one page uses: the incident picker, time and share labels."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd
import streamlit as st

from ..analyzer.present._words import culprit_text, seconds
from ._data import Connection, Filters, incidents

__all__ = [
    "clock",
    "culprit_label",
    "culprit_text",
    "pick_incident",
    "plain",
    "readable",
    "seconds",
    "share",
    "short_id",
    "utc",
]

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:$])")


def plain(text: object) -> str:
    """A data value made safe for a Markdown element (caption, heading): shown as typed.

    Streamlit already escapes HTML; this escapes Markdown, so a run or layout
    name from the data cannot become a link, an image or emphasis.
    """
    return _MARKDOWN.sub(r"\\\1", str(text))


def clock(ns: int | None) -> str:
    """``HH:MM:SS.mmm`` UTC for a timestamp in ns; an em dash when absent."""
    if ns is None:
        return "—"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def share(value: float | None) -> str:
    """A share of traffic as a percentage with one decimal."""
    return "—" if value is None else f"{value:.1%}"


def pick_incident(con: Connection, filters: Filters, *, key: str) -> dict[str, Any] | None:
    """A select box over the run's incidents (schema dicts); None, with a note, when none."""
    found = incidents(con, filters)
    if not found:
        st.info("No incident in this run: every scope stayed within its baseline.")
        return None
    labels = {i["id"]: f"{i['id']} · culprit {culprit_label(i)}" for i in found}
    chosen = st.selectbox("Incident", list(labels), format_func=labels.get, key=key)
    return next(i for i in found if i["id"] == chosen)


def culprit_label(incident: dict[str, Any]) -> str:
    """The culprit model, or its service (marked) when it runs no model."""
    culprit = incident["culprit"]
    return culprit["model"] or f"{culprit['service']} (no model)"


ID_CHARS = 8  # an id's first hex digits: enough to tell a page of rows apart


def short_id(value: object) -> object:
    """``3c234dd6…``: the start of a trace or span id (the full one: :func:`copyable`)."""
    if not isinstance(value, str) or len(value) <= ID_CHARS:
        return value
    return value[:ID_CHARS] + "…"


def utc(ns: object) -> str | None:
    """``2026-11-25 13:32:45.123``: a timestamp in ns as a person reads it (UTC)."""
    if ns is None or ns != ns:  # None or NaN
        return None
    return dt.datetime.fromtimestamp(int(ns) / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# Columns a trace viewer leads with (Jaeger, Tempo), as the analyzer names them.
_LEAD = {
    "ts_ns": "time (UTC)",
    "service": "service",
    "model": "model",
    "name": "span",
    "duration_ms": "duration (ms)",
    "error": "status",
    "severity": "severity",
    "body": "body",
}
_IDS = {"trace_id": "trace", "span_id": "span id", "parent_id": "parent", "instance": "instance"}


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Spans or log records as a trace viewer shows them: time (UTC), service, model, span
    name, duration (ms), status first; ids shortened (:func:`short_id`); the rest after."""
    out = frame.copy()
    if "ts_ns" in out:
        out["ts_ns"] = out["ts_ns"].map(utc)
    if "duration_ms" in out:
        out["duration_ms"] = out["duration_ms"].astype(float).round(1)
    if "error" in out:
        out["error"] = out["error"].map(lambda e: "error" if e else "ok")
    for column in _IDS:
        if column in out:
            out[column] = out[column].map(short_id)
    lead = [c for c in _LEAD if c in out]
    ids = [c for c in _IDS if c in out]
    rest = [c for c in out.columns if c not in lead and c not in ids]
    return out[lead + rest + ids].rename(columns={**_LEAD, **_IDS})
