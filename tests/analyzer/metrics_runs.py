"""Two small runs of one scenario, one per layout, with the metrics the cost analysis reads.

Each service is a real child process instrumented by ``faultlens.instrumentation``
(``configure(metrics=True)``: the system-metrics instrumentation's process CPU and memory,
and each model scope's thread CPU) that serves requests for about a second and writes
OTLP JSON Lines with the real file exporters. Its meter provider also records one
instrument of every other kind (an explicit-bucket histogram, an exponential histogram,
a gauge), so every metrics table holds rows; each process loads its models under
``model(...).loading()`` (``LOAD_MB`` each: the load-time growth gauge). The monolith runs
both models in one process; per-model runs one process per model: the layout pair the
verdict compares.
About three seconds, the processes side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCENARIO = "two-models"
MODELS = ("fraud", "ranker")
LOAD_MB = {"fraud": 4, "ranker": 8}  # what each model's load allocates (and touches)

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.json.file.metric_exporter import FileMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import SpanKind
    from faultlens.instrumentation import configure, model, shutdown

    service, layout, out = sys.argv[1], sys.argv[2], sys.argv[3]
    models, load_mb = sys.argv[4].split(","), json.loads(sys.argv[5])
    # The application's own meter provider (configure(metrics=True) adds to it), with a view
    # that makes one histogram exponential.
    provider = MeterProvider(
        resource=Resource.create({"service.name": service, "faultlens.layout": layout}),
        metric_readers=[PeriodicExportingMetricReader(
            FileMetricExporter(f"{out}/metrics-{service}.jsonl"), export_interval_millis=250)],
        views=[View(instrument_name="demo.latency.exp",
                    aggregation=ExponentialBucketHistogramAggregation())],
    )
    metrics.set_meter_provider(provider)
    configure(service, layout=layout, file_dir=out, metrics=True)
    weights = {}
    for name in models:  # each model's weights (every page touched), under its scope
        with model(name, version="1").loading():
            weights[name] = bytearray(b"\\x01") * (load_mb[name] << 20)
    meter = metrics.get_meter("demo")
    latency = meter.create_histogram("demo.latency", unit="ms")
    exp_latency = meter.create_histogram("demo.latency.exp", unit="ms")
    queue = meter.create_gauge("demo.queue")
    tracer = trace.get_tracer("demo")

    def spin(n):
        x = 0
        for i in range(n):
            x += i * i
        return x

    end, i = time.monotonic() + 1.2, 0
    while time.monotonic() < end:
        name = models[i % len(models)]
        with tracer.start_as_current_span(f"POST /{name}", kind=SpanKind.SERVER,
                                          attributes={"http.route": f"/{name}"}):
            started = time.perf_counter()
            with model(name, version="1"):
                spin(20_000 if name == "fraud" else 40_000)
            ms = (time.perf_counter() - started) * 1e3
            latency.record(ms, {"ml.model.name": name})
            exp_latency.record(ms, {"ml.model.name": name})
            queue.set(i % 3, {"ml.model.name": name})
        i += 1
    shutdown()
    provider.shutdown()
    """
)


def make_runs(out: Path) -> list[Path]:
    """The monolith and per-model runs of ``SCENARIO`` under ``out``; their folders."""
    services = {
        "monolith": [("monolith", ",".join(MODELS))],
        "per-model": [(f"model-{m}", m) for m in MODELS],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAULTLENS_"))}
    procs, folders = [], []
    for layout, members in services.items():
        folder = out / layout
        folder.mkdir(parents=True)
        folders.append(folder)
        run = {"faultlens.run": f"{SCENARIO}/{layout}", "faultlens.scenario": SCENARIO}
        for service, models in members:
            resource = {**run, "service.instance.id": f"{service}-1"}
            child_env = {
                **env,
                "OTEL_RESOURCE_ATTRIBUTES": ",".join(f"{k}={v}" for k, v in resource.items()),
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            }
            command = [sys.executable, "-c", _CHILD, service, layout, str(folder), models,
                       json.dumps(LOAD_MB)]  # fmt: skip
            procs.append(subprocess.Popen(command, env=child_env, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    return folders
