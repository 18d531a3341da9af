"""Plotly figures for notebooks, reports and the dashboard (plotly comes with [dashboard])."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = [
    "blast_radius",
    "culprit_scope",
    "departed",
    "incident_timeline",
    "isolation_note",
    "layout_tradeoff",
    "timeseries",
    "waterfall",
]


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("figures need plotly: pip install 'faultlens[dashboard]'") from exc
    return go


def _time(ns: pd.Series | int) -> Any:
    """UTC times to the microsecond (what plotly keeps; nanoseconds it would drop)."""
    t = pd.to_datetime(ns, unit="ns", utc=True)
    return t.dt.floor("us") if isinstance(t, pd.Series) else t.floor("us")


# What each departure signal is, drawn: (time-series column, axis title).
SIGNALS = {
    "latency": ("p95_ms", "latency p95 (ms)"),
    "errors": ("error_ratio", "error ratio"),
    "traffic": ("requests", "requests per bucket"),
}
CULPRIT_COLOUR = "#c0392b"
MUTED_COLOUR = "rgba(120, 120, 120, 0.45)"
# Other lines keep a colour of their own, faded; none of them is the culprit's red.
_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def _faded(colour: str, alpha: float = 0.35) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _culprits(incidents: list[Any], scope: str) -> list[str]:
    """The keys in ``scope`` (model or service) that some incident names as its culprit."""
    out = []
    for i in incidents:
        key = i.culprit.model if scope == "model" else i.culprit.service
        if key is not None and key not in out:
            out.append(key)
    return out


def timeseries(frame: pd.DataFrame, *, metric: str, incidents: list[Any]) -> Any:
    """One line per scope key over time, incidents shaded; a culprit's line drawn bold
    in red on top, the others faded, so the eye lands on it first."""
    go = _go()
    fig = go.Figure()
    scope = str(frame.scope.iloc[0]) if len(frame) else "scope"
    culprits = _culprits(incidents, scope)
    groups = dict(list(frame.groupby("key")))
    others = [k for k in groups if k not in culprits]
    for n, key in enumerate(others):
        g = groups[key]
        colour = _PALETTE[n % len(_PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=_time(g.bucket_start),
                y=g[metric],
                name=str(key),
                mode="lines",
                line={"width": 1.2, "color": _faded(colour) if culprits else colour},
            )
        )
    for key in culprits:
        if key in groups:
            g = groups[key]
            fig.add_trace(
                go.Scatter(
                    x=_time(g.bucket_start),
                    y=g[metric],
                    name=f"{key} (culprit)",
                    mode="lines",
                    line={"width": 3.5, "color": CULPRIT_COLOUR},
                )
            )
    for i in incidents:
        fig.add_vrect(
            x0=_time(i.onset_ns), x1=_time(i.end_ns), fillcolor="red", opacity=0.08, line_width=0
        )
    fig.update_layout(
        title=f"{metric} by {scope}",
        xaxis_title="time (UTC)",
        yaxis_title=metric,
        legend={"traceorder": "reversed"},  # the culprit, drawn last, listed first
    )
    return fig


def departed(incident: Any) -> dict[str, list[tuple[str, str]]]:
    """The incident's departed scopes by signal: ``{"latency": [("model", "fraud"), ...]}``
    from its ``scopes`` (``model:fraud (latency)``), in :data:`SIGNALS` order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for text in incident.scopes:
        where, _, signal = text.rpartition(" (")
        scope, _, key = where.partition(":")
        out.setdefault(signal.rstrip(")"), []).append((scope, key))
    return {s: out[s] for s in SIGNALS if s in out}


def culprit_scope(incident: Any) -> tuple[str, str]:
    """The series that is the culprit's: its model, or its service when it has none."""
    c = incident.culprit
    return ("model", c.model) if c.model is not None else ("service", c.service)


def isolation_note(incident: Any) -> str:
    """One line per view: when it isolated the model, or that it did not."""
    from ._words import VIEW_LABELS, isolation_text

    return " · ".join(
        f"{VIEW_LABELS[v.view]}: {isolation_text(v.to_dict())}" for v in incident.isolation
    )


