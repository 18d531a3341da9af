"""The post-mortem of one incident, as Markdown or self-contained HTML with plotly charts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..analysis._contract import incident_id_prefix
from ..analysis._cost import Prices, RunCost, Verdict
from ._api import Analysis, open
from ._words import (
    VIEW_LABELS,
    counterfactual_text,
    culprit_text,
    isolation_text,
    isolation_time,
    plural,
)

__all__ = ["incident_report"]


def incident_report(
    db: str | Path | Analysis,
    incident_id: str,
    *,
    fmt: str = "md",
    slo_ms: float | None = None,
    prices: Prices | None = None,
) -> str:
    """A post-mortem of one incident: Markdown, or self-contained HTML with plotly charts.
    ``db`` is a store, or an :class:`Analysis` of one (a time window, a server's cursor)."""
    a = db if isinstance(db, Analysis) else open(db)
    # The id starts with its run: analyse only that run.
    runs = [r for r in a.runs().run if incident_id.startswith(incident_id_prefix(r))]
    if len(runs) == 1:
        a = Analysis(
            a.con.raw, run=runs[0] or None, dialect=a.d, settings=a.settings, window=a.window
        )
    i = a.incident(incident_id, slo_ms=slo_ms)
    d = i.to_dict()

    def when(ns: int) -> str:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    collateral = (
        "n/a (the culprit's model is unknown)"
        if i.blast.collateral is None
        else f"{i.blast.collateral} (affected requests that never touched the culprit)"
    )
    version = f", version {i.culprit.version}" if i.culprit.version else ""
    lines = [
        f"# Incident {i.id}",
        "",
        f"- Run: `{i.run or '(whole store)'}`, layout: {i.layout}",
        f"- Window: {when(i.onset_ns)} to {when(i.end_ns)} ({(i.end_ns - i.onset_ns) / 1e9:.0f} s)",
        f"- Culprit: **{culprit_text(d)}**{version}"
        + (f" (suspects: {', '.join(i.suspect_models)})" if i.suspect_models else ""),
        f"- Blast radius: {plural(i.blast.requests, 'request')} ({i.blast.share:.1%} of traffic), "
        f"collateral: {collateral}",
        f"- Per-model counterfactual: {counterfactual_text(d)}",
        "",
        "## Fault isolation",
        "",
        "| view | isolated in | suspects | spans to read | logs to read |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {VIEW_LABELS[v.view]} | {isolation_time(v.to_dict())} | {v.suspects} | "
            f"{v.evidence_spans} | {v.evidence_logs} |"
            for v in i.isolation
        ),
        "",
        *(f"- {VIEW_LABELS[v.view]}: {isolation_text(v.to_dict())}" for v in i.isolation),
        "",
        "## Candidates",
        "",
        *(
            f"{c.rank}. {c.service}{f' / {c.model}' if c.model else ''} (score {c.score:.2f}): "
            + "; ".join(c.evidence)
            for c in i.candidates[:8]
        ),
        "",
        "## Scopes that departed from baseline",
        "",
        *(f"- {s}" for s in i.scopes),
    ]
    if i.update_coupling:
        lines += ["", "## Update coupling", ""]
        lines += [
            f"- {u['service']}/{u['model']} {u['old_version']} -> {u['new_version']}: "
            f"{plural(int(u['restarted']), 'model')} restarted, downtime "
            + ("n/a" if u.get("downtime_s") is None else f"{float(u['downtime_s']):g} s")
            for u in i.update_coupling
        ]
    cost = a.costs(prices=prices).get(i.run)
    if cost is not None:
        verdicts = a.layout_verdicts(prices=prices, slo_ms=slo_ms)
        lines += _cost_section(cost, verdicts.get(cost.scenario))
    md = "\n".join(lines) + "\n"
    if fmt == "md":
        return md
    if fmt != "html":
        raise ValueError(f"--format {fmt}: expected md or html")
    import html as _html

    figs = [a.fig_incident_timeline(incident_id), a.fig_blast_radius(incident_id)]
    body = "".join(
        f.to_html(full_html=False, include_plotlyjs="inline" if n == 0 else False)
        for n, f in enumerate(figs)
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(i.id)}</title>"
        f"</head><body><pre>{_html.escape(md)}</pre>{body}</body></html>"
    )


def _cost_section(cost: RunCost, verdict: Verdict | None) -> list[str]:
    """The run's measured resource use, and the layout verdict when both layouts ran."""
    per_1k = "n/a" if cost.cpu_seconds_per_1k is None else f"{cost.cpu_seconds_per_1k:.3f}"
    lines = [
        "",
        "## Resource cost (measured, from the services' OTLP metrics)",
        "",
        f"- {cost.processes} processes ({cost.instances} incarnations), "
        f"{cost.requests} requests over {cost.seconds:.0f} s",
        *(
            [
                f"- Not measured: {cost.unmeasured_instances} incarnations seen in the spans "
                "exported no process metrics (they died before their first export); "
                "CPU and memory below leave them out and are a floor"
            ]
            if cost.unmeasured_instances
            else []
        ),
        f"- CPU: {cost.cpu_seconds:.2f} s, {per_1k} CPU-seconds per 1,000 requests",
        f"- Process footprint (measured), resident memory summed over processes: mean "
        f"{cost.mean_rss_bytes / 1e6:.0f} MB, peak {cost.peak_rss_bytes / 1e6:.0f} MB, idle "
        f"footprint {cost.idle_rss_bytes / 1e6:.0f} MB",
    ]
    if cost.model_load_growth_bytes:
        growth = ", ".join(
            f"{m} {b / 1e6:.1f} MB" for m, b in sorted(cost.model_load_growth_bytes.items())
        )
        lines.append(
            "- Load-time growth per model (an estimate: its process's resident memory growth "
            f"while the service loaded it; one heap cannot be split by model): {growth}"
        )
    if cost.model_cpu_seconds:
        split = ", ".join(f"{m} {s:.3f} s" for m, s in sorted(cost.model_cpu_seconds.items()))
        lines.append(f"- CPU inside each model's scope (thread CPU time): {split}")
    if cost.money:
        money = ", ".join(f"{k.replace('_', ' ')} {v:.6g}" for k, v in cost.money.items())
        lines.append(f"- In money at the given prices: {money}")
    if verdict is not None:
        lines += ["", "## Layout verdict", "", verdict.sentence + ".", ""]
        lines += ["| side | metric | monolith | per-model |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {r['side']} | {r['metric']} | {r['monolith']} | {r['per-model']} |"
            for r in verdict.table
        ]
    return lines
