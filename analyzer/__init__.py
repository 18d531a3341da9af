"""faultlens.analyzer: ingest OTLP into DuckDB and answer the incident questions."""

from faultlens.analyzer._ingest import IngestReport, ingest
from faultlens.analyzer._receiver import collect, receiver_app
from faultlens.analyzer._store import StoreError, connect

__all__: list[str] = [
    "IngestReport",
    "StoreError",
    "collect",
    "connect",
    "ingest",
    "receiver_app",
]
