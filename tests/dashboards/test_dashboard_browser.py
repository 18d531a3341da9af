"""The dashboard in a real browser: `faultlens dashboard` served, Debian's Chromium driving.

Nothing is skipped: without Chromium the test fails and says how to install it
(`.ci/run` installs it when missing).
"""

from __future__ import annotations

import contextlib
import json
import os
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

from faultlens import analyzer as fa
from faultlens.analyzer.present._words import isolation_text
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


@contextlib.contextmanager
def _serve(db: str, log: Path) -> Iterator[str]:
    """`faultlens dashboard` over ``db`` on a free loopback port, as a user starts it."""
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(FAULTLENS), "dashboard", "--db", db, "--port", str(port)],
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


@pytest.fixture(scope="module")
def server(sample_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard over the sample store."""
    with _serve(sample_db, tmp_path_factory.mktemp("server") / "dashboard.log") as url:
        yield url


@pytest.fixture(scope="module")
def latency_server(latency_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard over both runs of the latency scenario."""
    with _serve(latency_db, tmp_path_factory.mktemp("server") / "latency.log") as url:
        yield url


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


# Every element that shows a label, caption or value as text (and what is inside it): CSS
# truncation (an ellipsis) leaves the DOM text whole, so only the widths can tell.
LABELS = ", ".join(
    f"{sel}, {sel} *"
    for sel in (
        '[data-testid="stMetricLabel"]',
        '[data-testid="stMetricValue"]',
        '[data-testid="stCaptionContainer"]',
        '[data-testid="stWidgetLabel"]',
        '[data-testid="stHeading"]',
        '[data-testid="stMarkdownContainer"]',
        '[data-testid="stTableStyledTable"]',
        'button[role="tab"]',
    )
)
CUT = f"""() => Array.from(document.querySelectorAll({json.dumps(LABELS)}))
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => `${{e.textContent.trim().slice(0, 60)}}: ${{e.scrollWidth}}/${{e.clientWidth}} px`)"""
# (url path, heading, screenshot): the pages the README shows, on the latency scenario.
SHOTS = (
    ("", "Overview", "overview.png"),
    ("incident", "Incident", "incident.png"),
    ("contrast", "Layout contrast", "layout-contrast.png"),
)


def _whole_page(page: Page, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls its main block, not the window,
    so the viewport grows to the block's height first."""
    charts = page.locator('[data-testid="stPlotlyChart"] .main-svg')
    for n in range(page.get_by_test_id("stPlotlyChart").count()):
        expect(charts.nth(2 * n)).to_be_attached(timeout=30_000)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(800)  # charts and grids redraw at the new size
    page.screenshot(path=path)
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_labels_whole_at_1400px(latency_server: str, latency_db: str, tmp_path: Path) -> None:
    """Overview, Incident and Layout contrast of a latency fault in a monolith, 1400 px wide:
    no label, caption or value is cut; the pages say what plain OTel did not isolate.
    FAULTLENS_SCREENSHOTS=DIR also keeps the screenshots there (docs/ is refreshed so)."""
    run = "cpu-hog/monolith"
    incident = fa.open(latency_db, run=run).incidents()[0].to_dict()
    service_only = incident["fault_isolation"]["service_only"]
    assert not service_only["isolates_model"]
    keep = os.environ.get("FAULTLENS_SCREENSHOTS")
    cut: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, heading, shot in SHOTS:
                _open(page, f"{latency_server}/{path}?run={run}", heading)
                if path == "incident":
                    expect(
                        page.get_by_test_id("stMetric").filter(
                            has_text="Isolation time (service-only)"
                        )
                    ).to_contain_text("model not isolated")
                    expect(page.get_by_text(isolation_text(service_only))).to_have_count(2)
                if path == "contrast":
                    expect(
                        page.get_by_test_id("stMetric")
                        .filter(has_text="Isolation time (plain OTel)")
                        .first
                    ).to_contain_text("not isolated")
                _whole_page(page, tmp_path / shot)
                cut[heading] = page.evaluate(CUT)
                if keep:
                    shutil.copy(tmp_path / shot, Path(keep) / shot)
        finally:
            browser.close()
    assert cut == {heading: [] for _, heading, _ in SHOTS}
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(s for *_, s in SHOTS)


def test_contrast_shows_the_cost_of_both_layouts_with_the_chart(
    latency_server: str, latency_db: str, tmp_path: Path
) -> None:
    """The Layout contrast page's cost section on runs that carry their services' metrics:
    the measured verdict, the chart of both sides (what per-model costs, what it cuts),
    and each layout's figures under its own label, as the analyzer computes them."""
    run = "cpu-hog/monolith"
    found = fa.open(latency_db, run=run).layout_verdicts()
    assert "cpu-hog" in found, "the committed runs need their services' metrics (regenerate)"
    verdict = found["cpu-hog"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open(page, f"{latency_server}/contrast?run={run}", "Layout contrast")
            heading = "Resource cost against isolation: the layout verdict"
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
            said = page.get_by_test_id("stMarkdownContainer").filter(has_text="Verdict (measured):")
            expect(said).to_contain_text(verdict.sentence)
            chart = page.get_by_test_id("stPlotlyChart").filter(
                has_text="Per-model against monolith, scenario cpu-hog (measured)"
            )
            expect(chart).to_have_count(1, timeout=30_000)
            expect(chart).to_contain_text("what per-model costs")
            expect(chart).to_contain_text("what per-model cuts")
            for n, (label, cost) in enumerate(
                (
                    ("Monolith (measured)", verdict.monolith),
                    ("Per-model (measured)", verdict.per_model),
                )  # fmt: skip
            ):
                expect(page.get_by_text(f"{label}: run {cost.run}")).to_be_visible()
                for card, value in (
                    ("Processes", str(cost.processes)),
                    ("CPU-s per 1,000 requests", f"{cost.cpu_seconds_per_1k:.3f}"),
                    ("Process footprint, mean (MB)", f"{cost.mean_rss_bytes / 1e6:.0f}"),
                    ("Idle footprint (MB)", f"{cost.idle_rss_bytes / 1e6:.0f}"),
                ):
                    cards = page.get_by_test_id("stMetric").filter(
                        has=page.get_by_text(card, exact=True)
                    )
                    expect(cards).to_have_count(2)
                    expect(cards.nth(n)).to_contain_text(value)
            # Which memory figure is measured and which is an estimate, said under them.
            footprint = "Process footprint: the processes' resident memory, measured."
            expect(page.get_by_text(footprint)).to_contain_text("Load-time growth: ")
            _whole_page(page, tmp_path / "contrast-cost.png")
            assert page.evaluate(CUT) == []
        finally:
            browser.close()
