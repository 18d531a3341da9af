"""Live detection: how soon `faultlens serve` names a fault, what a detection cycle costs,
and what the dashboard costs ingest.

1. Time to detect. Each sample scenario (both layouts; ``--scenarios`` picks a few) is
   streamed through the real OTLP exporter into `faultlens collect` (serve without the
   dashboard) with the SDK's default batch delay (OTEL_BSP_SCHEDULE_DELAY 5000 ms). The
   read API (/api/live) is polled every 0.5 s and a local webhook sink records every
   page. Per scenario it prints the time from the fault's onset (truth.json) to the first
   incident overlapping the fault at the API, to that incident naming the right culprit
   (the model, or the service for a fault in a service without one; where the offline
   analysis of the same store names no model either, as for a shared process that died
   leaving no model's evidence, the service with no model and the faulty one among its
   suspect models), and to the first
   webhook naming it; then medians and the worst against the targets (median
   onset-to-culprit <= 15 s, worst <= 30 s, the export delay included).
2. A detection cycle's CPU time: a store of N generated spans (``--cycle-spans``, 10M by
   default; benchmarks/ingest.py's generator, one span a millisecond), one cycle to warm
   up (it derives the whole window), then 10k new spans committed and the next cycle timed
   (process CPU, DuckDB's threads included), ``--cycle-rounds`` times, for several
   detection windows (``--windows``). Baseline, same run, same data: the cycle as it was
   before the live facts, a full analysis of the window deriving its facts from
   ``otel_traces``. Target: <= 1 s at 10M stored spans. With ``--workdir`` the store is
   kept there for the next run.
3. Acknowledged throughput with the dashboard open: 2 processes export a bounded count
   of spans (real OTLP/HTTP exporter) into `faultlens serve` while Chromium shows the
   dashboard's overview (refreshing every 2 s), against `faultlens collect` with no
   dashboard, in the same run. Both servers first take the same few warm-up spans and
   the overview has drawn them before the timed senders start: what is measured is the
   dashboard open, not its first page load; 100k spans a run (~10 s) hold several
   refreshes. Target: within 20%.

    python benchmarks/live.py --scenarios error-burst,latency --seconds 40 \
        --cycle-spans 1000000,3000000 --throughput-spans 100000
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from ingest import _free_port, generate, receiver  # noqa: E402

from faultlens.analyzer import open as open_store  # noqa: E402
from faultlens.analyzer._settings import TimeWindow  # noqa: E402
from faultlens.analyzer.decode._otlp_json import Decoded, decode_document  # noqa: E402
from faultlens.analyzer.present._api import Analysis  # noqa: E402
from faultlens.analyzer.serve._live import LiveIncidents  # noqa: E402
from faultlens.analyzer.serve._state import find_server  # noqa: E402
from faultlens.analyzer.store._write import connect, write_batch  # noqa: E402
from faultlens.sample_traces import SCENARIOS, run_scenario  # noqa: E402

EXE = str(Path(sys.executable).with_name("faultlens"))
SDK_DEFAULT_DELAY_MS = 5000  # OTEL_BSP_SCHEDULE_DELAY's default in the specification
BUCKET_NS = 5 * 10**9
S = 10**9
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


# -- 1. time to detect -----------------------------------------------------------------
class _Sink(BaseHTTPRequestHandler):
    pages: list[tuple[int, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).pages.append((time.time_ns(), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _collect(db: Path, port: int, hook: str) -> subprocess.Popen:
    argv = [EXE, "collect", "--db", str(db), "--port", str(port), "--otlp-grpc-port", "0"]
    proc = subprocess.Popen(argv + ["--webhook", hook], stdout=subprocess.DEVNULL)
    deadline = time.time() + 60
    while find_server(db) is None:
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"faultlens collect did not start for {db}")
        time.sleep(0.05)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def _overlaps(inc: dict[str, Any], fault: dict[str, Any]) -> bool:
    return inc["end_ns"] > fault["onset_ns"] and inc["onset_ns"] <= fault["end_ns"] + BUCKET_NS


def _names(inc: dict[str, Any], culprit: dict[str, Any], *, undecidable: bool) -> bool:
    """The incident names the right culprit: its model; or, where the stored data cannot
    tell which model of a shared process failed (``undecidable``: the offline analysis of
    the same store names no model either, e.g. a process that died), the right service with
    no model and the faulty one among its suspect models."""
    if undecidable and culprit["model"] and inc["culprit"]["model"] is None:
        return inc["culprit"]["service"] == culprit["service"] and culprit["model"] in inc.get(
            "suspect_models", ()
        )
    if culprit["model"]:
        return inc["culprit"]["model"] == culprit["model"]
    return inc["culprit"]["service"] == culprit["service"]


def detect_one(name: str, layout: str, *, seconds: float, workdir: Path) -> dict[str, Any]:
    """Stream one scenario live; seconds from onset to incident, culprit and webhook."""
    _Sink.pages = []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    db, port = workdir / f"{name}-{layout}.duckdb", _free_port()
    url = f"http://127.0.0.1:{port}"
    polls: list[tuple[int, list[dict[str, Any]]]] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not done.wait(0.5):
                with contextlib.suppress(httpx.HTTPError):
                    live = client.get("/api/live").json()
                    polls.append((time.time_ns(), live["incidents"]))

    proc = _collect(db, port, f"http://127.0.0.1:{sink.server_port}/page")
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        truth = run_scenario(
            name,
            layout=layout,
            seconds=seconds,
            out=workdir / f"{name}-{layout}",
            otlp_endpoint=url,
            export_delay_ms=SDK_DEFAULT_DELAY_MS,
        )
        time.sleep(SDK_DEFAULT_DELAY_MS / 1000 + 6)  # the last export and detection cycles
    finally:
        done.set()
        poller.join()
        _stop(proc)
        sink.shutdown()
    fault, culprit = truth["fault"], truth["culprit"]
    offline = [i.to_dict() for i in open_store(str(db)).incidents()]
    undecidable = any(_overlaps(i, fault) and i["culprit"]["model"] is None for i in offline)
    names = functools.partial(_names, culprit=culprit, undecidable=undecidable)

    def first(seen: Any) -> float | None:
        times = [t for t, incs in seen if any(incs)]
        return (times[0] - fault["onset_ns"]) / S if times else None

    named = [
        i["culprit"]["model"]
        or f"{i['culprit']['service']} (no model"
        + (f"; suspects {', '.join(i['suspect_models'])})" if i["suspect_models"] else ")")
        for _, incs in polls[-1:]
        for i in incs
        if _overlaps(i, fault)
    ]
    return {
        "named": (", ".join(named) or "nothing")
        + (" (offline: no model either)" if undecidable else ""),
        "scenario": name,
        "layout": layout,
        "incident": first((t, [_overlaps(i, fault) for i in incs]) for t, incs in polls),
        "culprit": first(
            (t, [_overlaps(i, fault) and names(i) for i in incs]) for t, incs in polls
        ),
        "webhook": first(
            (t, [_overlaps(p["incident"], fault) and names(p["incident"])]) for t, p in _Sink.pages
        ),
    }


def _fmt(seconds: float | None) -> str:
    return "missed" if seconds is None else f"{seconds:6.1f}"


def detection(scenarios: list[str], layouts: list[str], seconds: float, workdir: Path) -> None:
    print(
        f"\n1. Time to detect: scenarios streamed live ({seconds:g} s each, fault at 3/8), "
        f"real OTLP/HTTP exporter, batch delay {SDK_DEFAULT_DELAY_MS} ms (the SDK default)"
    )
    print(
        f"{'scenario':<16} {'layout':<10} {'incident s':>10} {'culprit s':>10} "
        f"{'webhook s':>10}  named at the end"
    )
    rows = []
    workdir.mkdir(parents=True, exist_ok=True)
    for name in scenarios:
        for layout in layouts:
            row = detect_one(name, layout, seconds=seconds, workdir=workdir)
            rows.append(row)
            print(
                f"{name:<16} {layout:<10} {_fmt(row['incident']):>10} "
                f"{_fmt(row['culprit']):>10} {_fmt(row['webhook']):>10}  {row['named']}",
                flush=True,
            )
    for key in ("incident", "culprit", "webhook"):
        got = [r[key] for r in rows if r[key] is not None]
        missed = len(rows) - len(got)
        if not got:
            print(f"onset to {key}: missed in all {len(rows)}")
            continue
        med, worst = statistics.median(got), max(got)
        line = (
            f"onset to {key}: median {med:.1f} s, worst {worst:.1f} s, missed {missed}/{len(rows)}"
        )
        if key == "culprit":
            met = med <= 15 and worst <= 30 and not missed
            verdict = "met" if met else "NOT met"
            line += f" (target median <= 15 s, worst <= 30 s, none missed: {verdict})"
        print(line)


# -- 2. a detection cycle's CPU time ---------------------------------------------------------
def _new_spans(path: Path, count: int, t0: int) -> Any:
    generate(path, count, seed=t0 // 10**6 % 10**9, t0=t0)  # new ids each batch
    out = Decoded()
    with path.open("rb") as f:
        for line in f:
            decode_document(orjson.loads(line), path.name, out)
    return out.traces.to_arrow()


def _rederive_cycle(con: Any, now: int, window_s: float) -> float:
    """CPU seconds of the cycle as it was before the live facts: a full analysis of the
    window, deriving its facts from otel_traces (the baseline, same data, same run)."""
    cur = con.cursor()
    started = time.process_time()
    window = TimeWindow(now - int(window_s * S), now + 1)
    Analysis(cur, window=window).incidents()
    spent = time.process_time() - started
    cur.close()
    return spent


def cycle_cost(
    stored: int, windows: list[float], new: int, rounds: int, workdir: Path, *, keep: bool
) -> None:
    path, db = workdir / f"store-{stored}.jsonl", workdir / f"store-{stored}.duckdb"
    started = time.perf_counter()
    if not db.exists():  # --workdir keeps a store for the next run
        generate(path, stored)
        done = subprocess.run([EXE, "ingest", str(path), "--db", str(db)], capture_output=True)
        if done.returncode:
            raise SystemExit(done.stderr.decode())
        path.unlink()
    built = time.perf_counter() - started
    con = connect(db)
    # New spans go on right after the newest one stored (an earlier run may have added some).
    newest = con.execute("SELECT epoch_ns(max(Timestamp)) FROM otel_traces").fetchone()[0]
    t0 = int(newest) + 10**6
    commits = [0]
    for k, window in enumerate(windows):
        live = LiveIncidents(
            con.cursor, generation=lambda: commits[0], window_s=window, log=lambda line: None
        )
        live.cycle()  # the first cycle after a start: the whole window
        first = live.last_cycle_s
        cycles, baselines, updates = [], [], []
        for j in range(rounds):
            table = _new_spans(workdir / "new.jsonl", new, t0)
            t0 += new * 10**6
            write_batch(
                con,
                run_id=f"bench-{k}-{j}",
                source="benchmarks/live.py",
                traces=table,
                logs=None,
                rejects=[],
                read={"traces": new},
            )
            commits[0] += 1
            live.cycle()
            cycles.append(live.last_cycle_s)
            updates.append(live.last_update)
            baselines.append(_rederive_cycle(con, live.as_of_ns, window))
        cycle, base = statistics.median(cycles), statistics.median(baselines)
        u = updates[-1]
        print(
            f"{stored:>11,} stored {window:>7g} s window ({u.window_spans:,} spans in it): "
            f"first cycle {first:6.2f} s CPU; after {new:,} new spans, median of {rounds}: "
            f"{cycle:6.3f} s CPU against {base:6.2f} s re-deriving the window "
            f"({cycle / base:.3f}x; target <= 1 s: {'met' if cycle <= 1 else 'NOT met'})",
            flush=True,
        )
        print(
            f"{'':>13}last cycle read {u.new_spans:,} new spans, dropped {u.dropped_spans:,}, "
            f"derived {u.dirty_traces:,} traces ({u.recomputed_spans:,} spans) and "
            f"{u.dirty_buckets} buckets again; maps moved: {u.maps_changed}",
            flush=True,
        )
        live.stop()
    con.close()
    if not keep:
        db.unlink()
    print(f"  (store built or opened in {built:.0f} s)")


# -- 3. throughput with the dashboard open ---------------------------------------------
WARMUP_SPANS = 2_000


def _warm_up(port: int, workdir: Path) -> None:
    """The same few spans into either server before the timed senders (so the page has data
    to draw, and both stores start alike): OTLP JSON, POSTed to the receiver."""
    path = workdir / "warm-up.jsonl"
    generate(path, WARMUP_SPANS, seed=11, t0=time.time_ns() - 60 * S)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for line in path.read_bytes().splitlines():
            r = client.post(
                "/v1/traces", content=line, headers={"content-type": "application/json"}
            )
            r.raise_for_status()


@contextlib.contextmanager
def _browser_on(dashboard: int) -> Iterator[None]:
    """Chromium on the overview, once it has drawn its charts: the dashboard open (its first
    run imports the analyzer and plotly, and the browser loads plotly.js, once)."""
    from playwright.sync_api import expect, sync_playwright

    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{dashboard}/_stcore/health", timeout=2
            ) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if time.time() > deadline:
                raise SystemExit("the dashboard did not start") from None
            time.sleep(0.2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(f"http://127.0.0.1:{dashboard}/overview")
        # The page reruns by itself once detection has seen the warm-up spans.
        chart = page.get_by_test_id("stPlotlyChart").first
        expect(chart).to_be_visible(timeout=90_000)
        finished = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
        expect(finished).to_have_count(1, timeout=90_000)
        try:
            yield
        finally:
            browser.close()


def _serve_argv(db: Path, dashboard: int, port: int) -> list[str]:
    argv = [EXE, "serve", "--db", str(db), "--port", str(dashboard), "--refresh", "2"]
    return argv + ["--otlp-http-port", str(port), "--otlp-grpc-port", "0"]


def _collect_argv(db: Path, port: int) -> list[str]:
    return [EXE, "collect", "--db", str(db), "--port", str(port)]


def _argv(ports: list[int], label: str, db: Path, dashboard: int, port: int) -> list[str]:
    ports.append(port)
    if label.startswith("serve"):
        return _serve_argv(db, dashboard, port)
    return _collect_argv(db, port)


def _cpu_by_part() -> dict[str, float]:
    """CPU seconds so far of this benchmark's children, by part: the server (collect or
    serve), the dashboard (serve's Streamlit child), the browser (Playwright's Chromium).
    Steadier than spans/s on shared cores. (Not the senders: they exit inside the
    window, and a process that has exited is no longer counted.)"""
    import psutil

    parts = dict.fromkeys(("server", "dashboard", "browser"), 0.0)
    for proc in psutil.Process().children(recursive=True):
        try:
            line = " ".join(proc.cmdline())
            t = proc.cpu_times()
        except psutil.Error:
            continue
        if EXE in line:
            part = "server"
        elif "streamlit" in line:
            part = "dashboard"
        elif "chrom" in proc.name() or "playwright" in line:
            part = "browser"
        else:
            continue
        parts[part] += t.user + t.system
    return parts


@contextlib.contextmanager
def _during(
    ports: list[int], label: str, dashboard: int, workdir: Path, cpu: dict[str, float]
) -> Iterator[None]:
    _warm_up(ports[0], workdir)
    with _browser_on(dashboard) if label.startswith("serve") else contextlib.nullcontext():
        before = _cpu_by_part()
        yield
        for part, seconds in _cpu_by_part().items():
            cpu[part] = seconds - before[part]


def throughput(spans: int, runs: int, workdir: Path) -> None:
    print(
        f"\n3. Acknowledged throughput, 2 sender processes, real OTLP/HTTP exporter, "
        f"{spans:,} spans a run, {runs} runs each, alternating; each server first takes "
        f"{WARMUP_SPANS:,} spans, and the dashboard has drawn them before the senders start"
    )
    rates: dict[str, list[float]] = {"collect, no dashboard": [], "serve, dashboard open": []}
    cpu: dict[str, list[dict[str, float]]] = {label: [] for label in rates}
    for k in range(runs):
        for label in rates:
            db = workdir / f"tp-{k}-{label[:5]}.duckdb"
            dashboard = _free_port()
            ports: list[int] = []  # the OTLP port receiver() picks
            argv = functools.partial(_argv, ports, label, db, dashboard)
            cpu[label].append({})
            during = functools.partial(_during, ports, label, dashboard, workdir, cpu[label][-1])
            elapsed, stored, failed, _ = receiver(spans, db, 2, server_argv=argv, during=during)
            stored -= WARMUP_SPANS
            if failed or stored != spans:
                print(f"  {label}: {failed} spans failed, {stored} stored of {spans}")
            rates[label].append(stored / elapsed)
            db.unlink()
    base, open_ = (statistics.median(v) for v in rates.values())
    for label, values in rates.items():
        each = ", ".join(f"{v:.0f}" for v in values)
        print(f"{label:<24} median {statistics.median(values):8.0f} spans/s (runs: {each})")
    ratio = open_ / base
    met = "met" if ratio >= 0.8 else "NOT met"
    print(f"dashboard open / no dashboard: {ratio:.2f} (target >= 0.80: {met})")
    print("CPU seconds per 10k acknowledged spans, median of the runs (the timed window):")
    for label, runs_cpu in cpu.items():
        each = {
            part: statistics.median(r[part] for r in runs_cpu) * 10_000 / spans
            for part in runs_cpu[0]
        }
        print(f"  {label:<24} " + ", ".join(f"{p} {v:.2f}" for p, v in each.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--layouts", default="monolith,per-model")
    parser.add_argument("--seconds", type=float, default=40.0, help="each scenario's run")
    parser.add_argument("--cycle-spans", default="10000000", help="stored spans, comma-separated")
    parser.add_argument("--windows", default="60,600", help="detection windows, s")
    parser.add_argument("--cycle-rounds", type=int, default=3, help="timed cycles per window")
    parser.add_argument("--throughput-spans", type=int, default=100_000)
    parser.add_argument("--throughput-runs", type=int, default=2)
    parser.add_argument("--skip", default="", help="parts to skip: detect,cycle,throughput")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="faultlens-live-"))
    workdir.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )
    if "detect" not in skip:
        detection(
            args.scenarios.split(","), args.layouts.split(","), args.seconds, workdir / "detect"
        )
    if "cycle" not in skip:
        print("\n2. A detection cycle's CPU time (10k new spans committed between cycles)")
        windows = [float(w) for w in args.windows.split(",")]
        for stored in (int(n) for n in args.cycle_spans.split(",")):
            cycle_cost(stored, windows, 10_000, args.cycle_rounds, workdir, keep=bool(args.workdir))
    if "throughput" not in skip:
        throughput(args.throughput_spans, args.throughput_runs, workdir)


if __name__ == "__main__":
    main()
