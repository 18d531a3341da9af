"""Drawing helpers more than one page uses: the incident picker, time and share labels."""

from __future__ import annotations

import datetime as dt
from typing import Any

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, query

__all__ = ["clock", "pick_incident", "seconds", "share"]


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


def pick_incident(con: Connection, filters: Filters, *, key: str) -> Any | None:
    """A select box over the run's incidents; None (with a note) when there are none."""
    incidents = query(con, filters, "incidents")
    if not incidents:
        st.info("No incident in this run: every scope stayed within its baseline.")
        return None
    labels = {
        i.id: f"{i.id} · onset {clock(i.onset_ns)} · culprit {i.culprit.model or i.culprit.service}"
        for i in incidents
    }
    chosen = st.selectbox("Incident", list(labels), format_func=labels.get, key=key)
    return next(i for i in incidents if i.id == chosen)
