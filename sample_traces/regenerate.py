"""Regenerate the committed sample runs: ``python -m faultlens.sample_traces.regenerate``.

Runs every scenario (or those named) in both layouts, 40 s at 12 requests/s
(15 s baseline, 15 s fault, 10 s recovery), into
``sample_traces/data/<scenario>/<layout>/`` (or ``--out DIR/<scenario>/<layout>/``),
then rewrites the table in that directory's ``README.md`` from the truth files.

Example: python -m faultlens.sample_traces.regenerate crash error-burst --out /tmp/runs
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from ._catalogue import SCENARIOS
from ._runner import LAYOUTS, run_scenario

DATA_DIR = Path(__file__).parent / "data"
SECONDS = 40.0
RATE = 12.0


def _p95(latencies: list[float]) -> int:
    return round(sorted(latencies)[int(0.95 * (len(latencies) - 1))]) if latencies else 0


def summarize(truth: dict) -> str:
    """One table cell: failed requests by endpoint, p95 latency before/during, restarts."""
    failed = Counter(r["endpoint"] for r in truth["requests"] if r["outcome"] == "error")
    by_endpoint = ", ".join(f"{e} {n}" for e, n in sorted(failed.items())) or "none"
    onset, end = truth["fault"]["onset_ns"], truth["fault"]["end_ns"]
    before = [r["latency_ms"] for r in truth["requests"] if r["start_ns"] < onset]
    during = [r["latency_ms"] for r in truth["requests"] if onset <= r["start_ns"] < end]
    return (
        f"{sum(failed.values())}/{len(truth['requests'])} failed ({by_endpoint}); "
        f"p95 {_p95(before)} → {_p95(during)} ms; {len(truth['restarts'])} restarts"
    )


def write_readme(data_dir: Path = DATA_DIR) -> None:
    rows = []
    for name, scenario in SCENARIOS.items():
        cells = []
        for layout in LAYOUTS:
            path = data_dir / name / layout / "truth.json"
            cells.append(summarize(json.loads(path.read_text())) if path.exists() else "not run")
        rows.append(f"| `{name}` | {scenario.target} | {scenario.shows} | {' | '.join(cells)} |")
    (data_dir / "README.md").write_text(
        "# Committed sample runs\n\n"
        "Each `<scenario>/<layout>/` holds `traces.jsonl.gz` and `logs.jsonl.gz` (OTLP JSON "
        "Lines, as the exporters wrote them; the load generator `loadgen` records one CLIENT "
        "span per request, parent of the entry service's span) and `truth.json` (the ground "
        "truth: fault, "
        "culprit, onset/end, every request, every restart). Regenerate with "
        "`python -m faultlens.sample_traces.regenerate`.\n\n"
        f"Each run: {SECONDS:g} s at {RATE:g} requests/s (15 s baseline, 15 s fault, "
        "10 s recovery).\n\n"
        "Cells: failed requests by endpoint, p95 latency of all requests before → during the "
        "fault, restarts.\n\n"
        "| scenario | culprit | what it shows | monolith | per-model |\n"
        "| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--layout", choices=LAYOUTS, action="append")
    parser.add_argument("--readme-only", action="store_true", help="Only rewrite the table.")
    parser.add_argument("--out", type=Path, default=DATA_DIR,
                        help="Where to write the runs (default: the committed data).")  # fmt: skip
    args = parser.parse_args()
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    for name in [] if args.readme_only else args.scenarios:
        for layout in args.layout or LAYOUTS:
            out = args.out / name / layout
            truth = run_scenario(name, layout=layout, seconds=SECONDS, rate=RATE, out=out)
            print(f"{name}/{layout}: {summarize(truth)}", flush=True)
    write_readme(args.out)


if __name__ == "__main__":
    main()
