"""faultlens.analyzer: ingest OTLP into DuckDB and answer the incident questions.

The data flows through six rooms, each importing only from the rooms before it:
``decode`` (OTLP files and messages into columns) -> ``store`` (the DuckDB schema, writes,
engines and dialects) -> ``facts`` (the span facts every analysis reads) -> ``analysis``
(detection, culprit ranking, isolation time, blast radius, coupling) -> ``present`` (the
notebook API, the report, figures, the JSON Schema) -> ``serve`` (what takes data in and
keeps the facts current: file ingest, the OTLP receiver). This module is the short
public surface.
"""

from .present._api import (
    Analysis,
    Candidate,
    Incident,
    incidents_json,
    incidents_schema,
)
from .present._report import incident_report
from .present._window import TimeWindow, parse_window
from .serve._client import ServedAnalysis, open
from .serve._ingest import IngestReport, ingest
from .serve._receiver import receiver_app
from .serve._server import collect
from .store._clickhouse_ddl import ddl_text as clickhouse_ddl
from .store._target import DbTargetError, Target, parse_db
from .store._write import DEFAULT_DB, StoreError, connect

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
    # added in 0.2
    "DEFAULT_DB",
    "DbTargetError",
    "Target",
    "clickhouse_ddl",
    "incidents_schema",
    "parse_db",
    "ServedAnalysis",
    "TimeWindow",
    "parse_window",
]
