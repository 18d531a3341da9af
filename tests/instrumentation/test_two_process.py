"""A gateway (this process) and a per-model service (its own OS process) on loopback:
one trace across both, and the model service's spans and logs carry its model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from faultlens.instrumentation import instrument_app

SERVICE = Path(__file__).with_name("model_service.py")
FRAUD = {"ml.model.name": "fraud", "ml.model.version": "1.4.2", "ml.model.framework": "sklearn"}


def _value(v: dict):
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return None


def _attributes(items: list[dict]) -> dict:
    return {a["key"]: _value(a["value"]) for a in items}


def _read(directory: Path, signal_name: str, key: str, scope_key: str, record_key: str):
    """(resource attributes, record) pairs from the OTLP JSON Lines files of one signal."""
    out = []
    for path in sorted(directory.glob(f"{signal_name}-*.jsonl")):
        for line in path.read_text().splitlines():
            for resource in json.loads(line)[key]:
                res = _attributes(resource["resource"]["attributes"])
                for scope in resource[scope_key]:
                    out.extend((res, record) for record in scope[record_key])
    return out


def _start_model_service(tmp_path: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "FAULTLENS_FILE_DIR": str(tmp_path), "OTEL_BSP_SCHEDULE_DELAY": "200"}
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_SERVICE_NAME"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, str(SERVICE), str(port)], env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"model service exited with {proc.returncode}")
    proc.kill()
    raise RuntimeError("model service did not start")


def test_one_trace_across_gateway_and_model_service(telemetry, serve, free_port, tmp_path) -> None:
    port = free_port()
    proc = _start_model_service(tmp_path, port)
    try:
        gateway = FastAPI()

        @gateway.post("/checkout")
        async def checkout() -> dict[str, float]:
            async with httpx.AsyncClient() as client:
                response = await client.post(f"http://127.0.0.1:{port}/predict")
            return response.json()

        instrument_app(gateway)
        with serve(gateway) as base_url:
            response = httpx.post(f"{base_url}/checkout", timeout=10)
            assert (response.status_code, response.json()) == (200, {"score": 0.3})
            (server,) = telemetry.wait_for_span(
                lambda s: (
                    s.kind is SpanKind.SERVER and s.attributes.get("http.route") == "/checkout"
                )
            )
    finally:
        # uvicorn drains, runs the lifespan end (which flushes), then re-raises SIGTERM
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)

    trace_id = f"{server.context.trace_id:032x}"
    finished = telemetry.spans.get_finished_spans()
    gateway_spans = [s for s in finished if s.context.trace_id == server.context.trace_id]
    (call,) = [s for s in gateway_spans if s.kind is SpanKind.CLIENT and s.parent is not None]
    assert all(not any(k.startswith("ml.model.") for k in s.attributes) for s in gateway_spans)
    assert list(server.attributes["faultlens.models"]) == []

    spans = _read(tmp_path, "traces", "resourceSpans", "scopeSpans", "spans")
    resources = {(r["service.name"], r["faultlens.layout"]) for r, _ in spans}
    assert resources == {("fraud-svc", "per-model")}
    predict = [s for _, s in spans if s["traceId"] == trace_id]
    assert predict, "the model service's spans are not in the gateway's trace"
    (model_server,) = [s for s in predict if s["kind"] == 2]  # SERVER
    assert model_server["parentSpanId"] == f"{call.context.span_id:016x}"
    # default_model: every span of the service carries its model, the health checks too
    for _, span in spans:
        identity = {k: v for k, v in _attributes(span["attributes"]).items() if "ml.model" in k}
        assert identity == FRAUD, span["name"]
    assert _attributes(model_server["attributes"])["faultlens.models"] == ["fraud"]
    assert sorted(s["name"] for s in predict if s["kind"] != 2) == [
        "POST /predict http send",
        "POST /predict http send",
        "fraud.infer",
    ]

    logs = _read(tmp_path, "logs", "resourceLogs", "scopeLogs", "logRecords")
    tagged = [
        (r["body"]["stringValue"], r["traceId"], _attributes(r["attributes"])["ml.model.name"])
        for _, r in logs
        if r["body"].get("stringValue") == "fraud scored"
    ]
    assert tagged == [("fraud scored", trace_id, "fraud")]
