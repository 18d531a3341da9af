"""Fault-isolation time by replay, the suspect set and the evidence volume, in two views.

DESIGN.md: "Fault-isolation time (FIT): replay the localization on telemetry
up to time t, bucket by bucket from onset; FIT = the first t at which the
final culprit ranks first and stays first, minus onset. Report with it the
suspect set (candidates still within the score margin) and the evidence
volume (spans and log records in the culprit's failure domain that a person
would have to read: the whole process in a monolith, one service per model
otherwise). Compute all three for two views of the same data: with model
identity, and service-level only (as plain OTel would show it)."

When the culprit is a multi-model process whose model the data does not name (it died
without the fatal span or log), the model-aware view still reads model identity from
absence (:func:`~faultlens.analyzer.analysis._localize.left_by_absence`): its suspect set is the
models that stopped completing, and its evidence volume is what those models produced.
The service-only view cannot do this and reads the whole process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..store._dialect import Dialect
from ._evidence import Evidence, LogSums, logs_in
from ._localize import ranking, suspects

__all__ = ["IsolationView", "evidence_volume", "isolates_model", "isolation_replay"]


@dataclass(frozen=True)
class IsolationView:
    """FIT (None when the culprit never ranked first and stayed first) and its context.

    ``isolates_model``: whether what this view names is one model (or a service that runs
    at most one). False for the service-only view of a shared process: its FIT is when
    it named the process, and its suspects and evidence are what is still left to read.
    """

    view: str
    seconds: float | None
    suspects: int
    evidence_spans: int
    evidence_logs: int
    isolates_model: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "suspects": self.suspects,
            "evidence_spans": self.evidence_spans,
            "evidence_logs": self.evidence_logs,
            "isolates_model": self.isolates_model,
        }


def isolates_model(
    view: str, *, model: str | None, left: tuple[str, ...], service_models: int
) -> bool:
    """Whether ``view`` narrows the culprit to one model: the culprit service runs at most
    one model, or (model-aware only) the culprit's model is known or absence leaves one."""
    if service_models <= 1:
        return True
    return view == "model_aware" and (model is not None or len(left) == 1)


def isolation_replay(
    ev: Evidence,
    sig: dict[str, np.ndarray],
    *,
    service: str,
    model: str | None,
    left: tuple[str, ...] = (),
) -> tuple[float | None, int]:
    """(FIT seconds, suspects at that moment) for the final culprit in this view; ``left``:
    the models absence leaves suspect when the model is unknown
    (:func:`~faultlens.analyzer.analysis._localize.left_by_absence`)."""
    T = len(ev.buckets)
    if T == 0:
        return None, 0
    narrowed = {service: left} if left else None
    tops = [_top_is(ev, sig, t, service=service, model=model) for t in range(T)]
    if not tops[-1]:
        return None, suspects(ranking(ev, sig, T - 1), ev.view, narrowed=narrowed)
    t = T - 1
    while t > 0 and tops[t - 1]:
        t -= 1
    return round((t + 1) * ev.bucket_ns / 1e9, 3), suspects(
        ranking(ev, sig, t), ev.view, narrowed=narrowed
    )


def _top_is(
    ev: Evidence, sig: dict[str, np.ndarray], t: int, *, service: str, model: str | None
) -> bool:
    """Whether ``ranking(ev, sig, t)`` puts (service, model) first with a positive score,
    without building the ranking: the best rounded score, then model null first, then
    service and model names (ranking's order)."""
    score = np.round(sig["score"][t], 4)
    if not len(score) or np.isnan(score).all():
        return False
    best = np.nanmax(score)
    tied = np.flatnonzero(score == best)
    models = [ev.models[i] for i in tied]
    services = ev.services[tied]
    top = min(range(len(tied)), key=lambda i: (models[i] is not None, services[i], models[i] or ""))
    hit = services[top] == service and (ev.view == "service_only" or models[top] == model)
    return bool(hit and float(best) > 0)


def evidence_volume(
    con: Any,
    d: Dialect,
    *,
    run: str,
    onset: int,
    end: int,
    service: str,
    model: str | None,
    logs: LogSums,
    left: tuple[str, ...] = (),
) -> tuple[int, int]:
    """Spans and log records in the failure domain during the incident.

    ``model`` narrows a multi-model process to what that model produced: what a
    person with model identity has to read; None means the whole service, unless
    ``left`` (model-aware: :func:`~faultlens.analyzer.analysis._localize.left_by_absence`) leaves
    only some of its models suspect: then what those models produced. Spans are summed
    from ``fl_span_buckets`` (by each span's own service and model), log records from
    ``logs``; ``onset`` and ``end`` are bucket starts.
    """
    models: tuple[str | None, ...] = left if model is None and left else (model,)
    p = {"run": run, "onset": onset, "end": end, "service": service}
    prm = {k: d.param(k, "String" if k in ("run", "service") else "Int64") for k in p}
    per_model = con.execute(
        f"""SELECT model, sum(spans) AS spans FROM fl_span_buckets
            WHERE run = {prm["run"]} AND service = {prm["service"]}
              AND bucket_start >= {prm["onset"]} AND bucket_start < {prm["end"]}
            GROUP BY model""",
        p,
    ).fetchall()
    spans = sum(n for m, n in per_model if models == (None,) or m in models)
    n_logs = sum(
        logs_in(logs, run=run, onset=onset, end=end, service=service, model=m) for m in models
    )
    return int(spans), n_logs
