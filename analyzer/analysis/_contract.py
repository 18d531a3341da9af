"""The incidents contract: the data classes an analysis returns and their JSON shape.

``Incident.to_dict`` is one element of ``faultlens incidents --format json``; the JSON
Schema it satisfies ships beside the presenter (``faultlens.analyzer.incidents_schema``).
An incident's id is made and read back by the two helpers here, nowhere else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from . import _impact, _isolation

__all__ = ["Candidate", "Incident", "incident_id", "incident_id_prefix"]


def incident_id_prefix(run: str) -> str:
    """The start every id of ``run``'s incidents shares (``store`` when no run is set)."""
    return f"{(run or 'store').replace('/', '-')}-"


def incident_id(run: str, onset_ns: int) -> str:
    """``<run, / as ->-<onset, UTC, to the second>``: stable for an incident's life."""
    stamp = dt.datetime.fromtimestamp(onset_ns / 1e9, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return incident_id_prefix(run) + stamp


@dataclass(frozen=True)
class Candidate:
    """One (service, model) suspect with its score and readable evidence."""

    rank: int
    service: str
    model: str | None
    version: str | None
    score: float
    evidence: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "service": self.service,
            "model": self.model,
            "version": self.version,
            "score": self.score,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Incident:
    """One incident: when, who, how long to see it, how far it spread."""

    id: str
    run: str
    layout: str
    onset_ns: int
    end_ns: int
    baseline_start_ns: int
    scopes: tuple[str, ...]
    culprit: Candidate
    candidates: tuple[Candidate, ...]
    isolation: tuple[_isolation.IsolationView, ...]
    blast: _impact.BlastRadius = field(repr=False)
    counterfactual: dict[str, Any] | None
    update_coupling: tuple[dict[str, Any], ...]
    suspect_models: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The shape of ``faultlens incidents --format json`` (incidents.schema.json)."""
        by = self.blast.breakdown

        def counts(dim: str) -> dict[str, int]:
            rows = by[by.dimension == dim]
            return {str(k): int(v) for k, v in zip(rows.key, rows.requests, strict=True)}

        return {
            "id": self.id,
            "run": self.run,
            "layout": self.layout,
            "onset_ns": self.onset_ns,
            "end_ns": self.end_ns,
            "scopes": list(self.scopes),
            "culprit": {
                "service": self.culprit.service,
                "model": self.culprit.model,
                "version": self.culprit.version,
            },
            "suspect_models": list(self.suspect_models),
            "candidates": [c.to_dict() for c in self.candidates],
            "fault_isolation": {v.view: v.to_dict() for v in self.isolation},
            "blast_radius": {
                "requests": self.blast.requests,
                "share": self.blast.share,
                "total_requests": self.blast.total,
                "collateral": self.blast.collateral,
                "endpoints": counts("endpoint"),
                "models": counts("model"),
                "services": counts("service"),
            },
            "counterfactual_per_model": self.counterfactual,
            "update_coupling": list(self.update_coupling),
        }
