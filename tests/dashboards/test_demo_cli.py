"""`faultlens demo` in a fresh folder: sample runs loaded once, dashboard on loopback."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from test_dashboard_browser import FAULTLENS, wait_healthy

from faultlens import analyzer
from faultlens.cli._demo import sample_runs

URL = re.compile(r"faultlens dashboard: (http://127\.0\.0\.1:\d+)")


def _demo(cwd: Path, log: Path) -> tuple[subprocess.Popen, str, float]:
    """Start the demo; (process, dashboard URL, seconds until it answered)."""
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(FAULTLENS), "demo"], cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    while not (found := URL.search(log.read_text())):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() - started < 120, log.read_text()
        time.sleep(0.2)
    wait_healthy(proc, found.group(1), log)
    return proc, found.group(1), time.monotonic() - started


def test_demo_loads_the_samples_once_and_serves_on_loopback(tmp_path: Path) -> None:
    runs = sample_runs()
    assert len(runs) >= 2
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    proc, url, _ = _demo(tmp_path, first_log)
    proc.terminate()
    proc.wait(timeout=20)
    assert f"loading {len(runs)} sample runs" in first_log.read_text()
    db = tmp_path / ".faultlens" / "faultlens.duckdb"
    held = analyzer.open(str(db), read_only=True).runs()
    assert sorted(held["run"]) == sorted(runs)

    proc, url, seconds = _demo(tmp_path, second_log)
    try:
        text = second_log.read_text()
        assert f"already holds the {len(runs)} sample runs" in text
        assert "loading" not in text
        assert url.startswith("http://127.0.0.1:")
        assert seconds < 20, f"second start took {seconds:.1f} s"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
