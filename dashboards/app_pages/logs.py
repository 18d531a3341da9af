"""Logs: log records by trace, model and severity, shown as text."""

from __future__ import annotations

import re

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, query
from faultlens.dashboards._views import readable

ANY = "(any)"
# OpenTelemetry severity names and the lowest SeverityNumber of each range.
SEVERITIES = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def render(con: Connection, filters: Filters) -> None:
    """Draw the log search."""
    st.title("Logs")
    layouts = query(con, filters, "layouts")
    models = sorted({m for ms in layouts["models"] for m in ms})

    a, b, c = st.columns([2, 1, 1])
    trace_id = a.text_input("Trace ID (32 hex digits)", key="logs-trace").strip().lower()
    model = b.selectbox("Model", (ANY, *models), key="logs-model")
    severity = c.selectbox("Minimum severity", list(SEVERITIES), index=2, key="logs-severity")
    if trace_id and not _TRACE_ID.fullmatch(trace_id):
        st.error("A trace ID is 32 hexadecimal digits.")
        return
    logs = query(
        con,
        filters,
        "logs",
        trace_id=trace_id or None,
        model=None if model == ANY else model,
        min_severity=SEVERITIES[severity],
        start_ns=filters.start_ns,
        end_ns=filters.end_ns,
        limit=500,
    )
    st.caption(f"{len(logs)} log records (at most 500)")
    st.dataframe(as_text(readable(logs)), hide_index=True, width="stretch")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
