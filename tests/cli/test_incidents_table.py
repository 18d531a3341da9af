"""`faultlens incidents` in an 80-column terminal: every id whole, every line within 80,
and the service-only view of a shared process reads "not isolated", never seconds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import faultlens.analyzer as fa
from faultlens.cli._app import app

DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"
# The longest run name (its id is the widest) beside a monolith whose service-only view
# names the process in 5 s while the model-aware view takes 10 s.
RUNS = ("slow-dependency/per-model", "cpu-hog/monolith", "crash/monolith")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("table") / "runs.duckdb"
    fa.ingest([DATA / r for r in RUNS], db=db)
    return db


def _run(store: Path, columns: int, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["incidents", "--db", str(store), *args], env={"COLUMNS": str(columns)}
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("columns", [80, 100, 250])
def test_every_id_whole_and_within_the_terminal(store: Path, columns: int) -> None:
    out = _run(store, columns)
    doc = fa.incidents_json(store)
    assert len(doc["incidents"]) == len(RUNS)
    for incident in doc["incidents"]:
        assert re.search(rf"^ ?{re.escape(incident['id'])}\s", out, re.M), (incident["id"], out)
    assert "…" not in out
    assert max(map(len, out.splitlines())) <= columns, out


def _row(out: str, run: str) -> str:
    return next(line for line in out.splitlines() if line.lstrip().startswith(run))


def test_service_only_of_a_monolith_reads_not_isolated(store: Path) -> None:
    iso = {i["run"]: i["fault_isolation"] for i in fa.incidents_json(store)["incidents"]}[
        "cpu-hog/monolith"
    ]
    # Numbers that could read as "plain OTel isolates as fast, or faster".
    assert iso["service_only"]["seconds"] <= iso["model_aware"]["seconds"]
    assert not iso["service_only"]["isolates_model"] and iso["model_aware"]["isolates_model"]
    wide = _row(_run(store, 250), "cpu-hog-monolith")
    read = iso["service_only"]["evidence_spans"] + iso["service_only"]["evidence_logs"]
    assert (
        f"model not isolated: {iso['service_only']['suspects']} suspects, "
        f"{read} spans and logs to read"
    ) in wide
    ma = iso["model_aware"]
    assert f"{ma['seconds']:g} s, {ma['suspects']} suspect" in wide
    assert f"{iso['service_only']['seconds']:g} s" not in wide.split("model not isolated")[1]
    narrow = _run(store, 80)
    row = _row(narrow, "cpu-hog-monolith").split()
    assert row[1:4] == ["sentiment", f"{iso['model_aware']['seconds']:g}", "s"], row
    assert row[4] == "not", row  # "not isolated", wrapped in its cell: no seconds
    assert "not isolated: the view names the shared process" in " ".join(narrow.split())
    # Where the service-only view reaches the model (one per service), both show seconds.
    per_model = _row(narrow, "slow-dependency-per-model").split()
    assert per_model[1:] == ["feature-store", "5", "s", "5", "s"], per_model


def test_json_is_the_contract_plus_isolates_model(store: Path) -> None:
    doc = json.loads(_run(store, 80, "--format", "json"))
    assert doc == fa.incidents_json(store)
    # The notebook API's dict is plain JSON too: no tuples, no numpy scalars.
    plain = (dict, list, str, int, float, bool, type(None))
    stack = [fa.incidents_json(store)]
    while stack:
        value = stack.pop()
        assert type(value) in plain, (type(value), value)
        stack.extend(value.values() if isinstance(value, dict) else [])
        stack.extend(value if isinstance(value, list) else [])
    for incident in doc["incidents"]:
        for view in incident["fault_isolation"].values():
            assert set(view) == {
                "seconds",
                "suspects",
                "evidence_spans",
                "evidence_logs",
                "isolates_model",
            }


def test_a_one_run_analysis_keeps_its_run_after_the_layout_verdict(tmp_path: Path) -> None:
    """The verdict analyses the whole store and the sibling run beside a one-run analysis
    (the dashboard's Layout contrast): its spans afterwards are still its run's alone."""
    db = tmp_path / "pair.duckdb"
    fa.ingest([DATA / "error-burst/monolith", DATA / "error-burst/per-model"], db=db)
    a = fa.open(db, run="error-burst/monolith")
    args = dict(model=None, endpoint=None, status="Error", start_ns=None, end_ns=None,
                min_duration_ms=None, limit=10_000)  # fmt: skip
    before = a.spans(**args)
    assert set(a.layout_verdicts()) == {"error-burst"}
    after = a.spans(**args)
    assert len(after) == len(before) > 0
    assert set(after.service) <= {"monolith", "feature-store", "loadgen"}
