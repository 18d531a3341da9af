"""The dashboard over the OpenTelemetry Collector's ClickHouse tables (chDB, embedded).

The same two sample runs copied into the exporter's ``otel_traces`` and ``otel_logs``:
every page runs, and shows the numbers the DuckDB store gives.
"""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from faultlens.analyzer.store._clickhouse_ddl import load_from_duckdb
from faultlens.analyzer.store._clickhouse_engines import _chdb_open
from faultlens.analyzer.store._engines import open_engine
from faultlens.dashboards import ENTRYPOINT


@pytest.fixture
def chdb_store(sample_db: str, tmp_path: Path) -> Iterator[str]:
    target = f"chdb:{tmp_path / 'ch'}"
    with open_engine(target, read_only=False) as engine:
        copied = load_from_duckdb(sample_db, engine)
    assert copied["otel_traces"] > 0 and copied["otel_logs"] > 0
    yield target
    # The dashboard's cached sessions hold chDB's one directory per process: free it.
    st.cache_resource.clear()
    st.cache_data.clear()
    gc.collect()
    assert not any(_chdb_open.values())


def _run(at: AppTest, page: str | None = None) -> AppTest:
    if page:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_every_page_over_chdb_shows_what_duckdb_shows(
    chdb_store: str, analysis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTLENS_DB", chdb_store)
    at = _run(AppTest.from_file(str(ENTRYPOINT), default_timeout=120))
    assert at.sidebar.caption[0].value.startswith("Store: chdb")  # markdown-escaped text
    incidents = [i.to_dict() for i in analysis.incidents()]  # the DuckDB store's answer
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Incidents"] == str(len(incidents))
    assert metrics["First culprit"] == incidents[0]["culprit"]["model"]
    blast = incidents[0]["blast_radius"]
    metrics = {m.label: m.value for m in _run(at, "incident").metric}
    assert metrics["Culprit service"] == incidents[0]["culprit"]["service"]
    assert metrics["Culprit model"] == incidents[0]["culprit"]["model"]
    assert metrics["Blast radius (requests)"] == str(blast["requests"])
    for page in ("contrast", "traces", "logs"):
        _run(at, page)
        assert at.get("plotly_chart") or at.dataframe or at.table, page


def test_a_clickhouse_server_that_does_not_answer_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FAULTLENS_DB", f"clickhouse://faultlens:secret@127.0.0.1:{port}/otel")
    at = AppTest.from_file(str(ENTRYPOINT), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    (error,) = [e.value for e in at.error]
    assert f"127.0.0.1:{port}" in error and "\n" not in error
    # The password is never shown.
    assert "secret" not in error
    assert "secret" not in at.sidebar.caption[0].value
    assert "faultlens@127.0.0.1" in at.sidebar.caption[0].value.replace("\\", "")
