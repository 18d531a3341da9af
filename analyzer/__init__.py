"""faultlens.analyzer: ingest OTLP into DuckDB and answer the incident questions."""

from .present._api import (
    Analysis,
    Candidate,
    Incident,
    incident_report,
    incidents_json,
    open,
)
from .serve._receiver import collect, receiver_app
from .store._ingest import IngestReport, ingest
from .store._write import StoreError, connect

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
