"""Incident: which model broke, since when, how wide.

A timeline of the signals that departed (the culprit's bold over its baseline range;
onset, isolation time, end), the ranked culprit candidates with their evidence, the
blast radius by endpoint, model and service with the collateral apart, what each view
(model-aware, service-only) isolated, and the correlated error logs.
"""

from __future__ import annotations

import streamlit as st

from faultlens.analyzer.present._words import isolation_text, isolation_time
from faultlens.dashboards._data import Connection, Filters, as_text, query
from faultlens.dashboards._views import clock, pick_incident, plain, readable, share

# (view, short label, heading): the two ways of looking at the same telemetry.
VIEWS = (
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
    unknown = "unknown" if incident["suspect_models"] else "(no model)"
    cols[0].metric("Culprit model", culprit["model"] or unknown)
    cols[1].metric("Culprit service", culprit["service"])
    cols[2].metric("Blast radius (requests)", blast["requests"])
    cols[3].metric("Blast radius (share)", share(blast["share"]))
    collateral = blast["collateral"]
    cols[4].metric("Collateral (requests)", "—" if collateral is None else collateral)
    st.caption(
        f"Onset {clock(incident['onset_ns'])} · model isolated (model-aware): "
        f"{isolation_time(isolation['model_aware'])} · end {clock(incident['end_ns'])} (UTC)"
    )
    st.plotly_chart(
        query(con, filters, "fig_incident_timeline", incident["id"]),
        width="stretch",
        key="incident-timeline",
    )

    st.subheader("Fault isolation: what each view isolated")
    for column, (view, short, heading) in zip(st.columns(2), VIEWS, strict=True):
        row = isolation[view]
        with column:
            st.markdown(f"**{heading}**")
            st.metric(f"Isolation time ({short})", isolation_time(row))
            if not row["isolates_model"]:  # what naming the process leaves to read
                st.caption(plain(isolation_text(row)))
            a, b, c = st.columns(3)
            a.metric("Suspects", row["suspects"])
            b.metric("Spans to read", row["evidence_spans"])
            c.metric("Logs to read", row["evidence_logs"])

    st.subheader("Culprit candidates, ranked")
    candidates = query(con, filters, "candidates", incident["id"])
    st.dataframe(as_text(candidates), hide_index=True, width="stretch")
    if not candidates.empty:
        top = candidates.iloc[0]
        who = f"{top['service']} / {top['model']}" if top["model"] else top["service"]
        st.markdown(
            f"**Why {plain(who)} ranks first**\n\n"
            + "\n".join(f"- {plain(line)}" for line in top["evidence"])
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

    st.subheader("Correlated error logs")
    logs = query(con, filters, "error_logs", incident["id"], limit=200)
    if logs.empty:
        st.info("No error log record during this incident.")
    else:
        st.dataframe(as_text(readable(logs)), hide_index=True, width="stretch")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
