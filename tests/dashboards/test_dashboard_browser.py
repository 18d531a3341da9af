"""The dashboard in a real browser: `faultlens dashboard` served, Debian's Chromium driving.

Nothing is skipped: without Chromium the test fails and says how to install it
(`.ci/run` installs it when missing).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from faultlens.dashboards._views import share

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FAULTLENS = Path(sys.executable).with_name("faultlens")
# (url path, heading) of every page, in navigation order.
PAGES = (
    ("overview", "Overview"),
    ("incident", "Incident"),
    ("contrast", "Layout contrast"),
    ("traces", "Traces"),
    ("logs", "Logs"),
)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Debian's Chromium is not installed; the browser test needs it: "
            "apt-get install -y chromium chromium-driver (bash .ci/run does this)"
        )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, log: Path, *, timeout_s: float = 60) -> float:
    """Seconds until Streamlit's health endpoint answers; fails with the server's log."""
    started = time.monotonic()
    while True:
        assert proc.poll() is None, f"dashboard exited early:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        waited = time.monotonic() - started
        assert waited < timeout_s, f"dashboard not up in {timeout_s} s:\n{log.read_text()}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(sample_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`faultlens dashboard` on a free loopback port, as a user starts it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(FAULTLENS), "dashboard", "--db", sample_db, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _open(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=60_000)
    # The heading is drawn once the script runs; wait until the run has finished.
    finished = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    expect(finished).to_have_count(1, timeout=60_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_every_page_in_chromium(server: str, analysis, tmp_path: Path) -> None:
    incident = analysis.incidents()[0].to_dict()
    blast = incident["blast_radius"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            for path, heading in PAGES:
                _open(page, f"{server}/{path}", heading)
                if path == "incident":
                    culprit = page.get_by_test_id("stMetric").filter(has_text="Culprit model")
                    expect(culprit).to_contain_text(incident["culprit"]["model"])
                    requests = page.get_by_test_id("stMetric").filter(
                        has_text="Blast radius (requests)"
                    )
                    expect(requests).to_contain_text(str(blast["requests"]))
                    expect(
                        page.get_by_test_id("stMetric").filter(has_text="Blast radius (share)")
                    ).to_contain_text(share(blast["share"]))
                page.wait_for_timeout(800)  # data grids size themselves after the run
                page.screenshot(path=tmp_path / f"{path}.png", full_page=True)
        finally:
            browser.close()
    shots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert shots == sorted(f"{p}.png" for p, _ in PAGES)
