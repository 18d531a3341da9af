"""faultlens.analyzer: ingest OTLP into DuckDB and answer the incident questions."""

from faultlens.analyzer._api import (
    Analysis,
    Candidate,
    Incident,
    incident_report,
    incidents_json,
    open,
)
from faultlens.analyzer._ingest import IngestReport, ingest
from faultlens.analyzer._receiver import collect, receiver_app
from faultlens.analyzer._store import StoreError, connect

__all__: list[str] = [
    "Analysis",
    "Candidate",
    "Incident",
    "incident_report",
    "incidents_json",
    "open",
    "IngestReport",
    "StoreError",
    "collect",
    "connect",
    "ingest",
    "receiver_app",
]
