"""Acceptance on the committed sample scenarios, both layouts, against truth.json.

Run as a script to print the results table:
``.venv/bin/python tests/analyzer/test_sample_scenarios.py``
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import faultlens.analyzer as fa
from faultlens.sample_traces._models import MODELS

DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"
SLO_MS = 300.0  # one latency objective for analyser and truth alike
CASES = sorted((p.parent.parent.name, p.parent.name) for p in DATA.glob("*/*/truth.json"))


@dataclass(frozen=True)
class Row:
    scenario: str
    layout: str
    truth: dict
    incident: fa.Incident
    truth_blast: int
    truth_collateral: int


@cache
def _db(scenario: str, layout: str, root: str) -> Path:
    db = Path(root) / f"{scenario}-{layout}.duckdb"
    fa.ingest([DATA / scenario / layout], db=db)
    return db


@cache
def analyse(scenario: str, layout: str, root: str) -> Row:
    truth = json.loads((DATA / scenario / layout / "truth.json").read_text())
    incs = fa.open(_db(scenario, layout, root)).incidents(slo_ms=SLO_MS)
    assert len(incs) == 1, [i.id for i in incs]
    onset, model = truth["fault"]["onset_ns"], truth["culprit"]["model"]
    bad = [
        r
        for r in truth["requests"]
        if r["start_ns"] >= onset and (r["outcome"] != "ok" or r["latency_ms"] > SLO_MS)
    ]
    # Collateral: bad requests that never touched the culprit, its model when it has one,
    # else its service (the feature store, reached through the models that call it).
    if model is not None:
        collateral = sum(1 for r in bad if model not in r["models"])
    else:
        callers = {m for m, spec in MODELS.items() if spec.uses_feature_store}
        collateral = sum(1 for r in bad if not callers & set(r["models"]))
    return Row(scenario, layout, truth, incs[0], len(bad), collateral)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("scenarios"))


def _close(got: int | None, want: int, tol: float) -> bool:
    return got is not None and abs(got - want) <= max(tol * want, 1)


@pytest.mark.parametrize(("scenario", "layout"), CASES)
def test_culprit_ranks_first(scenario: str, layout: str, root: str) -> None:
    row = analyse(scenario, layout, root)
    want = row.truth["culprit"]
    top = row.incident.candidates[0]
    assert top.service == want["service"], row.incident.candidates[:3]
    if top.model is None and want["model"] is not None:
        # The data holds no evidence of the model: every model in the process is a suspect.
        assert want["model"] in row.incident.suspect_models
    else:
        assert top.model == want["model"]


@pytest.mark.parametrize(("scenario", "layout"), CASES)
def test_blast_radius_and_collateral_within_5_percent(
    scenario: str, layout: str, root: str
) -> None:
    row = analyse(scenario, layout, root)
    br = row.incident.blast
    assert _close(br.requests, row.truth_blast, 0.05), (br.requests, row.truth_blast)
    if br.collateral is not None:
        assert (
            _close(br.collateral, row.truth_collateral, 0.05)
            or abs(br.collateral - row.truth_collateral) <= 0.05 * row.truth_blast
        ), (br.collateral, row.truth_collateral)


@pytest.mark.parametrize("scenario", sorted({s for s, _ in CASES}))
def test_monolith_counterfactual_matches_the_per_model_run(scenario: str, root: str) -> None:
    mono, per = analyse(scenario, "monolith", root), analyse(scenario, "per-model", root)
    cf = mono.incident.counterfactual
    if cf is None:  # the model is unknown (a silent crash): nothing to project
        assert mono.incident.culprit.model is None
        return
    assert _close(cf["requests"], per.incident.blast.requests, 0.10), (cf, per.incident.blast)


@pytest.mark.parametrize("scenario", sorted({s for s, _ in CASES}))
def test_monolith_service_only_view_costs_more(scenario: str, root: str) -> None:
    row = analyse(scenario, "monolith", root)
    inc = row.incident
    iso = {v.view: v for v in inc.isolation}
    ma, so = iso["model_aware"], iso["service_only"]
    if not inc.suspect_models and inc.culprit.model is None:
        # The culprit runs no model (a feature store): nothing to narrow, both read the same.
        assert (so.suspects, so.evidence_spans, so.evidence_logs) == (
            ma.suspects,
            ma.evidence_spans,
            ma.evidence_logs,
        )
        return
    if inc.culprit.model is None:
        # A process that died silently: the data names no model (issue 6: "do not guess"),
        # every model of the process stays a suspect, the true culprit among them. Model
        # identity can only narrow by absence, so it never costs more than service-only.
        assert row.truth["culprit"]["model"] in inc.suspect_models
        assert ma.suspects <= so.suspects == len(inc.suspect_models)
        assert ma.evidence_spans + ma.evidence_logs <= so.evidence_spans + so.evidence_logs
        return
    assert so.suspects > ma.suspects
    assert so.evidence_spans + so.evidence_logs > ma.evidence_spans + ma.evidence_logs


def results_table(root: str) -> str:
    head = (
        "| scenario | layout | truth culprit | found (rank) | FIT s model-aware / service-only "
        "| suspects MA / SO | evidence spans+logs MA / SO | blast radius (truth) "
        "| collateral (truth) | counterfactual |"
    )
    lines = [head, "|" + " --- |" * 10]
    for s, lay in CASES:
        r = analyse(s, lay, root)
        i, want = r.incident, r.truth["culprit"]
        iso = {v.view: v for v in i.isolation}
        ma, so = iso["model_aware"], iso["service_only"]
        rank = next(
            (
                c.rank
                for c in i.candidates
                if c.service == want["service"] and c.model in (want["model"], None)
            ),
            None,
        )
        lines.append(
            f"| {s} | {lay} | {want['service']}/{want['model']} | "
            f"{i.culprit.service}/{i.culprit.model} ({rank}) | {ma.seconds} / {so.seconds} | "
            f"{ma.suspects} / {so.suspects} | {ma.evidence_spans}+{ma.evidence_logs} / "
            f"{so.evidence_spans}+{so.evidence_logs} | {i.blast.requests} ({r.truth_blast}) | "
            f"{i.blast.collateral} ({r.truth_collateral}) | "
            f"{i.counterfactual['requests'] if i.counterfactual else None} |"
        )
    return "\n".join(lines)


def test_results_table(root: str, capsys: pytest.CaptureFixture[str]) -> None:
    table = results_table(root)
    assert table.count("\n") == len(CASES) + 1
    with capsys.disabled():
        print("\n" + table)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print(results_table(d))
        sys.exit(0)
