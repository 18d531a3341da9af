"""faultlens.analyzer: ingest OTLP into DuckDB and answer the incident questions."""

from .present._api import (
    Analysis,
    Candidate,
    Incident,
    incident_report,
    incidents_json,
)
from .present._window import TimeWindow, parse_window, windowed
from .serve._client import ServedAnalysis, open
from .serve._receiver import receiver_app
from .serve._server import collect, serve
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
    "serve",
    "ServedAnalysis",
    "TimeWindow",
    "parse_window",
    "windowed",
]
