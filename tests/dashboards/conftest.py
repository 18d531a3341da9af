"""One sample store per test session: two committed runs of the same scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from faultlens import analyzer
from faultlens.dashboards import ENTRYPOINT

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"
SCENARIO = "error-burst"
RUN = f"{SCENARIO}/monolith"  # the first run: the dashboard opens on it
OTHER = f"{SCENARIO}/per-model"


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DuckDB file holding the monolith and per-model runs of one sample scenario."""
    db = tmp_path_factory.mktemp("dashboard") / "sample.duckdb"
    paths = [SAMPLE_DATA / RUN, SAMPLE_DATA / OTHER]
    missing = [str(p) for p in paths if not p.is_dir()]
    assert not missing, f"committed sample traces missing: {missing}"
    analyzer.ingest([str(p) for p in paths], db=str(db))
    return str(db)


LATENCY = "cpu-hog"  # a latency fault: the culprit's own signal is latency, not errors


@pytest.fixture(scope="session")
def latency_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Both runs of a latency scenario: its monolith's service-only view names only the
    process (every model a suspect) while the model-aware view names the model."""
    db = tmp_path_factory.mktemp("dashboard") / "latency.duckdb"
    analyzer.ingest(
        [str(SAMPLE_DATA / LATENCY / "monolith"), str(SAMPLE_DATA / LATENCY / "per-model")],
        db=str(db),
    )
    return str(db)


@pytest.fixture(scope="session")
def monolith_only_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store holding only the monolith run: the contrast falls back to the projection."""
    db = tmp_path_factory.mktemp("dashboard") / "monolith.duckdb"
    analyzer.ingest([str(SAMPLE_DATA / RUN)], db=str(db))
    return str(db)


@pytest.fixture(scope="session")
def analysis(sample_db: str):
    """The analyzer's own answer for the run the dashboard opens on."""
    return analyzer.open(sample_db, read_only=True, run=RUN)


@pytest.fixture(scope="session")
def other_analysis(sample_db: str):
    """The analyzer over the per-model run of the same scenario."""
    return analyzer.open(sample_db, read_only=True, run=OTHER)


@pytest.fixture
def app(sample_db: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The dashboard over the sample store, run once (the Overview page)."""
    monkeypatch.setenv("FAULTLENS_DB", sample_db)
    at = AppTest.from_file(str(ENTRYPOINT), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at
