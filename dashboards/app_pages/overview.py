"""Overview: per-model request rate, error ratio and latency over time.

Shows the layout detected per service and marks every incident on the time axis.
"""

from __future__ import annotations

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, incidents, query, window
from faultlens.dashboards._figures import fig_timeseries
from faultlens.dashboards._views import clock, culprit_label


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

    series = window(
        query(con, filters, "timeseries", scope="model", bucket_s=filters.bucket_s), filters
    )
    st.plotly_chart(
        fig_timeseries(series, found, bucket_s=filters.bucket_s),
        width="stretch",
        key="overview-timeseries",
    )

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
