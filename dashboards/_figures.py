"""Plotly figures drawn from the analyzer's DataFrames (no queries here)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["fig_blast_radius", "fig_incident_timeline", "fig_timeseries", "fig_waterfall"]

_NS = 1_000_000_000


def _time(ns: Any) -> pd.Series | pd.Timestamp:
    return pd.to_datetime(ns, unit="ns", utc=True)


def fig_timeseries(
    series: pd.DataFrame, incidents: list[dict[str, Any]], *, bucket_s: float
) -> go.Figure:
    """Request rate, error ratio and p95 latency per key (model), incidents shaded."""
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=("Requests per second", "Error ratio", "Latency p95 (ms)"),
    )
    for i, (key, rows) in enumerate(series.groupby("key", sort=True)):
        x = _time(rows["bucket_start"])
        colour = _COLOURS[i % len(_COLOURS)]
        line = {"color": colour}
        for row, y in enumerate(
            (rows["requests"] / bucket_s, rows["error_ratio"], rows["p95_ms"]), start=1
        ):
            fig.add_trace(
                go.Scatter(
                    x=x, y=y, name=str(key), legendgroup=str(key), showlegend=row == 1, line=line
                ),
                row=row,
                col=1,
            )
    for incident in incidents:
        for row in (1, 2, 3):
            fig.add_vrect(
                x0=_time(incident["onset_ns"]),
                x1=_time(incident["end_ns"]),
                fillcolor="crimson",
                opacity=0.12,
                line_width=0,
                row=row,
                col=1,
            )
        fig.add_annotation(
            x=_time(incident["onset_ns"]),
            y=1.0,
            yref="paper",
            text=f"incident: {incident['culprit']['model'] or incident['culprit']['service']}",
            showarrow=False,
            xanchor="left",
            font={"color": "crimson"},
        )
    fig.update_layout(height=620, margin={"t": 40, "b": 20}, legend_title_text="model")
    return fig


def fig_incident_timeline(series: pd.DataFrame, incident: dict[str, Any]) -> go.Figure:
    """The error ratio of every model around the incident, with onset, isolation and end."""
    fig = go.Figure()
    for i, (key, rows) in enumerate(series.groupby("key", sort=True)):
        fig.add_trace(
            go.Scatter(
                x=_time(rows["bucket_start"]),
                y=rows["error_ratio"],
                name=str(key),
                line={"color": _COLOURS[i % len(_COLOURS)]},
            )
        )
    onset = incident["onset_ns"]
    marks = [("onset", onset, "crimson")]
    for view, colour in (("model_aware", "seagreen"), ("service_only", "darkorange")):
        fit = incident["fault_isolation"][view]["seconds"]
        if fit is not None:
            label = f"isolated ({view.replace('_', '-')}, {fit:.0f} s)"
            marks.append((label, onset + int(fit * _NS), colour))
    marks.append(("end", incident["end_ns"], "black"))
    for label, ns, colour in marks:
        x = _time(ns)
        fig.add_shape(
            type="line", x0=x, x1=x, y0=0, y1=1, yref="paper", line={"color": colour, "dash": "dot"}
        )
        fig.add_annotation(
            x=x,
            y=1,
            yref="paper",
            text=label,
            showarrow=False,
            textangle=-90,
            xanchor="right",
            yanchor="top",
            font={"color": colour},
        )
    fig.update_layout(
        height=320,
        margin={"t": 20, "b": 20},
        yaxis_title="error ratio",
        legend_title_text="model",
    )
    return fig


def fig_blast_radius(radius: pd.DataFrame) -> go.Figure:
    """Affected requests per key, split into collateral and the rest, one panel per dimension."""
    dims = [d for d in ("endpoint", "model", "service") if (radius["dimension"] == d).any()]
    fig = make_subplots(rows=1, cols=max(len(dims), 1), subplot_titles=dims)
    for col, dim in enumerate(dims, start=1):
        rows = radius[radius["dimension"] == dim]
        collateral = rows["collateral"].fillna(0)
        for name, y, colour in (
            ("touched the culprit", rows["requests"] - collateral, "crimson"),
            ("collateral", collateral, "darkorange"),
        ):
            fig.add_trace(
                go.Bar(
                    x=rows["key"].astype(str),
                    y=y,
                    name=name,
                    marker_color=colour,
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_layout(barmode="stack", height=320, margin={"t": 40, "b": 20})
    return fig


def fig_waterfall(spans: pd.DataFrame) -> go.Figure:
    """One trace's spans as horizontal bars from start to end, coloured by model."""
    spans = spans.sort_values("start_ns", ignore_index=True)
    t0 = int(spans["start_ns"].min())
    models = spans["model"].fillna("(no model)").astype(str)
    colours = {m: _COLOURS[i % len(_COLOURS)] for i, m in enumerate(sorted(set(models)))}
    labels = [f"{s} · {n}" for s, n in zip(spans["service"], spans["name"], strict=True)]
    fig = go.Figure()
    for model, colour in colours.items():
        mine = models == model
        fig.add_trace(
            go.Bar(
                y=[f"{i:>3} {labels[i]}" for i in spans.index[mine]],
                x=spans.loc[mine, "duration_ms"],
                base=(spans.loc[mine, "start_ns"] - t0) / 1e6,
                orientation="h",
                name=model,
                marker_color=colour,
                marker_line={
                    "color": [
                        "crimson" if s == "Error" else colour for s in spans.loc[mine, "status"]
                    ],
                    "width": 2,
                },
            )
        )
    fig.update_yaxes(
        autorange="reversed",
        type="category",
        categoryorder="array",
        categoryarray=[f"{i:>3} {lab}" for i, lab in enumerate(labels)],
    )
    fig.update_layout(
        height=120 + 24 * len(spans),
        xaxis_title="ms since the trace started",
        legend_title_text="model",
        margin={"t": 20, "b": 20},
    )
    return fig


_COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
