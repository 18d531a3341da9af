"""The words every surface uses for the same numbers: CLI, report, dashboard, figures.

One place, so the CLI table, the Markdown report, the dashboard and the notebook's
figures say the same thing. The functions read the incidents JSON's shapes
(``Incident.to_dict()``), so the dashboard's schema dicts and the analyzer's objects
(through ``to_dict``) both reach them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "VIEW_LABELS",
    "counterfactual_text",
    "culprit_text",
    "isolation_text",
    "isolation_time",
    "isolation_words",
    "plural",
    "seconds",
    "to_read",
]

# The two ways of looking at the same telemetry, as a person names them.
VIEW_LABELS = {"model_aware": "model-aware", "service_only": "service-only"}
NOT_ISOLATED = "model not isolated"


def plural(n: int, word: str) -> str:
    """``1 suspect``, ``6 suspects``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def seconds(value: float | None) -> str:
    """Isolation time as on-call reads it; ``never`` when the culprit never settled first."""
    return "never" if value is None else f"{value:g} s"


def to_read(view: Mapping[str, Any]) -> int:
    """Spans and log records a person reads in the view's failure domain."""
    return int(view["evidence_spans"]) + int(view["evidence_logs"])


def isolation_time(view: Mapping[str, Any]) -> str:
    """A view's isolation time where it names one model; where it only names a shared
    process, ``model not isolated`` (its seconds are when it named the process: not
    comparable with a view that reached the model)."""
    return seconds(view["seconds"]) if view["isolates_model"] else NOT_ISOLATED


def isolation_text(view: Mapping[str, Any]) -> str:
    """What a view isolated, in one line: ``10 s, 1 suspect, 47 spans and logs to read``
    or ``model not isolated: 6 suspects, 888 spans and logs to read``."""
    return isolation_words(
        fit_s=view["seconds"],
        suspects=int(view["suspects"]),
        to_read=to_read(view),
        isolates_model=bool(view["isolates_model"]),
    )


def isolation_words(
    *, fit_s: float | None, suspects: int, to_read: int, isolates_model: bool
) -> str:
    """:func:`isolation_text` from its parts (the layout contrast holds them as rows)."""
    rest = f"{plural(suspects, 'suspect')}, {to_read} spans and logs to read"
    if not isolates_model:
        return f"{NOT_ISOLATED}: {rest}"
    if fit_s is None:
        return f"culprit never settled first: {rest}"
    return f"{seconds(fit_s)}, {rest}"


def culprit_text(incident: Mapping[str, Any]) -> str:
    """``monolith / sentiment``; ``monolith / model unknown`` (a shared process whose model
    the data does not name); ``feature-store (no model)`` (a service that runs none)."""
    c = incident["culprit"]
    if c["model"]:
        return f"{c['service']} / {c['model']}"
    if incident.get("suspect_models"):
        return f"{c['service']} / model unknown"
    return f"{c['service']} (no model)"


def counterfactual_text(incident: Mapping[str, Any]) -> str:
    """The per-model counterfactual of an incident (its JSON) as a sentence."""
    cf = incident["counterfactual_per_model"]
    blast = incident["blast_radius"]
    culprit = incident["culprit"]
    if cf is None:
        if incident.get("layout") != "monolith":
            return "not projected: this run already serves one model per service"
        return "not projected: the culprit's model is unknown inside the shared process"
    affected = f"{plural(int(cf['requests']), 'request')} ({float(cf['share']):.1%} of traffic)"
    if incident["fault_isolation"]["service_only"]["isolates_model"]:
        return (
            f"unchanged with one model per service: {culprit['service']} already runs apart, "
            f"{affected} affected either way"
        )
    if int(cf["requests"]) == int(blast["requests"]):
        return (
            f"had {culprit['model']} run in its own service, the same {affected} would "
            "have been affected: none of them was collateral"
        )
    return (
        f"had {culprit['model']} run in its own service, {affected} would have been "
        f"affected, against {blast['requests']} ({float(blast['share']):.1%}) here"
    )
