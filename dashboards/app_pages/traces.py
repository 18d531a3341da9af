"""Traces: search spans by model, endpoint, status, time and duration; one trace's waterfall.

The waterfall colours each span by the model that produced it.
"""

from __future__ import annotations

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, query

ANY = "(any)"
STATUSES = (ANY, "Error", "Ok")  # Ok: no error (Ok or Unset)


def render(con: Connection, filters: Filters) -> None:
    """Draw the span search and the waterfall of the chosen trace."""
    st.title("Traces")
    layouts = query(con, filters, "layouts")
    models = sorted({m for ms in layouts["models"] for m in ms})
    by_endpoint = query(con, filters, "timeseries", scope="endpoint", bucket_s=filters.bucket_s)
    endpoints = sorted(by_endpoint["key"].unique())

    a, b, c, d = st.columns(4)
    model = a.selectbox("Model", (ANY, *models), key="traces-model")
    endpoint = b.selectbox("Endpoint", (ANY, *endpoints), key="traces-endpoint")
    status = c.selectbox("Status", STATUSES, key="traces-status")
    min_ms = d.number_input(
        "Min duration (ms)", min_value=0.0, value=0.0, step=10.0, key="traces-min-ms"
    )
    spans = query(
        con,
        filters,
        "spans",
        model=None if model == ANY else model,
        endpoint=None if endpoint == ANY else endpoint,
        status=None if status == ANY else status,
        start_ns=filters.start_ns,
        end_ns=filters.end_ns,
        min_duration_ms=min_ms or None,
        limit=500,
    )
    st.caption(f"{len(spans)} spans (at most 500, newest first)")
    st.dataframe(as_text(spans), hide_index=True, width="stretch")
    if spans.empty:
        return

    st.subheader("Waterfall")
    trace_ids = list(dict.fromkeys(spans["trace_id"]))
    trace_id = st.selectbox("Trace", trace_ids, key="traces-trace")
    st.plotly_chart(
        query(con, filters, "fig_waterfall", trace_id), width="stretch", key="traces-waterfall"
    )
    st.dataframe(as_text(query(con, filters, "trace", trace_id)), hide_index=True, width="stretch")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
