"""The post-mortem of one incident, as Markdown or self-contained HTML with plotly charts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..analysis._contract import incident_id_prefix
from ._api import Analysis, open

__all__ = ["incident_report"]


def incident_report(
    db: str | Path | Analysis, incident_id: str, *, fmt: str = "md", slo_ms: float | None = None
) -> str:
    """A post-mortem of one incident: Markdown, or self-contained HTML with plotly charts.
    ``db`` is a store, or an :class:`Analysis` of one (a time window, a server's cursor)."""
    a = db if isinstance(db, Analysis) else open(db)
    # The id starts with its run: analyse only that run.
    runs = [r for r in a.runs().run if incident_id.startswith(incident_id_prefix(r))]
    if len(runs) == 1:
        a = a.with_run(runs[0] or None)
    i = a.incident(incident_id, slo_ms=slo_ms)
    d = i.to_dict()
    when = lambda ns: dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()  # noqa: E731
    lines = [
        f"# Incident {i.id}",
        "",
        f"- Run: `{i.run or '(whole store)'}`, layout: {i.layout}",
        f"- Window: {when(i.onset_ns)} to {when(i.end_ns)} ({(i.end_ns - i.onset_ns) / 1e9:.0f} s)",
        f"- Culprit: **{i.culprit.service} / {i.culprit.model or 'model unknown'}**"
        + (f" (suspects: {', '.join(i.suspect_models)})" if i.suspect_models else ""),
        f"- Blast radius: {i.blast.requests} requests ({i.blast.share:.1%} of traffic), "
        f"collateral: {i.blast.collateral if i.blast.collateral is not None else 'n/a'}",
        f"- Per-model counterfactual: {d['counterfactual_per_model'] or 'n/a'}",
        "",
        "## Fault isolation",
        "",
        "| view | FIT (s) | suspects | spans to read | logs to read |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {v.view} | {v.seconds} | {v.suspects} | {v.evidence_spans} | {v.evidence_logs} |"
            for v in i.isolation
        ),
        "",
        "## Candidates",
        "",
        *(
            f"{c.rank}. {c.service} / {c.model or '-'} (score {c.score:.2f}): "
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
            f"{u['restarted']} models restarted, downtime {u['downtime_s']} s"
            for u in i.update_coupling
        ]
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
