"""Sample traces land in chDB exactly as the Collector's ClickHouse exporter would write them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from faultlens.analyzer import ingest
from faultlens.analyzer.store._clickhouse_ddl import faultlens_columns_sql, load_from_duckdb
from faultlens.analyzer.store._engines import open_engine

SAMPLE = Path(__file__).parents[2] / "sample_traces" / "data" / "error-burst" / "monolith"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("duck") / "s.duckdb"
    report = ingest([SAMPLE], db=path)
    assert report.quarantined == 0 and report.spans > 0
    return path


def _duckdb_spans(store: Path, *, legacy: bool) -> pd.DataFrame:
    kind = "'SPAN_KIND_' || upper(SpanKind)" if legacy else "SpanKind"
    code = "'STATUS_CODE_' || upper(StatusCode)" if legacy else "StatusCode"
    sql = f"""
        SELECT TraceId, SpanId, ParentSpanId, epoch_ns(Timestamp) AS ns, Duration,
               SpanName, {kind} AS kind, {code} AS code, ServiceName,
               SpanAttributes AS attrs, ResourceAttributes AS res, "Events.Name" AS events,
               ModelName AS model, ModelVersion AS version, ServiceInstanceId, HttpRoute, Layout
        FROM otel_traces ORDER BY TraceId, SpanId"""
    with duckdb.connect(str(store), read_only=True) as con:
        return con.sql(sql).df()


def _chdb_spans(engine, *, materialized: bool) -> pd.DataFrame:
    """The exporter's rows with faultlens' columns computed over them, as the analysis sees them."""
    source = faultlens_columns_sql(
        engine.target.database, table="otel_traces", model_columns=materialized
    )
    sql = f"""
        SELECT TraceId, SpanId, ParentSpanId, toUnixTimestamp64Nano(Timestamp) AS ns, Duration,
               SpanName, SpanKind AS kind, StatusCode AS code, ServiceName,
               SpanAttributes AS attrs, ResourceAttributes AS res, Events.Name AS events,
               ModelName AS model, ModelVersion AS version, ServiceInstanceId, HttpRoute, Layout
        FROM ({source}) ORDER BY TraceId, SpanId"""
    return engine.query(sql)


def _comparable(frame: pd.DataFrame) -> list[dict]:
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in rows:
        row["attrs"] = dict(row["attrs"])
        row["res"] = dict(row["res"])
        row["events"] = list(row["events"])
        row["ns"] = int(row["ns"])
        row["Duration"] = int(row["Duration"])
    return rows


@pytest.mark.parametrize("legacy", [False, True], ids=["Server-Error", "SPAN_KIND_SERVER"])
@pytest.mark.parametrize("materialized", [False, True], ids=["inline-alias", "model-columns"])
def test_spans_round_trip(store, tmp_path, legacy: bool, materialized: bool) -> None:
    with open_engine(f"chdb:{tmp_path / 'ch'}", read_only=False) as engine:
        copied = load_from_duckdb(store, engine, legacy_enums=legacy, model_columns=materialized)
        assert engine.has_model_columns is materialized
        got = _comparable(_chdb_spans(engine, materialized=materialized))
    want = _comparable(_duckdb_spans(store, legacy=legacy))
    assert copied["otel_traces"] == len(want)
    assert got == want


def test_logs_round_trip(store, tmp_path) -> None:
    sql_duck = """
        SELECT epoch_ns(Timestamp) AS ns, TraceId, SpanId, SeverityText, SeverityNumber,
               ServiceName, Body, LogAttributes AS attrs, ModelName AS model
        FROM otel_logs ORDER BY ns, Body"""
    with duckdb.connect(str(store), read_only=True) as con:
        want = con.sql(sql_duck).df()
    with open_engine(f"chdb:{tmp_path / 'ch'}", read_only=False) as engine:
        load_from_duckdb(store, engine, model_columns=True)
        got = engine.query(
            "SELECT toUnixTimestamp64Nano(Timestamp) AS ns, TraceId, SpanId, SeverityText,"
            " SeverityNumber, ServiceName, Body, LogAttributes AS attrs, ModelName AS model"
            f" FROM {engine.table('otel_logs')} ORDER BY ns, Body"
        )
    assert len(want) > 0

    def rows(frame: pd.DataFrame) -> list[dict]:
        out = frame.astype(object).where(frame.notna(), None).to_dict("records")
        return [
            {
                **r,
                "attrs": dict(r["attrs"]),
                "ns": int(r["ns"]),
                "SeverityNumber": int(r["SeverityNumber"]),
            }
            for r in out
        ]

    assert rows(got) == rows(want)
