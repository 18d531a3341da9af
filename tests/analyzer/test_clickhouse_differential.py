"""One analysis, two engines: `faultlens incidents` answers the same on DuckDB and on chDB.

The committed sample traces are ingested into DuckDB, and copied into chDB
under the OpenTelemetry Collector ClickHouse exporter's own DDL exactly as the
exporter writes them. Two ClickHouse variants cover what the exporter may
hand us: its current enum strings with model identity resolved through the
alias list at query time, and its older ``SPAN_KIND_SERVER`` /
``STATUS_CODE_ERROR`` strings with the optional materialized model columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from faultlens.analyzer import incidents_schema, ingest
from faultlens.analyzer.store._clickhouse_ddl import load_from_duckdb
from faultlens.analyzer.store._engines import open_engine
from faultlens.cli._app import app

DATA = Path(__file__).parents[2] / "sample_traces" / "data"

VARIANTS = {
    "Server-Error+alias-list": {"legacy_enums": False, "model_columns": False},
    "SPAN_KIND_SERVER+model-columns": {"legacy_enums": True, "model_columns": True},
}
runner = CliRunner()


def _runs() -> list[Path]:
    """Every committed scenario/layout folder (the ones with a truth.json)."""
    return sorted(p.parent for p in DATA.glob("*/*/truth.json"))


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("differential")
    duck = root / "sample.duckdb"
    report = ingest(_runs(), db=duck)
    assert report.quarantined == 0 and report.spans > 0
    dbs = {"duckdb": str(duck)}
    # One chDB directory per process: both variants are databases in it.
    for i, (name, options) in enumerate(VARIANTS.items()):
        db = f"chdb:{root / 'ch'}?database=otel_{i}"
        with open_engine(db, read_only=False) as engine:
            copied = load_from_duckdb(duck, engine, **options)
        assert copied["otel_traces"] == report.spans
        dbs[name] = db
    return dbs


def _incidents(db: str, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["incidents", "--db", db, "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rounded(value: Any) -> Any:
    """Floats to 9 significant digits: the engines sum in different orders."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _headline(answer: dict[str, Any]) -> list[tuple]:
    """Culprit, ranking, blast radius and isolation figures of each incident."""
    return [
        (
            i["id"],
            i["culprit"],
            [(c["service"], c["model"]) for c in i["candidates"]],
            i["blast_radius"],
            i["fault_isolation"],
        )
        for i in _rounded(answer)["incidents"]
    ]


def _assert_same(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    jsonschema.validate(answer, incidents_schema())
    assert _headline(answer) == _headline(expected)  # a readable failure first
    assert _rounded(answer) == _rounded(expected)  # then the whole answer


def test_all_sample_runs_answer_alike(stores) -> None:
    """Current enum strings, model identity through the alias list in SQL."""
    expected = _incidents(stores["duckdb"])
    assert len(expected["incidents"]) >= len(_runs()) // 2  # the sample holds real incidents
    _assert_same(_incidents(stores["Server-Error+alias-list"]), expected)


# The older enum strings with the materialized model columns, on two runs (one
# per layout) to keep the suite fast; the full store runs above.
@pytest.mark.parametrize("run", ["bad-deploy/per-model", "error-burst/monolith"])
def test_older_enums_and_model_columns_answer_alike(stores, run: str) -> None:
    expected = _incidents(stores["duckdb"], "--run", run)
    assert expected["incidents"]
    _assert_same(_incidents(stores["SPAN_KIND_SERVER+model-columns"], "--run", run), expected)
