"""End to end: the crash scenario, 16 s, in both layouts, real processes over real HTTP."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from faultlens.sample_traces import LAYOUTS, run_scenario
from faultlens.sample_traces._models import ENDPOINTS, MODELS

pytestmark = pytest.mark.timeout(120)

SECONDS = 16.0
SERVER, CLIENT, STATUS_ERROR = 2, 3, 2
HEX32, HEX16 = re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{16}$")
RESOURCE_KEYS = {"service.name", "service.instance.id", "service.version", "faultlens.layout",
                 "faultlens.run", "faultlens.scenario"}  # fmt: skip


def value(v: dict[str, Any]) -> Any:
    """An OTLP AnyValue as Python."""
    if "arrayValue" in v:
        return [value(x) for x in v["arrayValue"].get("values", [])]
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return None


def attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: value(a["value"]) for a in items}


def lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def spans(path: Path) -> list[dict[str, Any]]:
    """Every span, its attributes flattened under "attrs" and its resource under "resource"."""
    found = []
    for request in lines(path):
        for rs in request["resourceSpans"]:
            resource = attrs(rs["resource"]["attributes"])
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    found.append(
                        {**span, "attrs": attrs(span.get("attributes", [])), "resource": resource}
                    )
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Path]]:
    found = {}
    for layout in LAYOUTS:
        out = tmp_path_factory.mktemp(layout)
        found[layout] = (run_scenario("crash", layout=layout, seconds=SECONDS, out=out), out)
    return found


def _failing_endpoints(truth: dict[str, Any]) -> set[str]:
    """Endpoints with a failed request between onset and 5 s after the end (restart tail)."""
    onset, end = truth["fault"]["onset_ns"], truth["fault"]["end_ns"] + 5_000_000_000
    return {r["endpoint"] for r in truth["requests"]
            if r["outcome"] == "error" and onset <= r["start_ns"] < end}  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
def test_files_are_valid_otlp_json(runs, layout: str) -> None:
    truth, out = runs[layout]
    assert truth["files"] == {
        "traces": "traces.jsonl.gz",
        "logs": "logs.jsonl.gz",
        "metrics": "metrics.jsonl.gz",
    }
    traces, logs = lines(out / "traces.jsonl.gz"), lines(out / "logs.jsonl.gz")
    assert traces and logs
    for request in traces:
        # The protobuf JSON mapping rejects unknown fields and wrong types.
        ParseDict(request, ExportTraceServiceRequest())
    for request in logs:
        ParseDict(request, ExportLogsServiceRequest())
    all_spans = spans(out / "traces.jsonl.gz")
    for span in all_spans:
        assert HEX32.match(span["traceId"]) and HEX16.match(span["spanId"]), span
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
        assert span["resource"].keys() >= RESOURCE_KEYS
        assert span["resource"]["faultlens.layout"] == layout
        assert span["resource"]["faultlens.run"] == f"crash/{layout}"
    # The ASGI send/receive internals stay out of the sample data.
    assert not [s for s in all_spans if s["name"].endswith(("http send", "http receive"))]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_model_span_carries_its_identity(runs, layout: str) -> None:
    _, out = runs[layout]
    model_spans = [s for s in spans(out / "traces.jsonl.gz") if s["name"].startswith("predict ")]
    assert {s["name"].removeprefix("predict ") for s in model_spans} == set(MODELS)
    for span in model_spans:
        name = span["name"].removeprefix("predict ")
        assert {
            k: span["attrs"].get(k)
            for k in ("ml.model.name", "ml.model.version", "ml.model.framework")
        } == {  # fmt: skip
            "ml.model.name": name,
            "ml.model.version": MODELS[name].version,
            "ml.model.framework": "numpy",
        }
    if layout == "per-model":
        # Every span of a model's own service carries that model, server spans included.
        for span in spans(out / "traces.jsonl.gz"):
            service = span["resource"]["service.name"]
            if service.startswith("model-"):
                assert span["attrs"].get("ml.model.name") == service.removeprefix("model-"), span


def test_crash_fails_every_endpoint_in_the_monolith_only_the_culprits_per_model(runs) -> None:
    monolith, per_model = runs["monolith"][0], runs["per-model"][0]
    culprit_endpoints = {e for e, models in ENDPOINTS.items() if "embed" in models}
    assert culprit_endpoints == {"/search"}
    assert _failing_endpoints(monolith) == set(ENDPOINTS)
    assert _failing_endpoints(per_model) == culprit_endpoints
    for truth in (monolith, per_model):
        assert truth["culprit"]["model"] == "embed"
        before = [r for r in truth["requests"] if r["start_ns"] < truth["fault"]["onset_ns"]]
        assert before and all(r["outcome"] == "ok" for r in before)


def test_crash_blast_radius_seen_in_the_spans(runs) -> None:
    # per-model: the gateway's entry spans fail only on the culprit's endpoint.
    truth, out = runs["per-model"]
    entry = [s for s in spans(out / "traces.jsonl.gz")
             if s["kind"] == SERVER and s["resource"]["service.name"] == "gateway"]  # fmt: skip
    failed_routes = {s["attrs"]["http.route"] for s in entry
                     if s.get("status", {}).get("code") == STATUS_ERROR}  # fmt: skip
    assert failed_routes == {"/search"}
    # monolith: every endpoint has failed requests whose trace holds no successful entry span
    # (the process died under them, or answered with an error).
    truth, out = runs["monolith"]
    ok_traces = {s["traceId"] for s in spans(out / "traces.jsonl.gz")
                 if s["kind"] == SERVER and s["resource"]["service.name"] == "monolith"
                 and s.get("status", {}).get("code") != STATUS_ERROR}  # fmt: skip
    failed_by_endpoint = defaultdict(set)
    for r in truth["requests"]:
        if r["outcome"] == "error":
            failed_by_endpoint[r["endpoint"]].add(r["trace_id"])
    assert set(failed_by_endpoint) == set(ENDPOINTS)
    for endpoint, trace_ids in failed_by_endpoint.items():
        assert not trace_ids & ok_traces, endpoint


def _expected_client_span(request: dict[str, Any], port: int) -> dict[str, Any]:
    """The loadgen span a truth request must have: name, kind, attributes, status."""
    endpoint, status = request["endpoint"], request["status"]
    expected_attrs: dict[str, Any] = {
        "http.request.method": "POST",
        "url.full": f"http://127.0.0.1:{port}{endpoint}",
        "url.template": endpoint,
        "server.address": "127.0.0.1",
        "server.port": port,
    }
    if status:
        expected_attrs["http.response.status_code"] = status
    if request["outcome"] == "error":
        # a status code as text, or the exception class when there was no response
        expected_attrs["error.type"] = str(status) if status else request["error"].split(":")[0]
    return {
        "name": f"POST {endpoint}",
        "kind": CLIENT,
        "attrs": expected_attrs,
        "error": request["outcome"] == "error",
        "start_ns": request["start_ns"],
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_request_has_one_loadgen_client_span(runs, layout: str) -> None:
    truth, out = runs[layout]
    assert truth["load"]["client_service"] == "loadgen"
    client_spans = defaultdict(list)
    for span in spans(out / "traces.jsonl.gz"):
        if span["resource"]["service.name"] == "loadgen":
            client_spans[span["traceId"]].append(span)
    requests = truth["requests"]
    assert sorted(client_spans) == sorted(r["trace_id"] for r in requests)
    assert all(len(found) == 1 for found in client_spans.values())
    port = client_spans[requests[0]["trace_id"]][0]["attrs"]["server.port"]
    for request in requests:
        span = client_spans[request["trace_id"]][0]
        assert not span.get("parentSpanId"), span  # the request's trace starts here
        assert {
            "name": span["name"],
            "kind": span["kind"],
            "attrs": span["attrs"],
            "error": span.get("status", {}).get("code") == STATUS_ERROR,
            "start_ns": int(span["startTimeUnixNano"]),
        } == _expected_client_span(request, port)
        duration_ms = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6
        assert abs(duration_ms - request["latency_ms"]) < 1.0, request
        if request["status"] == 0:  # no response: the exception is recorded on the span
            events = [e for e in span.get("events", []) if e["name"] == "exception"]
            assert len(events) == 1
            assert attrs(events[0]["attributes"])["exception.type"] == (
                f"httpx.{span['attrs']['error.type']}"
            )
    if layout == "monolith":
        # While the crashed process was down, refused requests left only the client's span.
        refused = {r["trace_id"] for r in requests if (r["error"] or "").startswith("ConnectError")}
        assert refused, "the dead monolith refuses connections"
        others = {s["traceId"] for s in spans(out / "traces.jsonl.gz")
                  if s["resource"]["service.name"] != "loadgen"}  # fmt: skip
        assert not refused & others


@pytest.mark.parametrize("layout", LAYOUTS)
def test_entry_server_spans_are_children_of_the_loadgen_span(runs, layout: str) -> None:
    truth, out = runs[layout]
    all_spans = spans(out / "traces.jsonl.gz")
    client_span_id = {s["traceId"]: s["spanId"] for s in all_spans
                      if s["resource"]["service.name"] == "loadgen"}  # fmt: skip
    entry = [s for s in all_spans if s["kind"] == SERVER
             and s["resource"]["service.name"] == truth["load"]["entry_service"]]  # fmt: skip
    ok = [r["trace_id"] for r in truth["requests"] if r["outcome"] == "ok"]
    # Not all: a process that crashes loses the spans still in its export batch (<= 0.5 s).
    assert len({s["traceId"] for s in entry} & set(ok)) >= 0.9 * len(ok)
    assert [s for s in entry if s.get("parentSpanId") != client_span_id.get(s["traceId"])] == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_restarts_are_recorded_with_new_instance_ids(runs, layout: str) -> None:
    truth, out = runs[layout]
    restarts = truth["restarts"]
    assert restarts, "the crash loop restarts the culprit's process"
    expected_service = "monolith" if layout == "monolith" else "model-embed"
    assert {r["service"] for r in restarts} == {expected_service}
    assert all(r["reason"] == "crash" and r["exit_code"] == 70 for r in restarts)
    chain = [restarts[0]["old_instance_id"], *(r["new_instance_id"] for r in restarts)]
    assert len(set(chain)) == len(chain)
    assert all(
        a["new_instance_id"] == b["old_instance_id"]
        for a, b in zip(restarts, restarts[1:], strict=False)
    )
    seen = {s["resource"]["service.instance.id"] for s in spans(out / "traces.jsonl.gz")
            if s["resource"]["service.name"] == expected_service}  # fmt: skip
    assert len(seen) >= 2 and seen <= set(chain)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_process_left_behind(runs, layout: str) -> None:
    truth, _ = runs[layout]
    pids = [i["pid"] for i in truth["instances"]]
    assert len(pids) == len(truth["instances"]) >= (2 if layout == "monolith" else 8)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # the whole process group is gone, not just its leader
    assert all(i["ended_ns"] is not None for i in truth["instances"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_service_flushes_its_telemetry_on_sigterm(runs, layout: str) -> None:
    truth, out = runs[layout]
    said_goodbye = set()
    for request in lines(out / "logs.jsonl.gz"):
        for rl in request["resourceLogs"]:
            resource = attrs(rl["resource"]["attributes"])
            for sl in rl["scopeLogs"]:
                for record in sl["logRecords"]:
                    if record["body"].get("stringValue", "").endswith(" shutting down"):
                        said_goodbye.add(resource["service.instance.id"])
    # The last incarnation of every service was stopped with SIGTERM and wrote its last log.
    last = {i["service"]: i["instance_id"] for i in truth["instances"]}
    assert set(last.values()) <= said_goodbye


def test_both_layouts_export_metrics_and_their_cost_is_measured(runs, tmp_path: Path) -> None:
    # Every process of both layouts exported process and per-model metrics (real SDK,
    # JSON file exporter); the cost analysis reads them back from the store.
    from faultlens.analyzer import connect, ingest
    from faultlens.analyzer.analysis._cost import layout_verdicts, run_costs
    from faultlens.analyzer.store._dialect import DUCKDB

    db = tmp_path / "cost.duckdb"
    for _, out in runs.values():
        assert ingest([out / "metrics.jsonl.gz", out / "traces.jsonl.gz"], db=db).errors == ()
    con = connect(db, read_only=True)
    costs = run_costs(lambda sql, p: con.execute(sql, p or {}).df(), DUCKDB)
    mono, per = costs["crash/monolith"], costs["crash/per-model"]
    # The monolith and the feature store; the six models, the gateway and the feature store.
    assert (mono.processes, per.processes) == (2, 2 + len(MODELS))
    assert mono.instances >= 3  # the crashed monolith came back as a new incarnation
    for cost in (mono, per):
        assert cost.requests > 0 and cost.cpu_seconds > 0 and cost.cpu_seconds_per_1k > 0
        assert 0 < cost.idle_rss_bytes <= cost.peak_rss_bytes
        assert cost.mean_rss_bytes <= cost.peak_rss_bytes
        assert set(cost.model_cpu_seconds) == set(MODELS)  # measured in both layouts
    assert per.mean_rss_bytes > mono.mean_rss_bytes  # four times the processes
    verdict = layout_verdicts(costs, [])["crash"]
    assert re.fullmatch(
        r"per-model used [+-]\d+% memory and [+-]\d+% CPU per request "
        rf"\({per.processes} processes against {mono.processes}\)",
        verdict.sentence,
    )
