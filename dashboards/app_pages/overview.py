"""Overview: per-model request rate, error ratio and latency over time.

Shows the layout detected per service and marks every incident on the time axis.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, incidents, query
from faultlens.dashboards._views import clock, culprit_label

# (time-series column, label): one chart each, incidents marked on the time axis.
SERIES = (
    ("requests", "Requests"),
    ("error_ratio", "Error ratio"),
    ("p95_ms", "Latency p95 (ms)"),
)


def _time(ns: int | None) -> pd.Timestamp | None:
    return None if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC")


def render(con: Connection, filters: Filters) -> None:
    """Draw the overview of the chosen run."""
    st.title("Overview")
    found = incidents(con, filters)
    layouts = query(con, filters, "layouts")

    cols = st.columns(4)
    cols[0].metric("Services", len(layouts))
    cols[1].metric("Models", len({m for ms in layouts["models"] for m in ms}))
    cols[2].metric("Incidents", len(found))
    cols[3].metric("First culprit", culprit_label(found[0]) if found else "—")

    tabs = st.tabs([label for _, label in SERIES])
    for tab, (metric, label) in zip(tabs, SERIES, strict=True):
        fig = query(
            con, filters, "fig_timeseries", scope="model", metric=metric, bucket_s=filters.bucket_s
        )
        fig.update_layout(
            title=f"{label} per model, {filters.bucket_s} s buckets; incidents shaded"
        )
        fig.update_xaxes(range=[_time(filters.start_ns), _time(filters.end_ns)])
        tab.plotly_chart(fig, width="stretch", key=f"overview-{metric}")

    st.subheader("Layout detected per service")
    st.dataframe(as_text(layouts), hide_index=True, width="stretch")

    st.subheader("Incidents")
    if found:
        st.dataframe(
            as_text(query(con, filters, "incidents_frame")), hide_index=True, width="stretch"
        )
        st.caption("Onsets (UTC): " + ", ".join(f"{clock(i['onset_ns'])}" for i in found))
    else:
        st.info("No incident in this run: every scope stayed within its baseline.")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
