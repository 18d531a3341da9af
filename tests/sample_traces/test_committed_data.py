"""The committed sample runs: every scenario in both layouts, small, with a consistent truth."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from typer.testing import CliRunner

from faultlens.cli._app import app
from faultlens.sample_traces import DATA_DIR, LAYOUTS, SCENARIOS
from faultlens.sample_traces._models import ENDPOINTS, MODELS

MAX_TOTAL_BYTES = 15 * 2**20
REQUEST_KEYS = {"trace_id", "endpoint", "start_ns", "latency_ms", "status", "outcome", "error",
                "models"}  # fmt: skip
RESTART_KEYS = {"service", "at_ns", "reason", "old_instance_id", "new_instance_id", "ready_ns"}


def test_the_committed_set_is_small() -> None:
    total = sum(p.stat().st_size for p in DATA_DIR.rglob("*") if p.is_file())
    assert 0 < total < MAX_TOTAL_BYTES, total


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_committed_run_has_a_consistent_truth(name: str, layout: str) -> None:
    run = DATA_DIR / name / layout
    truth = json.loads((run / "truth.json").read_text())
    scenario = SCENARIOS[name]
    culprit_service = (
        scenario.target
        if scenario.culprit_model is None
        else ("monolith" if layout == "monolith" else f"model-{scenario.target}")
    )
    assert {k: truth[k] for k in ("scenario", "layout", "run", "culprit", "files")} == {
        "scenario": name,
        "layout": layout,
        "run": f"{name}/{layout}",
        "culprit": {
            "model": scenario.culprit_model,
            "service": culprit_service,
            "version": None
            if scenario.culprit_model is None
            else scenario.deploy_version or MODELS[scenario.target].version,
        },
        "files": {"traces": "traces.jsonl.gz", "logs": "logs.jsonl.gz"},
    }
    load, fault = truth["load"], truth["fault"]
    assert load["start_ns"] < fault["onset_ns"] < fault["end_ns"] < load["end_ns"]
    requests = truth["requests"]
    assert len(requests) == int(load["rate_rps"] * load["seconds"])
    assert len({r["trace_id"] for r in requests}) == len(requests)
    for r in requests:
        assert set(r) == REQUEST_KEYS
        assert re.fullmatch(r"[0-9a-f]{32}", r["trace_id"])
        assert r["models"] == list(ENDPOINTS[r["endpoint"]])
        assert r["outcome"] == ("ok" if r["status"] == 200 else "error")
    for restart in truth["restarts"]:
        assert set(restart) >= RESTART_KEYS
        assert restart["service"] in truth["services"]
    # The trace ids the load generator made are the ones the servers recorded.
    with gzip.open(run / "traces.jsonl.gz", "rt") as f:
        recorded = {
            span["traceId"]
            for line in f
            for rs in json.loads(line)["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        }
    ok = {r["trace_id"] for r in requests if r["outcome"] == "ok"}
    # Not all: a process that crashes loses the spans still in its export batch (<= 0.5 s).
    assert len(ok & recorded) >= 0.9 * len(ok)
    with gzip.open(run / "logs.jsonl.gz", "rt") as f:
        assert all("resourceLogs" in json.loads(line) for line in f)


def test_scenarios_list_names_every_scenario() -> None:
    result = CliRunner().invoke(app, ["scenarios", "list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == list(SCENARIOS)


def test_scenarios_run_rejects_a_bad_layout_in_one_line() -> None:
    result = CliRunner().invoke(app, ["scenarios", "run", "crash", "--layout", "cluster"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "faultlens scenarios run: --layout must be one of monolith, per-model"
    )
