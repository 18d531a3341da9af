"""Incident: which model broke, since when, how wide.

A timeline (onset, isolation time, end), the ranked culprit candidates with
their evidence, the blast radius by endpoint, model and service with the
collateral apart, model-aware against service-only isolation, and the
correlated error logs.
"""

from __future__ import annotations

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, query
from faultlens.dashboards._views import clock, pick_incident, seconds, share

# (view, short label, heading): the two ways of looking at the same telemetry.
_VIEWS = (
    ("model_aware", "model-aware", "With model identity (faultlens tags)"),
    ("service_only", "service-only", "Service-level only (plain OTel)"),
)


def render(con: Connection, filters: Filters) -> None:
    """Draw one incident of the chosen run."""
    st.title("Incident")
    incident = pick_incident(con, filters, key="incident")
    if incident is None:
        return
    culprit, blast = incident["culprit"], incident["blast_radius"]
    isolation = incident["fault_isolation"]

    cols = st.columns(5)
    cols[0].metric("Culprit model", culprit["model"] or "(no model)")
    cols[1].metric("Culprit service", culprit["service"])
    cols[2].metric("Blast radius (requests)", blast["requests"])
    cols[3].metric("Blast radius (share)", share(blast["share"]))
    collateral = blast["collateral"]
    cols[4].metric("Collateral (requests)", "—" if collateral is None else collateral)
    st.caption(
        f"Onset {clock(incident['onset_ns'])} · isolated after "
        f"{seconds(isolation['model_aware']['seconds'])} · end {clock(incident['end_ns'])} (UTC)"
    )
    st.plotly_chart(
        query(con, filters, "fig_incident_timeline", incident["id"]),
        width="stretch",
        key="incident-timeline",
    )

    st.subheader("Culprit candidates, ranked")
    st.dataframe(
        as_text(query(con, filters, "candidates", incident["id"])),
        hide_index=True,
        width="stretch",
    )

    st.subheader("Blast radius")
    radius = query(con, filters, "blast_radius", incident["id"])
    left, right = st.columns(2)
    with left:
        st.markdown("**Affected requests** by endpoint, model and service")
        st.dataframe(as_text(radius), hide_index=True, width="stretch")
    with right:
        st.markdown(
            "**Collateral**: affected requests that never touched the culprit (its model, "
            "or its service when it runs no model)"
        )
        apart = radius[radius["collateral"].fillna(0) > 0][["dimension", "key", "collateral"]]
        if collateral is None:
            st.text(
                "Unknown: the culprit model inside the shared process is not known, so any "
                "of its models could have been touched."
            )
        elif apart.empty:
            st.text("No collateral: every affected request touched the culprit.")
        else:
            st.dataframe(as_text(apart), hide_index=True, width="stretch")
    st.plotly_chart(
        query(con, filters, "fig_blast_radius", incident["id"]),
        width="stretch",
        key="incident-blast",
    )

    st.subheader("Fault isolation: model-aware against service-only")
    for column, (view, short, heading) in zip(st.columns(2), _VIEWS, strict=True):
        row = isolation[view]
        with column:
            st.markdown(f"**{heading}**")
            a, b, c, d = st.columns(4)
            a.metric(f"Isolation time ({short})", seconds(row["seconds"]))
            b.metric(f"Suspects ({short})", row["suspects"])
            c.metric(f"Spans to read ({short})", row["evidence_spans"])
            d.metric(f"Logs to read ({short})", row["evidence_logs"])

    st.subheader("Correlated error logs")
    logs = query(con, filters, "error_logs", incident["id"], limit=200)
    if logs.empty:
        st.info("No error log record during this incident.")
    else:
        st.dataframe(as_text(logs), hide_index=True, width="stretch")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
