"""`faultlens report`: sentences, not Python reprs; "model not isolated" where the
service-only view of a shared process is shown; the counterfactual with a percentage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import faultlens.analyzer as fa
from faultlens.cli._app import app

DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"
# A monolith with a per-model projection; one whose model is unknown (no projection); a
# per-model run (both views reach the model).
RUNS = ("cpu-hog/monolith", "crash/monolith", "cpu-hog/per-model")
REPR = re.compile(r"\{'|': |\[\(|\bNone\b|\bnan\b|np\.|Timestamp\(")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("report") / "runs.duckdb"
    fa.ingest([DATA / r for r in RUNS], db=db)
    return db


def _report(store: Path, incident: str, fmt: str) -> str:
    result = CliRunner().invoke(app, ["report", incident, "--db", str(store), "--format", fmt])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("run", RUNS)
def test_report_has_no_python_reprs(store: Path, run: str) -> None:
    (incident,) = fa.open(store, run=run).incidents()
    md = _report(store, incident.id, "md")
    assert not REPR.search(md), REPR.search(md)
    html = _report(store, incident.id, "html")
    text = html.split("<pre>", 1)[1].split("</pre>", 1)[0]
    assert not REPR.search(text.replace("&#x27;", "'")), text


def test_report_of_a_monolith_says_what_plain_otel_isolated(store: Path) -> None:
    (incident,) = fa.open(store, run="cpu-hog/monolith").incidents()
    d = incident.to_dict()
    so, ma = d["fault_isolation"]["service_only"], d["fault_isolation"]["model_aware"]
    # The service-only view's seconds (no later than the model-aware ones) must not read
    # as "plain OTel isolated the fault": it only named the shared process.
    assert so["seconds"] <= ma["seconds"] and not so["isolates_model"]
    md = _report(store, incident.id, "md")
    left = so["evidence_spans"] + so["evidence_logs"]
    assert f"| service-only | model not isolated | {so['suspects']} |" in md
    assert (
        f"- service-only: model not isolated: {so['suspects']} suspects, "
        f"{left} spans and logs to read"
    ) in md
    assert f"| model-aware | {ma['seconds']:g} s | {ma['suspects']} |" in md
    cf = d["counterfactual_per_model"]
    assert (
        f"- Per-model counterfactual: had sentiment run in its own service, {cf['requests']} "
        f"requests ({cf['share']:.1%} of traffic) would have been affected, against "
        f"{d['blast_radius']['requests']} ({d['blast_radius']['share']:.1%}) here"
    ) in md
    # The HTML's chart marks only the view that reached the model.
    html = _report(store, incident.id, "html")
    assert f"model isolated (model-aware): +{ma['seconds']:g} s" in html
    assert "model isolated (service-only)" not in html


def test_report_without_a_projection_says_why(store: Path) -> None:
    (crash,) = fa.open(store, run="crash/monolith").incidents()
    md = _report(store, crash.id, "md")
    assert "Per-model counterfactual: not projected: the culprit's model is unknown" in md
    assert "| model-aware | model not isolated |" in md  # absence left all six models
    (per,) = fa.open(store, run="cpu-hog/per-model").incidents()
    md = _report(store, per.id, "md")
    assert "Per-model counterfactual: not projected: this run already serves one model" in md
    assert "not isolated" not in md


def test_report_shows_both_layouts_cost_and_the_verdict(store: Path) -> None:
    """The committed runs carry their services' metrics: the report of the monolith's
    incident shows its measured cost, then the verdict with both layouts side by side."""
    a = fa.open(store, run="cpu-hog/monolith")
    (incident,) = a.incidents()
    costs = a.costs()
    assert costs, "the committed runs need their services' metrics (regenerate)"
    cost = costs["cpu-hog/monolith"]
    verdict = a.layout_verdicts()["cpu-hog"]
    md = _report(store, incident.id, "md")
    assert "## Resource cost (measured, from the services' OTLP metrics)" in md
    assert (
        f"- {cost.processes} processes ({cost.instances} incarnations), {cost.requests} "
        f"requests over {cost.seconds:.0f} s"
    ) in md
    assert (
        f"- CPU: {cost.cpu_seconds:.2f} s, {cost.cpu_seconds_per_1k:.3f} CPU-seconds per "
        "1,000 requests"
    ) in md
    assert (
        "- Process footprint (measured), resident memory summed over processes: mean "
        f"{cost.mean_rss_bytes / 1e6:.0f} MB"
    ) in md
    split = ", ".join(f"{m} {s:.3f} s" for m, s in sorted(cost.model_cpu_seconds.items()))
    assert f"- CPU inside each model's scope (thread CPU time): {split}" in md
    # The verdict: one sentence, and one table with both layouts and both sides.
    assert f"## Layout verdict\n\n{verdict.sentence}.\n" in md
    assert "| side | metric | monolith | per-model |" in md
    assert {r["side"] for r in verdict.table} == {"cost", "incident"}
    for r in verdict.table:
        assert f"| {r['side']} | {r['metric']} | {r['monolith']} | {r['per-model']} |" in md
    assert verdict.monolith.processes < verdict.per_model.processes
