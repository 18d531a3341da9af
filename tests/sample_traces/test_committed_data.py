"""The committed sample runs: every scenario in both layouts, small, with a consistent truth.

``FAULTLENS_SAMPLE_DATA_DIR`` points these checks at another set of runs (one written by
``python -m faultlens.sample_traces.regenerate --out DIR``) before it replaces the committed one.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faultlens.cli._app import app
from faultlens.sample_traces import DATA_DIR, LAYOUTS, SCENARIOS
from faultlens.sample_traces._models import ENDPOINTS, MODELS

DATA = Path(os.environ.get("FAULTLENS_SAMPLE_DATA_DIR") or DATA_DIR)
MAX_TOTAL_BYTES = 15 * 2**20
CLIENT = 3
REQUEST_KEYS = {"trace_id", "endpoint", "start_ns", "latency_ms", "status", "outcome", "error",
                "models"}  # fmt: skip
RESTART_KEYS = {"service", "at_ns", "reason", "old_instance_id", "new_instance_id", "ready_ns"}


def test_the_committed_set_is_small() -> None:
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert 0 < total < MAX_TOTAL_BYTES, total


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_committed_run_has_a_consistent_truth(name: str, layout: str) -> None:
    run = DATA / name / layout
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
        "files": {
            "traces": "traces.jsonl.gz",
            "logs": "logs.jsonl.gz",
            "metrics": "metrics.jsonl.gz",
        },
    }
    assert (run / "metrics.jsonl.gz").stat().st_size > 0
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
        spans = [
            (_service(rs), span)
            for line in f
            for rs in json.loads(line)["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        ]
    client = load.get("client_service")
    recorded = {span["traceId"] for service, span in spans if service != client}
    ok = {r["trace_id"] for r in requests if r["outcome"] == "ok"}
    # Not all: a process that crashes loses the spans still in its export batch (<= 0.5 s).
    assert len(ok & recorded) >= 0.9 * len(ok)
    if client is not None:
        # One CLIENT span per request, failed exactly when the request failed.
        client_spans = [span for service, span in spans if service == client]
        per_trace = Counter(s["traceId"] for s in client_spans)
        assert per_trace == Counter(r["trace_id"] for r in requests)  # trace ids are unique
        assert {s["kind"] for s in client_spans} == {CLIENT}
        failed = {s["traceId"] for s in client_spans if s.get("status", {}).get("code") == 2}
        assert failed == {r["trace_id"] for r in requests if r["outcome"] == "error"}
    with gzip.open(run / "logs.jsonl.gz", "rt") as f:
        assert all("resourceLogs" in json.loads(line) for line in f)


def _service(resource_spans: dict) -> str | None:
    for attribute in resource_spans["resource"]["attributes"]:
        if attribute["key"] == "service.name":
            return attribute["value"]["stringValue"]
    return None


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
