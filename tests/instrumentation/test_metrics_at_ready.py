"""A FastAPI service with configure(metrics=True) exports its metrics as soon as its
start-up completes, not at the end of the first export interval: a process that crashes
a moment after it is ready (a crash loop) has still reported its start-up CPU and each
model's load-time growth. Real uvicorn, the real OTLP JSON file exporter, a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyzer"))
from otel_spans import free_port  # noqa: E402

_SERVICE = textwrap.dedent(
    """
    import sys
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI

    from faultlens.instrumentation import configure, instrument_app, model

    configure("ready-svc", layout="per-model", file_dir=sys.argv[1], metrics=True)

    @asynccontextmanager
    async def lifespan(app):
        global weights
        with model("fraud", version="1.4.2").loading():
            weights = bytearray(b"\\x01") * (4 << 20)
        yield

    app = FastAPI(lifespan=lifespan)
    instrument_app(app, default_model="fraud@1.4.2")

    @app.get("/health")
    async def health():
        return {"ok": True}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    """
)


def _names(out: Path) -> set[str]:
    names = set()
    for path in out.glob("metrics-*.jsonl"):
        for line in path.read_text().splitlines():
            for rm in json.loads(line).get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    names.update(m["name"] for m in sm.get("metrics", []))
    return names


def test_metrics_are_out_once_the_service_is_ready_even_if_it_then_dies(tmp_path: Path) -> None:
    out, port = tmp_path / "telemetry", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAULTLENS_"))}
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "600000"  # the first periodic export: in 10 min
    proc = subprocess.Popen([sys.executable, "-c", _SERVICE, str(out), str(port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        names: set[str] = set()
        while time.monotonic() < deadline and "faultlens.model.load.memory_growth" not in names:
            time.sleep(0.2)
            names = _names(out)
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no shutdown, no final flush
        proc.wait(timeout=30)
    assert {"faultlens.model.load.memory_growth", "process.cpu.time"} <= names, names
