"""Concurrent readers under load: two processes send through the real OTel exporters, one
over OTLP/HTTP and one over OTLP/gRPC, to `faultlens serve` while three readers work at
the same time: the dashboard in Chromium, `faultlens incidents --db FILE` and
`faultlens.analyzer.open(FILE)`. None of them meets a lock error, every acknowledged span
is stored, and each sees the incident of the fault one sender injects (a burst of error
spans from its fraud model's scope) with fraud as its culprit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect, sync_playwright

import faultlens.analyzer as fa
from faultlens.analyzer import connect
from faultlens.analyzer.serve._state import find_server

sys.path.insert(0, str(Path(__file__).parents[1] / "dashboards"))
from test_dashboard_browser import CHROMIUM_ARGS, _chromium, _free_port  # noqa: E402

EXE = str(Path(sys.executable).with_name("faultlens"))
SENDER = str(Path(__file__).with_name("live_sender.py"))
SECONDS, FAULT_AT, FAULT_S = 32, 15, 14  # fraud fails from 15 s to 29 s of the senders' run
LOCKED = "Could not set lock"


def _serve(db: Path, dashboard: int, http: int, grpc: int, log: Path) -> subprocess.Popen:
    argv = [EXE, "serve", "--db", str(db), "--port", str(dashboard)]
    argv += ["--otlp-http-port", str(http), "--otlp-grpc-port", str(grpc), "--refresh", "2"]
    with log.open("w") as out:  # a file, not a pipe nobody drains while the test runs
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=out)
    deadline = time.time() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.time() < deadline, "serve and its dashboard did not start in 60 s"
        try:
            if find_server(db) is not None:
                url = f"http://127.0.0.1:{dashboard}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return proc
        except OSError:
            pass
        time.sleep(0.2)


def _sender(protocol: str, endpoint: str, prefix: str, models: str, *fault: str) -> Any:
    argv = [sys.executable, SENDER, "--protocol", protocol, "--endpoint", endpoint]
    argv += [
        "--prefix",
        prefix,
        "--models",
        models,
        "--seconds",
        str(SECONDS),
        "--rate",
        "40",
        *fault,
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Readers:
    """Each reader loops until it has seen fraud named or the deadline passes; what it saw,
    and every error it met, are kept for the assertions."""

    def __init__(self, db: Path, dashboard_url: str, deadline: float) -> None:
        self.db, self.url, self.deadline = db, dashboard_url, deadline
        self.culprits: dict[str, set[str]] = {"cli": set(), "open": set(), "chromium": set()}
        self.reads: dict[str, int] = {"cli": 0, "open": 0, "chromium": 0}
        self.errors: list[str] = []

    def _saw(self, reader: str, models: set[str]) -> bool:
        self.culprits[reader] |= models
        self.reads[reader] += 1
        return "fraud" in models

    def cli(self) -> None:
        while time.time() < self.deadline:
            out = subprocess.run(
                [EXE, "incidents", "--db", str(self.db), "--format", "json"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if out.returncode != 0:
                self.errors.append(f"cli: {out.stderr.strip()}")
                return
            found = json.loads(out.stdout)["incidents"]
            if self._saw("cli", {i["culprit"]["model"] for i in found}):
                return
            time.sleep(1)

    def open(self) -> None:
        while time.time() < self.deadline:
            try:
                found = fa.open(str(self.db)).incidents()
            except Exception as exc:  # kept for the assertion, with its one line
                self.errors.append(f"open: {exc}")
                return
            if self._saw("open", {i.culprit.model for i in found}):
                return
            time.sleep(1)

    def chromium(self) -> None:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1200})
                page.goto(f"{self.url}/overview")
                # The page reruns by itself as data arrives (--refresh 2): no reload here.
                metric = page.get_by_test_id("stMetric").filter(has_text="First culprit")
                left = max(1.0, self.deadline - time.time())
                expect(metric).to_contain_text("fraud", timeout=left * 1000)
                self._saw("chromium", {"fraud"})
                text = page.locator("body").inner_text()
                if LOCKED in text or page.get_by_test_id("stException").count():
                    self.errors.append(f"chromium: {text[:500]}")
            except Exception as exc:  # kept for the assertion, with its first line
                self.errors.append(f"chromium: {str(exc).splitlines()[0]}")
            finally:
                browser.close()


def test_two_exporters_and_three_readers_at_once(tmp_path: Path) -> None:
    db = tmp_path / "live.duckdb"
    dashboard, http, grpc = _free_port(), _free_port(), _free_port()
    log = tmp_path / "serve.log"
    proc = _serve(db, dashboard, http, grpc, log)
    senders: list[subprocess.Popen] = []
    try:
        senders += [
            _sender(
                "http",
                f"http://127.0.0.1:{http}",
                "a",
                "fraud,recommend",
                *("--fault-model", "fraud", "--fault-at", str(FAULT_AT)),
                *("--fault-s", str(FAULT_S)),
            ),
            _sender("grpc", f"127.0.0.1:{grpc}", "b", "embed,rank"),
        ]
        readers = Readers(db, f"http://127.0.0.1:{dashboard}", time.time() + SECONDS + 40)
        threads = [
            threading.Thread(target=getattr(readers, name), name=name)
            for name in ("chromium", "cli", "open")
        ]
        for t in threads:
            t.start()
        results = []
        for s in senders:
            out, err = s.communicate(timeout=SECONDS + 90)
            assert s.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        for t in threads:
            t.join(timeout=SECONDS + 120)
    finally:
        for s in senders:
            if s.poll() is None:
                s.kill()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    assert code in (0, -signal.SIGTERM), log.read_text()
    assert LOCKED not in log.read_text()
    assert readers.errors == []
    assert all(n > 0 for n in readers.reads.values()), readers.reads
    # Each reader named fraud: the fault's model, not the healthy ones of either sender.
    assert readers.culprits == {"cli": {"fraud"}, "open": {"fraud"}, "chromium": {"fraud"}}
    # No lost span: what the exporters were told was stored is stored, over both protocols.
    assert results[0]["onset_ns"] is not None and results[1]["onset_ns"] is None
    assert all(r["acknowledged"] == r["sent"] for r in results), results
    con = connect(db, read_only=True)
    by_service = dict(
        con.execute(
            "SELECT split_part(ServiceName, '-', 1) = 'gateway', count(*) FROM otel_traces "
            "GROUP BY ALL"
        ).fetchall()
    )
    stored = con.execute(
        "SELECT count(*) FILTER (WHERE ResourceAttributes['service.instance.id'] LIKE '%-a'), "
        "count(*) FILTER (WHERE ResourceAttributes['service.instance.id'] LIKE '%-b') "
        "FROM otel_traces"
    ).fetchone()
    con.close()
    assert by_service[True] == by_service[False]  # a gateway span for every model span
    assert stored == (results[0]["acknowledged"], results[1]["acknowledged"])
