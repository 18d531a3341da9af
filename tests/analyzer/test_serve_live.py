"""A sample scenario streamed live into `faultlens collect` (serve without the dashboard)
through the real OTLP exporter: the fault's incident names the culprit model, keeps its
id and resolves; a local webhook
sink receives every stored event (`opened` ... `resolved`); the stored history says the
same after a restart; the offline analysis of the store gives the same incidents (times,
culprits)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

import faultlens.analyzer as fa
from faultlens.analyzer.serve._state import find_server

EXE = str(Path(sys.executable).with_name("faultlens"))
HOLD_S = 4  # seconds healthy before resolving: the 15 s recovery less two 5 s buckets, less 1
RUN_S = 60


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _collect(db: Path, port: int, hook: str) -> subprocess.Popen:
    argv = [EXE, "collect", "--db", str(db), "--port", str(port), "--otlp-grpc-port", "0"]
    argv += ["--webhook", hook, "--hold-down", str(HOLD_S)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while find_server(db) is None:
        assert proc.poll() is None and time.time() < deadline, "collect did not start"
        time.sleep(0.05)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) in (0, -signal.SIGTERM)


def test_scenario_streamed_live_opens_one_incident_that_resolves(tmp_path: Path) -> None:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    _Sink.received = []
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{sink.server_port}/page"
    db, port = tmp_path / "live.duckdb", _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _collect(db, port, hook)
    try:
        # 22.5 s baseline, 22.5 s of fraud failing every 2nd request, 15 s healthy.
        out = subprocess.run(
            [EXE, "scenarios", "run", "error-burst", "--layout", "per-model"]
            + ["--seconds", str(RUN_S)]
            + ["--out", str(tmp_path / "run"), "--otlp-endpoint", url],
            capture_output=True,
            text=True,
            timeout=500,
        )
        assert out.returncode == 0, out.stderr
        deadline = time.time() + 60
        while time.time() < deadline:  # the last detection cycles after the last span
            live = httpx.get(f"{url}/api/live", timeout=30).json()
            if live["incidents"] and all(i["state"] == "resolved" for i in live["incidents"]):
                break
            time.sleep(1)
        history = httpx.get(f"{url}/api/history", timeout=30).json()["history"]
    finally:
        _stop(proc)
    hold = HOLD_S * 10**9
    truth = json.loads((tmp_path / "run" / "truth.json").read_text())["fault"]
    states = {i["id"]: i["state"] for i in live["incidents"]}
    # Exactly one incident: the fault, named by its model, holding the fault's onset (no
    # other one opened on the partial data of a newest bucket, and the fault not split).
    (incident,) = live["incidents"]
    assert incident["culprit"]["model"] == "fraud"
    assert incident["culprit"]["service"] == "model-fraud"
    assert incident["onset_ns"] - hold <= truth["onset_ns"] <= incident["end_ns"]
    assert incident["state"] == "resolved", live
    events = [(h["event"], h["culprit_model"]) for h in history if h["id"] == incident["id"]]
    assert events[0][0] == "opened" and events[-1] == ("resolved", "fraud")
    sink.shutdown()
    pages = [
        (p["event"], p["incident"]["id"], p["incident"]["culprit"]["model"]) for p in _Sink.received
    ]
    assert pages == [(h["event"], h["id"], h["culprit_model"]) for h in history]
    # After a restart the stored history and the incidents' states are the same.
    proc = _collect(db, port, hook)
    try:
        again = httpx.get(f"{url}/api/history", timeout=30).json()["history"]
        live = httpx.get(f"{url}/api/live", timeout=30).json()
    finally:
        _stop(proc)
    assert again == history
    assert {i["id"]: i["state"] for i in live["incidents"]} == states
    # The offline analysis of the same store gives the same incidents: times and culprits.
    # (Not always the same ids: a live id is fixed at the first opening, and later evidence
    # can move the onset a bucket, which the offline id follows.)
    offline = [(i.onset_ns, i.end_ns, i.culprit.model) for i in fa.open(str(db)).incidents()]
    online = [(i["onset_ns"], i["end_ns"], i["culprit"]["model"]) for i in live["incidents"]]
    assert offline == online
