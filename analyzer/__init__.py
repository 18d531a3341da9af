"""faultlens.analyzer: ingest OTLP into DuckDB and answer the incident questions."""

__all__: list[str] = []
