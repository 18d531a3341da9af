"""`configure` in a fresh process: OTEL_* and FAULTLENS_* variables, real OTLP/HTTP export
to a loopback receiver, `logging` bridged with identity."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SCRIPT = """
import logging
from opentelemetry import trace
from faultlens.instrumentation import configure, model, shutdown

configure(endpoint={endpoint!r}, log_level="INFO")
tracer = trace.get_tracer("cfg")
with tracer.start_as_current_span("default scope"):
    logging.getLogger("cfg").info("served")
with model("churn", version="2.0.0"), tracer.start_as_current_span("churn scope"):
    pass
shutdown()
"""


def _attributes(items) -> dict[str, str]:
    return {a.key: a.value.string_value for a in items}


def test_configure_exports_otlp_http_with_env_resource_and_default_model(tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        script = tmp_path / "svc.py"
        script.write_text(SCRIPT.format(endpoint=endpoint))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAULTLENS_"))}
        env |= {
            "OTEL_SERVICE_NAME": "fraud-svc",
            "OTEL_RESOURCE_ATTRIBUTES": "service.version=9.9,deployment.environment=test",
            "FAULTLENS_LAYOUT": "per-model",
            "FAULTLENS_DEFAULT_MODEL": "fraud@1.4.2",
        }
        subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=60)
    finally:
        server.shutdown()

    assert sorted(path for path, _ in received) == ["/v1/logs", "/v1/traces"]
    traces = ExportTraceServiceRequest.FromString(dict(received)["/v1/traces"])
    (resource_spans,) = traces.resource_spans
    resource = _attributes(resource_spans.resource.attributes)
    assert {k: resource[k] for k in ("service.name", "service.version", "faultlens.layout")} == {
        "service.name": "fraud-svc",
        "service.version": "9.9",
        "faultlens.layout": "per-model",
    }
    assert len(resource["service.instance.id"]) == 36
    spans = {
        s.name: {k: v for k, v in _attributes(s.attributes).items() if k.startswith("ml.model.")}
        for scope in resource_spans.scope_spans
        for s in scope.spans
    }
    assert spans == {
        "default scope": {"ml.model.name": "fraud", "ml.model.version": "1.4.2"},
        "churn scope": {"ml.model.name": "churn", "ml.model.version": "2.0.0"},
        "predict churn": {"ml.model.name": "churn", "ml.model.version": "2.0.0"},
    }

    logs = ExportLogsServiceRequest.FromString(dict(received)["/v1/logs"])
    records = [r for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert [(r.body.string_value, _attributes(r.attributes)["ml.model.name"]) for r in records] == [
        ("served", "fraud")
    ]
    (default_span,) = [
        s for scope in resource_spans.scope_spans for s in scope.spans if s.name == "default scope"
    ]
    assert (records[0].trace_id, records[0].span_id) == (
        default_span.trace_id,
        default_span.span_id,
    )
