"""Per-model CPU: the monolith's split against each model's own process, for the same load.

Runs one scenario of the sample system in both layouts (same seed, rate and seconds),
ingests both, and prints per model:

- ``monolith``: ``faultlens.model.cpu.time`` of the model's scopes inside the monolith;
- ``per-model``: the same counter in the model's own process (the process's CPU minus
  its non-model work: the HTTP server, telemetry export, the idle loop);
- ``process``: that process's whole ``process.cpu.time`` growth, to show the overhead a
  process of its own adds;

and the ratio per-model / monolith. Models whose calls take tens of microseconds cost
more per call in a process that idles between requests (cold caches), so their ratio
is above 1 for a physical reason; the total and the models carrying the CPU are the
figures to compare.

    python benchmarks/model_cpu_split.py --scenario latency --seconds 16
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from faultlens.analyzer import connect, ingest
from faultlens.sample_traces import run_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="latency")
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--rate", type=float, default=12.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("monolith", "per-model"):
            run_scenario(args.scenario, layout=layout, seconds=args.seconds, rate=args.rate,
                         out=Path(tmp) / layout)  # fmt: skip
        db = Path(tmp) / "split.duckdb"
        ingest([Path(tmp) / "monolith", Path(tmp) / "per-model"], db=db)
        rows = (
            connect(db, read_only=True)
            .execute(
                """SELECT Layout, ServiceName, ModelName, MetricName,
                      sum(CASE WHEN MetricName = 'process.cpu.time' THEN hi - lo ELSE hi END)
               FROM (SELECT Layout, ServiceName, ModelName, MetricName, Attributes,
                            ResourceAttributes['service.instance.id'] AS i,
                            max(Value) AS hi, min(Value) AS lo
                     FROM otel_metrics_sum
                     WHERE MetricName IN ('process.cpu.time', 'faultlens.model.cpu.time')
                     GROUP BY ALL)
               GROUP BY ALL"""
            )
            .fetchall()
        )
    scope = {(layout, model): v for layout, _, model, m, v in rows if m.startswith("faultlens")}
    process = {svc: v for layout, svc, _, m, v in rows if layout == "per-model" and m[0] == "p"}
    models = sorted(m for layout, m in scope if layout == "monolith")
    total = {
        lay: sum(v for (la, _), v in scope.items() if la == lay)
        for lay in ("monolith", "per-model")
    }
    print(f"{args.scenario}, {args.seconds:g} s at {args.rate:g} rps; CPU-seconds")
    print(f"{'model':10} {'monolith':>9} {'per-model':>9} {'ratio':>6} {'share':>6} {'process':>8}")
    for m in models:
        mono, per = scope[("monolith", m)], scope.get(("per-model", m), 0.0)
        print(f"{m:10} {mono:9.4f} {per:9.4f} {per / mono:6.2f} {mono / total['monolith']:6.1%} "
              f"{process.get(f'model-{m}', 0.0):8.2f}")  # fmt: skip
    print(f"{'total':10} {total['monolith']:9.4f} {total['per-model']:9.4f} "
          f"{total['per-model'] / total['monolith']:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
