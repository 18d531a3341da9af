"""Metrics ingest speed: data points/s through `faultlens ingest`, next to spans/s in the same run.

Writes an OTLP JSON Lines metrics file with the real OpenTelemetry SDK (the JSON file
exporter, cumulative temporality): ``--series`` attribute sets on each of a counter, an
up-down counter, a histogram (explicit buckets), an exponential histogram and a gauge,
collected ``--collections`` times and once more at shutdown, so the file holds
series x 5 x (collections + 1) data points. Then, in one run, times:

1. ``faultlens ingest`` of that file (in process, a fresh store): data points/s;
2. the baseline: ``faultlens ingest`` of a spans file with as many records (generated as
   benchmarks/ingest.py generates them): spans/s;

and prints the ratio. Metrics take the Python decoder through the protobuf classes (one
``json_format.ParseDict`` per metric), spans the vectorised pyarrow path: the ratio says
what that costs.

    python benchmarks/metrics_ingest.py --series 2000 --collections 10
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import generate  # noqa: E402 (the spans generator of benchmarks/ingest.py)

from faultlens.analyzer import ingest  # noqa: E402


def write_metrics(path: Path, *, series: int, collections: int) -> int:
    """The SDK's metrics as its JSON file exporter writes them; returns the data points."""
    from opentelemetry.exporter.otlp.json.file.metric_exporter import FileMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(
        FileMetricExporter(path), export_interval_millis=3_600_000
    )
    provider = MeterProvider(
        resource=Resource({"service.name": "monolith", "faultlens.layout": "monolith"}),
        metric_readers=[reader],
        views=[
            View(instrument_name="latency.exp", aggregation=ExponentialBucketHistogramAggregation())
        ],
    )
    meter = provider.get_meter("bench")
    counter = meter.create_counter("requests")
    updown = meter.create_up_down_counter("queue")
    histogram = meter.create_histogram("latency")
    exp_histogram = meter.create_histogram("latency.exp")
    gauge = meter.create_gauge("temperature")
    models = ("tokenize", "embed", "fraud", "rank")
    for round_ in range(collections):
        for s in range(series):
            attrs = {"ml.model.name": models[s % 4], "endpoint": f"/e{s}"}
            counter.add(1, attrs)
            updown.add(1 if s % 2 else -1, attrs)
            histogram.record(s % 500 + round_, attrs)
            exp_histogram.record(0.5 + s % 97, attrs)
            gauge.set(s + round_, attrs)
        provider.force_flush()
    provider.shutdown()  # one more collection: the reader's last
    return series * 5 * (collections + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--collections", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        metrics_file = root / "metrics.jsonl"
        points = write_metrics(metrics_file, series=args.series, collections=args.collections)
        spans_file = root / "traces.jsonl"
        generate(spans_file, points)

        started = time.perf_counter()
        report = ingest([metrics_file], db=root / "metrics.duckdb")
        metrics_s = time.perf_counter() - started
        assert report.data_points == points and not report.errors, report

        started = time.perf_counter()
        spans_report = ingest([spans_file], db=root / "spans.duckdb")
        spans_s = time.perf_counter() - started
        assert spans_report.spans == points and not spans_report.errors, spans_report

    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"metrics: {points:,} data points ({args.series} series x 5 kinds x "
        f"{args.collections + 1} collections) in {metrics_s:.2f} s = "
        f"{points / metrics_s:,.0f} points/s"
    )
    print(f"spans (baseline, same run): {points:,} spans in {spans_s:.2f} s = "
          f"{points / spans_s:,.0f} spans/s")  # fmt: skip
    print(f"ratio: metrics ingest takes {metrics_s / spans_s:.1f}x the time of as many spans")


if __name__ == "__main__":
    main()
