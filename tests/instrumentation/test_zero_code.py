"""Zero-code: a script run under `opentelemetry-instrument`, no setup call of its own.
The `opentelemetry_pre_instrument` entry point adds faultlens' processors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import faultlens.instrumentation as instrumentation

BIN = Path(sys.executable).parent

SCRIPT = """
import logging

from opentelemetry import trace

from faultlens.instrumentation import model

tracer = trace.get_tracer("zero")
with tracer.start_as_current_span("outside"):
    logging.getLogger("zero").warning("outside log")
with model("fraud", version="1.4.2"), tracer.start_as_current_span("inside"):
    logging.getLogger("zero").warning("inside log")
"""


def _attributes(record: dict) -> dict:
    return {a["key"]: a["value"].get("stringValue") for a in record.get("attributes", [])}


def _records(directory: Path, signal: str, key: str, scope_key: str, record_key: str):
    out = []
    for path in directory.glob(f"{signal}-*.jsonl"):
        for line in path.read_text().splitlines():
            for resource in json.loads(line)[key]:
                for scope in resource[scope_key]:
                    out.extend(scope[record_key])
    return out


def _run(command: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAULTLENS_"))}
    return subprocess.run(
        command,
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_opentelemetry_instrument_adds_identity_without_code(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    out = tmp_path / "telemetry"
    _run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(script)],
        tmp_path,
        OTEL_SERVICE_NAME="zero",
        OTEL_TRACES_EXPORTER="otlp_json_file",
        OTEL_LOGS_EXPORTER="otlp_json_file",
        FAULTLENS_FILE_DIR=str(out),
    )
    spans = {
        s["name"]: {k: v for k, v in _attributes(s).items() if "ml.model" in k}
        for s in _records(out, "traces", "resourceSpans", "scopeSpans", "spans")
    }
    identity = {"ml.model.name": "fraud", "ml.model.version": "1.4.2"}
    assert spans == {"outside": {}, "predict fraud": identity, "inside": identity}
    logs = {
        r["body"]["stringValue"]: _attributes(r).get("ml.model.name")
        for r in _records(out, "logs", "resourceLogs", "scopeLogs", "logRecords")
    }
    assert logs == {"outside log": None, "inside log": "fraud"}


def test_the_usage_snippet_in_the_manual_runs(tmp_path: Path) -> None:
    doc = instrumentation.__doc__ or ""
    snippet = doc.split(".. code:: python\n", 1)[1].split("\nFor FastAPI", 1)[0]
    script = tmp_path / "usage.py"
    script.write_text(textwrap.dedent(snippet))
    _run([sys.executable, str(script)], tmp_path)
    spans = _records(tmp_path / "telemetry", "traces", "resourceSpans", "scopeSpans", "spans")
    assert sorted((s["name"], _attributes(s)["ml.model.name"]) for s in spans) == [
        ("predict churn", "churn"),
        ("predict fraud", "fraud"),
    ]
    logs = _records(tmp_path / "telemetry", "logs", "resourceLogs", "scopeLogs", "logRecords")
    assert [(r["body"]["stringValue"], _attributes(r)["ml.model.name"]) for r in logs] == [
        ("low confidence", "fraud")
    ]


def test_the_apps_own_configure_still_names_its_model_under_zero_code(tmp_path: Path) -> None:
    script = tmp_path / "svc.py"
    script.write_text(
        "from opentelemetry import trace\n"
        "from faultlens.instrumentation import configure\n"
        "configure('fraud-svc', default_model='fraud@1.4.2')\n"
        "trace.get_tracer('svc').start_span('work').end()\n"
    )
    out = tmp_path / "telemetry"
    _run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(script)],
        tmp_path,
        OTEL_TRACES_EXPORTER="otlp_json_file",
        OTEL_LOGS_EXPORTER="none",
        FAULTLENS_FILE_DIR=str(out),
    )
    spans = [
        (s["name"], _attributes(s))
        for s in _records(out, "traces", "resourceSpans", "scopeSpans", "spans")
    ]
    assert spans == [("work", {"ml.model.name": "fraud", "ml.model.version": "1.4.2"})]