def incident_timeline(incident: Any, series: pd.DataFrame) -> Any:
    """The signals that departed, around the incident: one panel per signal (latency,
    errors, traffic), a line per departed scope, the culprit's bold and red over its
    baseline band (its range before onset), the others faded grey; the baseline window
    and the incident shaded; a line where each view isolated the model."""
    from plotly.subplots import make_subplots

    from ._words import VIEW_LABELS, seconds

    go = _go()
    signals = departed(incident) or {"errors": []}
    mine = culprit_scope(incident)
    fig = make_subplots(
        rows=len(signals),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=[
            f"{SIGNALS[s][1]}: {len(scopes)} scope{'s' if len(scopes) != 1 else ''} departed"
            for s, scopes in signals.items()
        ],
    )
    lo = incident.baseline_start_ns
    hi = incident.end_ns + (incident.end_ns - incident.onset_ns)
    near = series[(series.bucket_start >= lo) & (series.bucket_start <= hi)]
    by_scope = dict(list(near.groupby(["scope", "key"])))
    for row, (signal, scopes) in enumerate(signals.items(), start=1):
        column, title = SIGNALS[signal]
        for scope, key in [s for s in scopes if s != mine]:
            g = by_scope.get((scope, key))
            if g is not None:
                fig.add_trace(
                    go.Scatter(
                        x=_time(g.bucket_start),
                        y=g[column],
                        name=f"{scope}:{key}",
                        mode="lines",
                        line={"width": 1, "color": MUTED_COLOUR},
                        legendgroup="others",
                        showlegend=False,
                    ),
                    row=row,
                    col=1,
                )
        g = by_scope.get(mine)
        if g is not None:
            base = g[g.bucket_start < incident.onset_ns][column].dropna()
            if len(base):
                fig.add_hrect(
                    y0=float(base.min()),
                    y1=float(base.max()),
                    fillcolor=CULPRIT_COLOUR,
                    opacity=0.12,
                    line_width=0,
                    row=row,
                    col=1,
                )
            fig.add_trace(
                go.Scatter(
                    x=_time(g.bucket_start),
                    y=g[column],
                    name=f"{mine[0]}:{mine[1]} (culprit)",
                    mode="lines+markers",
                    line={"width": 3.5, "color": CULPRIT_COLOUR},
                    legendgroup="culprit",
                    showlegend=row == 1,
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text=title, row=row, col=1)
    # A legend entry for the faded lines (hover names each one).
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            name="other departed scopes",
            mode="lines",
            line={"width": 1, "color": MUTED_COLOUR},
            legendgroup="others",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            name="culprit's baseline range",
            mode="lines",
            line={"width": 10, "color": _faded(CULPRIT_COLOUR[:7], 0.25)},
        ),
        row=1,
        col=1,
    )
    fig.add_vrect(
        x0=_time(lo),
        x1=_time(incident.onset_ns),
        fillcolor="grey",
        opacity=0.08,
        line_width=0,
        annotation_text="baseline",
        annotation_position="top left",
        row="all",
        col=1,
    )
    fig.add_vrect(
        x0=_time(incident.onset_ns),
        x1=_time(incident.end_ns),
        fillcolor="red",
        opacity=0.08,
        line_width=0,
        annotation_text="incident",
        annotation_position="top left",
        row="all",
        col=1,
    )
    for v in incident.isolation:
        # A view that only names a shared process has no time to set beside the others.
        if v.seconds is not None and v.isolates_model:
            x = _time(incident.onset_ns + int(v.seconds * 1e9))
            fig.add_vline(x=x, line_dash="dot", line_color="#333", row="all", col=1)
            fig.add_annotation(
                x=x,
                y=1.0,
                yref="y domain",
                yanchor="top",
                xanchor="left",
                text=f"model isolated ({VIEW_LABELS[v.view]}): +{seconds(v.seconds)}",
                showarrow=False,
                bgcolor="rgba(255, 255, 255, 0.8)",
                font={"size": 11},
            )
    from ._words import culprit_text

    fig.update_layout(
        title={
            "text": f"{incident.id}: culprit {culprit_text(incident.to_dict())}"
            f"<br><sup>{isolation_note(incident)}</sup>",
        },
        template="plotly_white",
        height=200 + 240 * len(signals),
        margin={"t": 110},
    )
    fig.update_xaxes(title_text="time (UTC)", row=len(signals), col=1)
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
