"""One analysis, two engines: `faultlens incidents` answers the same on DuckDB and on chDB.

The committed sample traces are ingested into DuckDB, and copied into chDB
under the OpenTelemetry Collector ClickHouse exporter's own DDL exactly as the
exporter writes them. Two ClickHouse variants cover what the exporter may
hand us: its current enum strings with model identity resolved through the
alias list at query time, and its older ``SPAN_KIND_SERVER`` /
``STATUS_CODE_ERROR`` strings with the optional materialized model columns.

The metrics take the same path: two small runs with process and per-model metrics
(``metrics_runs.py``), ingested into DuckDB and copied into the exporter's metrics tables;
every table's rows, and the cost analysis (each run's cost, the layout verdict), read
alike on both engines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import numpy as np
import pytest
from metrics_runs import LOAD_MB, MODELS, SCENARIO, make_runs
from typer.testing import CliRunner

import faultlens.analyzer as fa
from faultlens.analyzer import incidents_schema, ingest
from faultlens.analyzer.store._clickhouse_ddl import faultlens_columns_sql, load_from_duckdb
from faultlens.analyzer.store._clickhouse_metrics import METRIC_COLUMNS
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
def root(tmp_path_factory) -> Path:
    """Where both fixtures keep their stores: one chDB directory per process."""
    return tmp_path_factory.mktemp("differential")


@pytest.fixture(scope="module")
def stores(root: Path) -> dict[str, str]:
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


# -- metrics: the exporter's metrics tables and the cost analysis ----------------------
METRICS_DB = "otel_metrics_runs"


@pytest.fixture(scope="module")
def metric_stores(root: Path) -> dict[str, str]:
    folders = make_runs(root / "metric-runs")
    duck = root / "metrics.duckdb"
    report = ingest(folders, db=duck)
    assert report.errors == () and report.data_points > 0
    db = f"chdb:{root / 'ch'}?database={METRICS_DB}"
    result = runner.invoke(app, ["clickhouse", "load", str(duck), "--db", db])  # as a user does
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(duck), read_only=True) as con:
        counts = {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("otel_traces", "otel_logs", *METRIC_COLUMNS)
        }
    # Every kind the runs recorded (the OTel SDK has no summary instrument).
    assert counts["otel_metrics_summary"] == 0
    assert result.stdout.strip() == ", ".join(
        f"{table}: {n} rows"
        for table, n in counts.items()
        if n or table in ("otel_traces", "otel_logs")
    )
    return {"duckdb": str(duck), "chdb": db}


def _plain(value: Any) -> Any:
    """A cell as plain Python, whichever engine's frame it came from (maps as sorted pairs)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | np.ndarray):
        items = [_plain(v) for v in value]
        if items and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str)
                         for i in items):  # fmt: skip
            return tuple(sorted(items))  # a map given as (key, value) rows
        return tuple(items)
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "value") and type(value).__name__ == "Timestamp":
        return int(value.value)
    return None if value is None or value != value else value


_OWN = ("ModelName", "ModelVersion", "ServiceInstanceId", "Layout")


@pytest.mark.parametrize("table", sorted(set(METRIC_COLUMNS) - {"otel_metrics_summary"}))
def test_every_metrics_table_reads_alike(metric_stores, table: str) -> None:
    """The exporter's columns, and faultlens' own computed over them, row for row."""
    columns = [*METRIC_COLUMNS[table], *_OWN]
    with duckdb.connect(metric_stores["duckdb"], read_only=True) as con:
        quoted = ", ".join(f'"{c}"' for c in columns)
        want = con.sql(f"SELECT {quoted} FROM {table}").df()
    with open_engine(metric_stores["chdb"]) as engine:
        source = faultlens_columns_sql(METRICS_DB, table=table, model_columns=False)
        quoted = ", ".join(f"`{c}`" for c in columns)
        got = engine.query(f"SELECT {quoted} FROM ({source})")
    assert len(want) > 0

    def rows(frame) -> list[tuple]:
        return sorted(
            tuple(_plain(v) for v in row) for row in frame[columns].itertuples(index=False)
        )

    assert rows(got) == rows(want)


def test_costs_and_the_layout_verdict_answer_alike(metric_stores) -> None:
    """Each run's measured cost (CPU, memory, processes, per-model CPU) and the verdict."""
    want = fa.open(metric_stores["duckdb"]).costs()
    assert set(want) == {f"{SCENARIO}/monolith", f"{SCENARIO}/per-model"}
    mono, per = want[f"{SCENARIO}/monolith"], want[f"{SCENARIO}/per-model"]
    assert (mono.processes, per.processes) == (1, 2)
    assert set(mono.model_cpu_seconds) == set(per.model_cpu_seconds) == set(MODELS)
    assert mono.cpu_seconds > 0 and mono.mean_rss_bytes > 1 << 20
    # Each model's load-time growth, beside the footprint: about what its load allocated.
    for cost in (mono, per):
        assert set(cost.model_load_growth_bytes) == set(MODELS)
        for m, grew in cost.model_load_growth_bytes.items():
            assert 0.8 * (LOAD_MB[m] << 20) < grew < 1.5 * (LOAD_MB[m] << 20), (m, grew)
    got = fa.open(metric_stores["chdb"]).costs()
    assert _rounded({r: c.to_dict() for r, c in got.items()}) == _rounded(
        {r: c.to_dict() for r, c in want.items()}
    )
    verdicts = {
        name: fa.open(db).layout_verdicts()[SCENARIO].to_dict()
        for name, db in metric_stores.items()
    }
    assert verdicts["duckdb"]["sentence"].startswith("per-model used ")
    assert _rounded(verdicts["chdb"]) == _rounded(verdicts["duckdb"])
    # One run's answer, on its own, still finds its sibling layout on ClickHouse.
    one = fa.open(metric_stores["chdb"], run=f"{SCENARIO}/per-model")
    assert _rounded(one.layout_verdicts()[SCENARIO].to_dict()) == _rounded(verdicts["duckdb"])
