"""Readable evidence for each ranked candidate, both sides labelled (baseline, incident).

What the incident page, the report and the JSON's ``evidence`` lists say about a
candidate; the scores themselves come from :mod:`._localize`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._evidence import Evidence
from ._localize import LOOKBACK_NS, SELF_RATIO

__all__ = ["Summary", "describe", "first_mover", "summarize"]


def first_mover(ev: Evidence, sig: dict[str, np.ndarray], ranked: pd.DataFrame) -> Any:
    """``((service, model), words)`` for the best-ranked candidate among those whose own
    signals departed first (ranked at the last bucket); None when none did. Ties share
    a bucket: the words say how many others departed in it too."""
    firsts = ranked[ranked.changed_first > 0]
    if firsts.empty:
        return None
    lead = firsts.iloc[0]
    model = lead.model if isinstance(lead.model, str) else None
    j = next(
        k
        for k, (s, m) in enumerate(zip(ev.services, ev.models, strict=True))
        if s == lead.service and m == model
    )
    t = int(sig["first_bucket"][j])
    what = sig["first_signal"][j]
    if t < 0:
        words = f"changed first among the candidates: {what}"
    else:
        start = int(ev.buckets[t])
        at = dt.datetime.fromtimestamp(start / 1e9, dt.UTC).strftime("%H:%M:%S UTC")
        words = (
            f"changed first among the candidates: {what}, in the {ev.bucket_ns / 1e9:g} s "
            f"bucket at onset +{(start - ev.onset_ns) / 1e9:g} s ({at})"
        )
    if len(firsts) > 1:
        others = len(firsts) - 1
        words += f"; {others} other candidate{'s' if others > 1 else ''} departed in it too"
    return (str(lead.service), model), words


def _sums(frame: pd.DataFrame, onset_ns: int, columns: list[str]) -> dict[tuple, np.ndarray]:
    """Per (service, model or None, incident?) the column sums of ``frame``'s rows (a few
    hundred rows: summed row by row, cheaper here than a pandas grouping)."""
    out: dict[tuple, np.ndarray] = {}
    if frame.empty:
        return out
    values = frame[columns].to_numpy(dtype=float)
    models = frame["model"].to_numpy(dtype=object)
    incident = frame["bucket_start"].to_numpy() >= onset_ns
    for service, model, inc, row in zip(
        frame["service"].to_numpy(dtype=object), models, incident, values, strict=True
    ):
        key = (service, model if isinstance(model, str) else None, bool(inc))
        if key in out:
            out[key] = out[key] + row
        else:
            out[key] = row.copy()
    return out


@dataclass(frozen=True)
class Summary:
    """Per candidate, its span and log sums at baseline and during the incident: what
    :func:`describe` reads for every candidate, computed once per incident and view."""

    spans: dict[tuple, np.ndarray]  # origin_errors, spans, self_ns
    logs: dict[tuple, np.ndarray]  # warn_logs, error_logs, fatal_logs
    versions: dict[tuple, list[tuple[int, str]]]  # (service, model): (first_ns, version)...


_SPAN_SUMS = ["origin_errors", "spans", "self_ns"]
_LOG_SUMS = ["warn_logs", "error_logs", "fatal_logs"]


def summarize(ev: Evidence) -> Summary:
    versions: dict[tuple, list[tuple[int, str]]] = {}
    v = ev.versions.sort_values("first_ns", kind="stable")
    for service, model, version, first in zip(
        v.service, v.model, v.version, v.first_ns, strict=True
    ):
        if isinstance(model, str):
            versions.setdefault((service, model), []).append((int(first), str(version)))
    return Summary(
        _sums(ev.spans, ev.onset_ns, _SPAN_SUMS),
        _sums(ev.logs, ev.onset_ns, _LOG_SUMS),
        versions,
    )


def describe(
    ev: Evidence,
    r: Any,
    *,
    svc_models: list[str],
    summary: Summary | None = None,
    first: str | None = None,
) -> tuple[str, ...]:
    """Readable evidence for one ranked candidate; both sides labelled (baseline, incident).
    ``first``: :func:`first_mover`'s words, given only to the candidate they are about."""
    model = r.model if isinstance(r.model, str) else None
    inc_s = (ev.buckets[-1] + ev.bucket_ns - ev.onset_ns) / 1e9 if len(ev.buckets) else 0.0
    base_s = ev.base_buckets * ev.bucket_ns / 1e9
    summary = summary or summarize(ev)

    zero = np.zeros(3)
    b_origin, b_spans, b_self = summary.spans.get((r.service, model, False), zero)
    i_origin, i_spans, i_self = summary.spans.get((r.service, model, True), zero)
    b_logs = summary.logs.get((r.service, model, False))
    i_logs = summary.logs.get((r.service, model, True))
    out = []
    if i_origin or b_origin:
        out.append(
            "origin errors (error spans with no erroring child): baseline "
            f"{b_origin / base_s:.2f}/s, incident {i_origin / inc_s:.2f}/s"
        )
    if i_spans and b_spans:
        b = b_self / b_spans / 1e6
        i = i_self / i_spans / 1e6
        if i >= SELF_RATIO * max(b, 1e-6) or r.self_time > 0:
            out.append(f"self-time per span: baseline {b:.1f} ms, incident {i:.1f} ms")
    if b_logs is not None or i_logs is not None:
        lb = [int(x) for x in (zero if b_logs is None else b_logs)]
        li = [int(x) for x in (zero if i_logs is None else i_logs)]
        out.append(
            f"warning/error/fatal logs: baseline {lb[0]}/{lb[1]}/{lb[2]}, "
            f"incident {li[0]}/{li[1]}/{li[2]}"
        )
    if r.version_change > 0 or r.over_representation > 0:
        by_version, bad_total, base_total = ev.exposure_by_candidate
        seen = by_version.get((r.service, model), {})
        for ver in sorted(seen):
            pi = seen[ver][0] / bad_total
            pb = seen[ver][1] / base_total
            if pi - pb > 0.05:
                item = r.service if model is None else model
                item += "" if ver == "*" else f"@{ver}"
                out.append(
                    f"{item} in bad requests: baseline {pb:.0%} of requests, incident {pi:.0%}"
                )
    vs = summary.versions.get((r.service, model), []) if model is not None else []
    for (_, prev), (first_ns, cur) in zip(vs[:-1], vs[1:], strict=True):
        if first_ns >= ev.onset_ns - LOOKBACK_NS:
            out.append(
                f"version change {prev} -> {cur} at onset {(first_ns - ev.onset_ns) / 1e9:+.1f} s"
            )
    if r.restart > 0:
        rs = ev.restarts[ev.restarts.service == r.service].first_ns
        rs = rs[rs >= ev.onset_ns - LOOKBACK_NS]
        out.append(
            f"{r.service} restarted {len(rs)} time(s) (new service.instance.id), first at onset "
            f"{(rs.min() - ev.onset_ns) / 1e9:+.1f} s"
        )
    if r.silence > 0:
        out.append(
            f"spans per second: baseline {b_spans / base_s:.1f}, "
            f"incident {i_spans / inc_s:.1f} (fell silent)"
        )
    if first is not None:
        out.append(first)
    if model is None and len(svc_models) > 1:
        out.append(
            f"{r.service} runs {len(svc_models)} models ({', '.join(svc_models)}); the data "
            "holds no evidence of which one failed: all are suspects"
        )
    return tuple(out) or ("no departure from baseline",)
