"""Every page under AppTest: no exception, its key elements, the analyzer's own numbers."""

from __future__ import annotations

import re

import pandas as pd
from pandas.testing import assert_frame_equal
from streamlit.testing.v1 import AppTest

from faultlens.dashboards import ENTRYPOINT
from faultlens.dashboards._data import as_text
from faultlens.dashboards._views import seconds, share
from faultlens.dashboards.app_pages.contrast import HEADLINE, NOT_PROJECTED, contrast_text


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value.reset_index(drop=True) for d in at.dataframe]


def _has_frame(at: AppTest, expected: pd.DataFrame) -> None:
    expected = as_text(expected).reset_index(drop=True)
    for frame in _frames(at):
        if list(frame.columns) == list(expected.columns) and len(frame) == len(expected):
            assert_frame_equal(frame, expected, check_dtype=False)
            return
    raise AssertionError(f"no dataframe with columns {list(expected.columns)}")


def test_overview(app: AppTest, analysis) -> None:
    assert [t.value for t in app.title] == ["Overview"]
    incidents = [i.to_dict() for i in analysis.incidents()]
    metrics = _metrics(app)
    assert metrics["Incidents"] == str(len(incidents))
    assert metrics["First culprit"] == incidents[0]["culprit"]["model"]
    _has_frame(app, analysis.layouts())
    _has_frame(app, analysis.incidents_frame())
    assert len(app.get("plotly_chart")) == 3


def test_incident(app: AppTest, analysis) -> None:
    _open(app, "incident")
    assert [t.value for t in app.title] == ["Incident"]
    incident = analysis.incidents()[0].to_dict()
    blast = incident["blast_radius"]
    metrics = _metrics(app)
    assert metrics["Culprit model"] == incident["culprit"]["model"]
    assert metrics["Culprit service"] == incident["culprit"]["service"]
    assert metrics["Blast radius (requests)"] == str(blast["requests"])
    assert metrics["Blast radius (share)"] == share(blast["share"])
    assert metrics["Collateral (requests)"] == str(blast["collateral"])
    for view, short in (("model_aware", "model-aware"), ("service_only", "service-only")):
        answer = incident["fault_isolation"][view]
        assert metrics[f"Isolation time ({short})"] == seconds(answer["seconds"])
        assert metrics[f"Suspects ({short})"] == str(answer["suspects"])
        assert metrics[f"Spans to read ({short})"] == str(answer["evidence_spans"])
        assert metrics[f"Logs to read ({short})"] == str(answer["evidence_logs"])
    _has_frame(app, analysis.candidates(incident["id"]))
    _has_frame(app, analysis.blast_radius(incident["id"]))
    _has_frame(app, analysis.error_logs(incident["id"], limit=200))
    assert len(app.get("plotly_chart")) == 2


def _cards(at: AppTest) -> dict[str, dict[str, str]]:
    """The contrast's labelled columns: heading -> its cards, in page order."""
    cards = [(m.label, m.value) for m in at.metric]
    n = len(HEADLINE)
    # Headings are Markdown with the data's punctuation escaped; read them as shown.
    headings = [re.sub(r"\\(.)", r"\1", s.value) for s in at.subheader][: len(cards) // n]
    assert len(cards) == n * len(headings), cards
    return {h: dict(cards[n * i : n * i + n]) for i, h in enumerate(headings)}


def _expected_cards(table: pd.DataFrame) -> dict[str, dict[str, str]]:
    text = contrast_text(table).replace(NOT_PROJECTED, "—")
    return {
        side: {label: text.at[metric, side] for metric, label in HEADLINE} for side in table.columns
    }


def test_layout_contrast(app: AppTest, analysis, other_analysis) -> None:
    _open(app, "contrast")
    assert [t.value for t in app.title] == ["Layout contrast"]
    table = analysis.contrast(other_analysis)
    assert {"monolith (actual)", "per-model (actual)"} <= set(table.columns)
    assert _cards(app) == _expected_cards(table)
    _has_frame(app, contrast_text(table).reset_index())
    blast = analysis.incidents()[0].to_dict()["blast_radius"]
    assert _cards(app)["monolith (actual)"]["Blast radius (requests)"] == str(blast["requests"])


def test_layout_contrast_counterfactual_on_a_single_layout_store(
    monolith_only_db: str, analysis, monkeypatch
) -> None:
    monkeypatch.setenv("FAULTLENS_DB", monolith_only_db)
    at = AppTest.from_file(str(ENTRYPOINT), default_timeout=60).run()
    _open(at, "contrast")
    projected = analysis.incidents()[0].to_dict()["counterfactual_per_model"]
    assert projected is not None
    cards = _cards(at)
    assert list(cards) == ["monolith (actual)", "per-model (counterfactual)"]
    assert cards == _expected_cards(analysis.contrast())
    _has_frame(at, contrast_text(analysis.contrast()).reset_index())
    assert cards["per-model (counterfactual)"] == {
        "Isolation time (plain OTel)": "—",
        "Suspects (plain OTel)": "—",
        "Spans + logs to read": "—",
        "Blast radius (requests)": str(projected["requests"]),
        "Collateral (requests)": "0",
        "Models restarted per update": "—",
    }


def test_traces(app: AppTest, analysis) -> None:
    _open(app, "traces")
    assert [t.value for t in app.title] == ["Traces"]
    app.selectbox(key="traces-status").select("Error").run()
    assert not app.exception, app.exception
    spans = analysis.spans(
        model=None,
        endpoint=None,
        status="Error",
        start_ns=None,
        end_ns=None,
        min_duration_ms=None,
        limit=500,
    )
    assert len(spans) > 0
    _has_frame(app, spans)
    _has_frame(app, analysis.trace(spans["trace_id"].iloc[0]))
    assert len(app.get("plotly_chart")) == 1


def test_logs(app: AppTest, analysis) -> None:
    _open(app, "logs")
    assert [t.value for t in app.title] == ["Logs"]
    app.selectbox(key="logs-severity").select("ERROR").run()
    assert not app.exception, app.exception
    logs = analysis.logs(trace_id=None, model=None, min_severity=17, limit=500)
    assert len(logs) > 0
    _has_frame(app, logs)
    app.text_input(key="logs-trace").input("<b>not-a-trace</b>").run()
    assert [e.value for e in app.error] == ["A trace ID is 32 hexadecimal digits."]
