"""Traces: search spans by model, endpoint, status, time and duration; one trace's waterfall.

The span table leads as a trace viewer does (time in UTC, service, model, span name,
duration, status), ids shortened; the chosen trace's full id is shown to copy. The
waterfall colours each span by the model that produced it.
"""

from __future__ import annotations

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, query
from faultlens.dashboards._views import readable, short_id, utc

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
    st.caption(f"{len(spans)} spans (at most 500, newest first); ids shortened")
    st.dataframe(as_text(readable(spans)), hide_index=True, width="stretch")
    if spans.empty:
        return

    st.subheader("Waterfall")
    # One entry per trace, labelled by its newest span as listed above.
    first = spans.drop_duplicates("trace_id")
    labels = {
        t: f"{utc(ts)} · {svc} · {name} · {short_id(t)}"
        for t, ts, svc, name in zip(
            first.trace_id, first.ts_ns, first.service, first.name, strict=True
        )
    }
    trace_id = st.selectbox("Trace", list(labels), format_func=labels.get, key="traces-trace")
    st.caption("Trace ID (the copy button copies it whole)")
    st.code(trace_id, language=None)
    st.plotly_chart(
        query(con, filters, "fig_waterfall", trace_id), width="stretch", key="traces-waterfall"
    )
    st.dataframe(
        as_text(readable(query(con, filters, "trace", trace_id))), hide_index=True, width="stretch"
    )


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
