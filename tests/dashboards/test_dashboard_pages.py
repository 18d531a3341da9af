"""Every page under AppTest: no exception, its key elements, the analyzer's own numbers,
and the words on-call reads (what each view isolated, the departed signals, the culprit's
series emphasized)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal
from streamlit.testing.v1 import AppTest

from faultlens import analyzer
from faultlens.analyzer.present._figures import CULPRIT_COLOUR, MUTED_COLOUR, departed
from faultlens.analyzer.present._words import isolation_text, isolation_time
from faultlens.dashboards import ENTRYPOINT
from faultlens.dashboards._data import as_text
from faultlens.dashboards._views import readable, share
from faultlens.dashboards.app_pages.contrast import (
    HEADLINE,
    card_value,
    contrast_text,
)
from faultlens.dashboards.app_pages.overview import incident_rows

PER_MODEL = "error-burst/per-model"  # the other run in the sample store (conftest)


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _frames(at: AppTest) -> list[pd.DataFrame]:
    """Every data grid and static table on the page."""
    return [d.value.reset_index(drop=True) for d in [*at.dataframe, *at.table]]


def _shown(text: str) -> str:
    """Markdown as the page shows it (the data's punctuation is escaped in the source)."""
    return re.sub(r"\\(.)", r"\1", text)


def _values(data: object) -> list[float]:
    """A trace's numbers: a list, or plotly's typed array ({dtype, bdata})."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return [float(v) for v in data if v is not None]


def _figure(at: AppTest, n: int) -> dict:
    return json.loads(at.get("plotly_chart")[n].proto.spec)


def _has_frame(at: AppTest, expected: pd.DataFrame) -> None:
    expected = as_text(expected).reset_index(drop=True)
    for frame in _frames(at):
        if list(frame.columns) == list(expected.columns) and len(frame) == len(expected):
            assert_frame_equal(frame, expected, check_dtype=False)
            return
    shown = [(list(f.columns)[:3], len(f)) for f in _frames(at)]
    raise AssertionError(f"no dataframe with columns {list(expected.columns)}: {shown}")


def test_overview(app: AppTest, analysis) -> None:
    assert [t.value for t in app.title] == ["Overview"]
    incidents = [i.to_dict() for i in analysis.incidents()]
    metrics = _metrics(app)
    assert metrics["Incidents"] == str(len(incidents))
    assert metrics["First culprit"] == incidents[0]["culprit"]["model"]
    _has_frame(app, analysis.layouts())
    _has_frame(app, incident_rows(incidents))
    assert len(app.get("plotly_chart")) == 3
    # An error fault: the error-ratio tab comes first.
    assert [t.label for t in app.tabs][0] == "Error ratio"
    # The culprit model's line is the bold red one, drawn last; every other line faded.
    culprit = incidents[0]["culprit"]["model"]
    for n in range(3):
        lines = _figure(app, n)["data"]
        assert lines[-1]["name"] == f"{culprit} (culprit)"
        assert lines[-1]["line"] == {"color": CULPRIT_COLOUR, "width": 3.5}
        assert all(x["line"]["width"] < 2 and "0.35)" in x["line"]["color"] for x in lines[:-1])


def test_overview_names_what_runs_no_model(app: AppTest) -> None:
    """Services running no model are not labelled with a model layout."""
    layouts = next(f for f in _frames(app) if "layout" in f.columns and "models" in f.columns)
    kinds = dict(zip(layouts.service, layouts.layout, strict=True))
    assert kinds["feature-store"] == "no model" and kinds["loadgen"] == "no model"
    assert kinds["monolith"] == "monolith"


def test_overview_of_a_gateway(sample_db: str, monkeypatch) -> None:
    monkeypatch.setenv("FAULTLENS_DB", sample_db)
    at = AppTest.from_file(str(ENTRYPOINT), default_timeout=60).run()
    at.selectbox(key="run").select(PER_MODEL).run()
    assert not at.exception, at.exception
    layouts = next(f for f in _frames(at) if "layout" in f.columns and "models" in f.columns)
    kinds = dict(zip(layouts.service, layouts.layout, strict=True))
    assert kinds["gateway"] == "gateway"
    assert kinds["loadgen"] == "no model"
    assert {kinds[s] for s in kinds if s.startswith("model-")} == {"per-model"}


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
    cards = [(m.label, m.value) for m in app.metric][5:]
    for k, (view, short) in enumerate(
        (("model_aware", "model-aware"), ("service_only", "service-only"))
    ):
        answer = incident["fault_isolation"][view]
        assert cards[4 * k : 4 * k + 4] == [
            (f"Isolation time ({short})", isolation_time(answer)),
            ("Suspects", str(answer["suspects"])),
            ("Spans to read", str(answer["evidence_spans"])),
            ("Logs to read", str(answer["evidence_logs"])),
        ]
    _has_frame(app, analysis.candidates(incident["id"]))
    _has_frame(app, analysis.blast_radius(incident["id"]))
    _has_frame(app, readable(analysis.error_logs(incident["id"], limit=200)))
    assert len(app.get("plotly_chart")) == 2


def test_incident_of_a_monolith_reads_not_isolated(app: AppTest, analysis) -> None:
    """The service-only view of a shared process shows no seconds: what is left to read."""
    _open(app, "incident")
    service_only = analysis.incidents()[0].to_dict()["fault_isolation"]["service_only"]
    assert not service_only["isolates_model"]
    assert _metrics(app)["Isolation time (service-only)"] == "model not isolated"
    captions = [_shown(c.value) for c in app.caption]
    assert isolation_text(service_only) in captions
    assert isolation_text(service_only).startswith("model not isolated: ")


def test_incident_timeline_plots_the_departed_latency(latency_db: str, monkeypatch) -> None:
    """A latency fault (cpu-hog/monolith): the timeline plots the latency of every scope that
    departed, the culprit model's series bold and red, the others muted."""
    monkeypatch.setenv("FAULTLENS_DB", latency_db)
    at = AppTest.from_file(str(ENTRYPOINT), default_timeout=60).run()
    at.selectbox(key="run").select("cpu-hog/monolith").run()
    _open(at, "incident")
    incident = analyzer.open(latency_db, run="cpu-hog/monolith").incidents()[0]
    assert incident.culprit.model == "sentiment"
    signals = departed(incident)
    assert list(signals) == ["latency"]
    fig = _figure(at, 0)
    assert fig["layout"]["yaxis"]["title"]["text"] == "latency p95 (ms)"
    lines = [t for t in fig["data"] if t.get("x") is not None and t["x"] != [None]]
    expected = {f"{scope}:{key}" for scope, key in signals["latency"]}
    shown = {t["name"].removesuffix(" (culprit)") for t in lines}
    assert shown == expected
    (culprit,) = [t for t in lines if t["name"].endswith("(culprit)")]
    assert culprit["name"] == "model:sentiment (culprit)"
    assert culprit["line"] == {"color": CULPRIT_COLOUR, "width": 3.5}
    others = [t for t in lines if t is not culprit]
    assert others and all(t["line"] == {"color": MUTED_COLOUR, "width": 1} for t in others)
    # Latency in ms, not an error ratio: the culprit's series rises far above its baseline.
    assert max(_values(culprit["y"])) > 100
    # The service-only view names the process, not the model: no line marks its seconds.
    marks = [a["text"] for a in fig["layout"]["annotations"] if "isolated" in a["text"]]
    views = incident.to_dict()["fault_isolation"]
    assert marks == [f"model isolated (model-aware): +{views['model_aware']['seconds']:g} s"]
    suspects = views["service_only"]["suspects"]
    assert (
        f"service-only: model not isolated: {suspects} suspects" in fig["layout"]["title"]["text"]
    )


def _cards(at: AppTest) -> dict[str, dict[str, str]]:
    """The contrast's labelled columns: heading -> its cards, in page order (the cost
    section's cards, after "Side by side", are not headline cards)."""
    # Headings are Markdown with the data's punctuation escaped; read them as shown.
    subheaders = [re.sub(r"\\(.)", r"\1", s.value) for s in at.subheader]
    headings = subheaders[: subheaders.index("Side by side")]
    n = len(HEADLINE)
    cards = [(m.label, m.value) for m in at.metric][: n * len(headings)]
    assert len(cards) == n * len(headings), cards
    return {h: dict(cards[n * i : n * i + n]) for i, h in enumerate(headings)}


def _expected_cards(table: pd.DataFrame) -> dict[str, dict[str, str]]:
    text = contrast_text(table)
    return {
        side: {label: card_value(text.at[metric, side]) for metric, label in HEADLINE}
        for side in table.columns
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
    # Plain OTel names the monolith, not the model: no seconds beside the per-model run's.
    service_only = analysis.incidents()[0].to_dict()["fault_isolation"]["service_only"]
    assert _cards(app)["monolith (actual)"]["Isolation time (plain OTel)"] == "not isolated"
    assert isolation_text(service_only) in [_shown(c.value) for c in app.caption]
    # The cost section: each layout's measured figures, monolith first, after the headline
    # (in the page's order: a layout's two columns of cards, left then right).
    verdict = analysis.layout_verdicts()[analysis.run.partition("/")[0]]
    cost_cards = [(m.label, m.value) for m in app.metric][len(HEADLINE) * len(_cards(app)) :]
    assert cost_cards == [
        pair
        for cost in (verdict.monolith, verdict.per_model)
        for pair in (
            ("Processes", str(cost.processes)),
            ("Process footprint, mean (MB)", f"{cost.mean_rss_bytes / 1e6:.0f}"),
            ("CPU-s per 1,000 requests", f"{cost.cpu_seconds_per_1k:.3f}"),
            ("Idle footprint (MB)", f"{cost.idle_rss_bytes / 1e6:.0f}"),
        )
    ]
    shown = contrast_text(table)
    assert shown.at["FIT, service-only (s)", "monolith (actual)"] == isolation_text(service_only)
    assert shown.at["FIT, service-only (s)", "per-model (actual)"].endswith(" s")


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
    assert cards["monolith (actual)"]["Isolation time (plain OTel)"] == "not isolated"
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
    _has_frame(app, readable(spans))
    shown = _frames(app)[0]
    # What a trace viewer leads with; readable time, ids shortened.
    assert list(shown.columns[:6]) == [
        "time (UTC)",
        "service",
        "model",
        "span",
        "duration (ms)",
        "status",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", shown["time (UTC)"][0])
    assert set(shown["status"]) == {"error"}
    assert shown["trace"][0] == spans["trace_id"][0][:8] + "…"
    # The chosen trace's id, whole, in a code block (its copy button copies it).
    assert [c.value for c in app.code] == [spans["trace_id"].iloc[0]]
    _has_frame(app, readable(analysis.trace(spans["trace_id"].iloc[0])))
    assert len(app.get("plotly_chart")) == 1


def test_logs(app: AppTest, analysis) -> None:
    _open(app, "logs")
    assert [t.value for t in app.title] == ["Logs"]
    app.selectbox(key="logs-severity").select("ERROR").run()
    assert not app.exception, app.exception
    logs = analysis.logs(trace_id=None, model=None, min_severity=17, limit=500)
    assert len(logs) > 0
    _has_frame(app, readable(logs))
    app.text_input(key="logs-trace").input("<b>not-a-trace</b>").run()
    assert [e.value for e in app.error] == ["A trace ID is 32 hexadecimal digits."]
