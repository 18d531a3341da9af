"""Overview: per-model request rate, error ratio and latency over time.

Shows the layout detected per service and marks every incident on the time axis.
"""

from __future__ import annotations

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, query
from faultlens.dashboards._views import clock


def render(con: Connection, filters: Filters) -> None:
    """Draw the overview of the chosen run."""
    st.title("Overview")
    incidents = query(con, filters, "incidents")
    layouts = query(con, filters, "layouts")

    cols = st.columns(4)
    cols[0].metric("Services", len(layouts))
    cols[1].metric("Models", int(layouts["models"].map(len).sum()) if len(layouts) else 0)
    cols[2].metric("Incidents", len(incidents))
    if incidents:
        first = incidents[0]
        cols[3].metric("First culprit model", first.culprit.model or "(no model)")

    fig = query(
        con,
        filters,
        "fig_timeseries",
        scope="model",
        bucket_s=filters.bucket_s,
        start_ns=filters.start_ns,
        end_ns=filters.end_ns,
    )
    st.plotly_chart(fig, width="stretch", key="overview-timeseries")

    st.subheader("Layout detected per service")
    st.dataframe(as_text(layouts), hide_index=True, width="stretch")

    st.subheader("Incidents")
    if incidents:
        frame = query(con, filters, "incidents_frame")
        st.dataframe(as_text(frame), hide_index=True, width="stretch")
        st.caption("Onsets: " + ", ".join(f"{i.id} at {clock(i.onset_ns)}" for i in incidents))
    else:
        st.info("No incident in this run: every scope stayed within its baseline.")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
