"""Drawing helpers more than one page uses: the incident picker, time and share labels."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import streamlit as st

from ._data import Connection, Filters, incidents

__all__ = ["clock", "culprit_label", "pick_incident", "plain", "seconds", "share"]

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


def seconds(value: float | None) -> str:
    """Isolation time as on-call reads it; ``never`` when the culprit never settled first."""
    return "never" if value is None else f"{value:.0f} s"


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
