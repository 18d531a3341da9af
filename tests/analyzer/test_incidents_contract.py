"""`faultlens incidents --format json` on every sample run at once, against the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

import faultlens.analyzer as fa
from faultlens.cli._app import app

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "sample_traces" / "data"
SCHEMA = fa.incidents_schema()
RUNS = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in DATA.glob("*/*/truth.json"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("all") / "all.duckdb"
    fa.ingest([DATA / r for r in RUNS], db=db)
    return db


def test_every_run_is_listed_and_yields_one_incident(store: Path) -> None:
    a = fa.open(store)
    assert sorted(a.runs().run) == RUNS
    incs = a.incidents(slo_ms=300)
    assert sorted(i.run for i in incs) == RUNS


def test_json_output_validates_against_the_contract(store: Path) -> None:
    result = CliRunner().invoke(
        app, ["incidents", "--db", str(store), "--format", "json", "--slo-ms", "300"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    jsonschema.validate(doc, SCHEMA)
    truth = {
        r: json.loads((DATA / r / "truth.json").read_text())["culprit"]["service"] for r in RUNS
    }
    assert {i["run"]: i["culprit"]["service"] for i in doc["incidents"]} == truth


def test_run_filter_and_report(store: Path, tmp_path: Path) -> None:
    a = fa.open(store, run="error-burst/monolith")
    (inc,) = a.incidents()
    assert (inc.culprit.service, inc.culprit.model) == ("monolith", "fraud")
    assert list(a.candidates(inc.id).columns) == [
        "rank",
        "service",
        "model",
        "version",
        "score",
        "evidence",
    ]
    assert list(a.blast_radius(inc.id).columns) == [
        "dimension",
        "key",
        "requests",
        "share",
        "collateral",
    ]
    assert list(a.isolation(inc.id).view) == ["model_aware", "service_only"]
    assert dict(zip(a.layouts().service, a.layouts().layout, strict=True)) == {
        "feature-store": "no model",
        "loadgen": "no model",
        "monolith": "monolith",
    }
    md = CliRunner().invoke(app, ["report", inc.id, "--db", str(store), "--format", "md"])
    assert md.exit_code == 0 and "monolith / fraud" in md.output, md.output
    html = CliRunner().invoke(app, ["report", inc.id, "--db", str(store), "--format", "html"])
    assert html.exit_code == 0 and html.output.lstrip().startswith("<!doctype html>")
    missing = CliRunner().invoke(app, ["report", "nope", "--db", str(store)])
    assert missing.exit_code == 1 and "no incident 'nope'" in missing.output


def test_browsing_and_coupling(store: Path) -> None:
    a = fa.open(store, run="bad-deploy/monolith")
    up = a.update_coupling()
    row = up[up.model == "tokenize"].iloc[0]
    assert (row.old_version, row.new_version, row.restarted) == ("1.2.0", "1.3.0", 6)
    lib = a.library_coupling()
    assert lib.set_index("service").loc["monolith", "n_models"] == 6
    sp = a.spans(model="fraud", limit=5)
    assert len(sp) == 5 and set(sp.model) == {"fraud"}
    tr = a.trace(sp.trace_id.iloc[0])
    assert tr.depth.min() == 0 and "fraud" in set(tr.model)
    fig = a.fig_waterfall(sp.trace_id.iloc[0])
    assert {t.name for t in fig.data} >= {"fraud"}
    ts = a.timeseries(scope="endpoint")
    assert set(ts.key) == {"/fraud", "/recommend", "/sentiment", "/search", "/checkout"}
    c = a.contrast(fa.open(store, run="bad-deploy/per-model"))
    assert list(c.columns) == [
        "monolith (actual)",
        "per-model (counterfactual)",
        "per-model (actual)",
    ]


def test_empty_store_gives_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["incidents", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and "none.duckdb" in result.output
