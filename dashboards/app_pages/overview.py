"""Overview: per-model request rate, error ratio and latency over time.

The culprit model's line is drawn bold in red, the others faded; the tab of the
signal that departed first comes first. Shows the layout detected per service and
marks every incident on the time axis.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from faultlens.analyzer.present._words import isolation_text
from faultlens.dashboards._data import Connection, Filters, as_text, incidents, query
from faultlens.dashboards._views import culprit_label, culprit_text, share, utc

# (time-series column, label, departure signal): one chart each, incidents marked.
SERIES = (
    ("requests", "Requests", "traffic"),
    ("error_ratio", "Error ratio", "errors"),
    ("p95_ms", "Latency p95 (ms)", "latency"),
)


def series_order(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """:data:`SERIES` with the first incident's departed signals first (its culprit model's
    scope decides, else any of its scopes): the tab a person opens shows the fault."""
    if not found:
        return list(SERIES)
    scopes = found[0]["scopes"]
    model = found[0]["culprit"]["model"]
    own = [s for s in scopes if model and s.startswith(f"model:{model} (")] or scopes
    signals = [s.rpartition(" (")[2].rstrip(")") for s in own]
    return sorted(SERIES, key=lambda x: (x[2] not in signals, SERIES.index(x)))


def incident_rows(found: list[dict[str, Any]]) -> pd.DataFrame:
    """The run's incidents as on-call reads them: what each view isolated in words."""
    return pd.DataFrame(
        [
            {
                "id": i["id"],
                "onset (UTC)": utc(i["onset_ns"]),
                "duration (s)": round((i["end_ns"] - i["onset_ns"]) / 1e9),
                "culprit": culprit_text(i),
                "model-aware": isolation_text(i["fault_isolation"]["model_aware"]),
                "service-only": isolation_text(i["fault_isolation"]["service_only"]),
                "blast radius": i["blast_radius"]["requests"],
                "share": share(i["blast_radius"]["share"]),
                "collateral": i["blast_radius"]["collateral"],
            }
            for i in found
        ]
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

    series = series_order(found)
    tabs = st.tabs([label for _, label, _ in series])
    for tab, (metric, label, _) in zip(tabs, series, strict=True):
        fig = query(
            con, filters, "fig_timeseries", scope="model", metric=metric, bucket_s=filters.bucket_s
        )
        fig.update_layout(
            title=f"{label} per model, {filters.bucket_s} s buckets; incidents shaded, "
            "culprit in red",
            yaxis_title=label,
        )
        fig.update_xaxes(range=[_time(filters.start_ns), _time(filters.end_ns)])
        tab.plotly_chart(fig, width="stretch", key=f"overview-{metric}")

    st.subheader("Layout detected per service")
    st.dataframe(as_text(layouts), hide_index=True, width="stretch")

    st.subheader("Incidents")
    if found:
        # A static table: its sentences wrap in their cells instead of running off the edge.
        st.table(as_text(incident_rows(found)), hide_index=True, border="horizontal")
    else:
        st.info("No incident in this run: every scope stayed within its baseline.")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
