"""Plotly figures for notebooks, reports and the dashboard (plotly comes with [dashboard])."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["blast_radius", "incident_timeline", "layout_tradeoff", "timeseries", "waterfall"]


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("figures need plotly: pip install 'faultlens[dashboard]'") from exc
    return go


def _time(ns: pd.Series | int) -> Any:
    return pd.to_datetime(ns, unit="ns", utc=True)


def timeseries(frame: pd.DataFrame, *, metric: str, incidents: list[Any]) -> Any:
    """One line per scope key over time, incidents shaded."""
    go = _go()
    fig = go.Figure()
    for key, g in frame.groupby("key"):
        fig.add_trace(go.Scatter(x=_time(g.bucket_start), y=g[metric], name=str(key), mode="lines"))
    for i in incidents:
        fig.add_vrect(
            x0=_time(i.onset_ns), x1=_time(i.end_ns), fillcolor="red", opacity=0.12, line_width=0
        )
    fig.update_layout(
        title=f"{metric} by {frame.scope.iloc[0] if len(frame) else 'scope'}",
        xaxis_title="time (UTC)",
        yaxis_title=metric,
    )
    return fig


def incident_timeline(incident: Any, endpoints: pd.DataFrame) -> Any:
    """Errors per endpoint around the incident, with onset, end and FIT marked."""
    go = _go()
    fig = go.Figure()
    lo = incident.baseline_start_ns
    hi = incident.end_ns + (incident.end_ns - incident.onset_ns)
    e = endpoints[(endpoints.bucket_start >= lo) & (endpoints.bucket_start <= hi)]
    for key, g in e.groupby("key"):
        fig.add_trace(go.Bar(x=_time(g.bucket_start), y=g.errors, name=f"{key} errors"))
    fig.add_vrect(
        x0=_time(incident.onset_ns),
        x1=_time(incident.end_ns),
        fillcolor="red",
        opacity=0.1,
        line_width=0,
        annotation_text="incident",
    )
    for v in incident.isolation:
        if v.seconds is not None:
            x = _time(incident.onset_ns + int(v.seconds * 1e9))
            fig.add_vline(x=x, line_dash="dot")
            fig.add_annotation(x=x, y=1, yref="paper", text=f"FIT {v.view}", showarrow=False)
    fig.update_layout(
        barmode="stack",
        title=f"{incident.id}: culprit {incident.culprit.service}"
        f" / {incident.culprit.model or 'model unknown'}",
    )
    return fig


def blast_radius(incident: Any) -> Any:
    """Affected requests by endpoint, model and service; collateral stacked apart."""
    go = _go()
    b = incident.blast.breakdown.copy()
    b["label"] = b.dimension + ": " + b.key.astype(str)
    coll = b.collateral.fillna(0).astype(int) if b.collateral.notna().any() else 0
    fig = go.Figure(
        [
            go.Bar(y=b.label, x=b.requests - coll, name="touched the culprit", orientation="h"),
            go.Bar(
                y=b.label,
                x=coll if isinstance(coll, pd.Series) else [0] * len(b),
                name="collateral",
                orientation="h",
            ),
        ]
    )
    fig.update_layout(
        barmode="stack",
        title=f"Blast radius: {incident.blast.requests} requests "
        f"({incident.blast.share:.0%} of traffic)",
        xaxis_title="requests",
    )
    return fig


def waterfall(spans: pd.DataFrame, *, trace_id: str) -> Any:
    """A trace's spans as bars from their start offset, coloured by model."""
    go = _go()
    fig = go.Figure()
    if spans.empty:
        return fig.update_layout(title=f"trace {trace_id}: no spans")
    s = spans.assign(
        label=spans.depth.map(lambda d: "  " * d) + spans.service + " " + spans.name,
        who=spans.model.fillna("(no model)"),
    )
    for who, g in s.groupby("who"):
        fig.add_trace(
            go.Bar(
                y=g.label,
                x=g.duration_ms,
                base=g.offset_ms,
                orientation="h",
                name=str(who),
                text=g.error.map(lambda e: "error" if e else ""),
                hovertext=g.name,
            )
        )
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=list(s.label))
    fig.update_layout(
        title=f"trace {trace_id}", xaxis_title="ms since trace start", barmode="overlay"
    )
    return fig


def layout_tradeoff(verdict: Any) -> Any:
    """Both sides of the layout trade-off in one chart: each measured figure of the
    per-model run as a change from the monolith's (cost rows: what it costs more; incident
    rows: what it cuts)."""
    go = _go()
    rows = [
        r
        for r in verdict.table
        if isinstance(r["monolith"], int | float)
        and isinstance(r["per-model"], int | float)
        and r["monolith"]
    ]
    fig = go.Figure()
    for side, color in (("cost", "#d62728"), ("incident", "#2ca02c")):
        picked = [r for r in rows if r["side"] == side]
        fig.add_trace(
            go.Bar(
                y=[r["metric"] for r in picked],
                x=[(r["per-model"] / r["monolith"] - 1) * 100 for r in picked],
                orientation="h",
                name="what per-model costs" if side == "cost" else "what per-model cuts",
                marker_color=color,
                text=[f"{r['monolith']} → {r['per-model']}" for r in picked],
                textposition="auto",
            )
        )
    fig.update_layout(
        title=f"Per-model against monolith, scenario {verdict.scenario} (measured)",
        xaxis_title="change from the monolith (%)",
        barmode="group",
    )
    return fig
