"""Metrics (``configure(metrics=True)``): what the process uses, and what each model uses.

- Process metrics, from OpenTelemetry's system-metrics instrumentation
  (opentelemetry-instrumentation-system-metrics, the ``faultlens[metrics]`` extra):
  ``process.cpu.time`` (s, by ``cpu.mode``), ``process.memory.usage`` (resident bytes),
  ``process.memory.virtual`` and ``process.thread.count``.
- ``faultlens.model.cpu.time`` (s, a counter with the model's ``ml.model.*``
  attributes): the thread CPU time (``time.thread_time``) between entering and leaving
  each ``model`` scope, minus what nested scopes recorded themselves. It is measured,
  not estimated, so a monolith's CPU splits by model.

What the per-model figure cannot see:

- threads the model's library starts itself (BLAS/OpenMP pools, torch intra-op
  threads, a tokenizer's Rust threads): their CPU is in ``process.cpu.time`` but in no
  model's share;
- time spent waiting for the GIL: waiting costs no CPU of this thread, so it is not
  counted (it is latency, not CPU);
- in an ``async`` scope that awaits, the clock runs only during the steps of the task
  holding the scope (and of tasks it starts), not while the event loop runs other
  requests' steps (``_cpu.py``); on a loop that is not asyncio's own (uvloop) it runs
  for everything the thread did meanwhile, an upper bound;
- a scope left on another thread than it was entered on records nothing.

Memory cannot be split inside one heap: ``process.memory.usage`` is the process's
footprint; a model's own memory is estimated by the growth of that footprint while it
loads, when the service loads it under ``model(...).loading()``:
``faultlens.model.load.memory_growth`` (bytes, a gauge with the model's ``ml.model.*``
attributes; ``_memory.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from ._cpu import set_cpu_counter
from ._memory import LOAD_METRIC, set_load_gauge

__all__ = ["CPU_METRIC", "PROCESS_METRICS", "start_metrics", "stop_metrics"]

_logger = logging.getLogger("faultlens.instrumentation")

CPU_METRIC = "faultlens.model.cpu.time"
# The system-metrics instrumentation's process metrics faultlens' cost analysis reads.
PROCESS_METRICS: dict[str, list[str] | None] = {
    "process.cpu.time": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
}


def start_metrics(resource: Resource, exporters: list[Any]) -> MeterProvider | Any:
    """The meter provider (the global one when an SDK one is set already, else a new one
    exporting through ``exporters``), with the process metrics and the per-model CPU
    counter registered on it."""
    found = metrics.get_meter_provider()
    if isinstance(found, MeterProvider):
        provider = found
    else:
        readers: list[MetricReader] = [PeriodicExportingMetricReader(e) for e in exporters]
        provider = MeterProvider(resource=resource, metric_readers=readers)
        metrics.set_meter_provider(provider)
    meter = provider.get_meter("faultlens.instrumentation")
    set_cpu_counter(
        meter.create_counter(
            CPU_METRIC,
            unit="s",
            description="Thread CPU time spent inside model scopes (nested scopes excluded)",
        )
    )
    set_load_gauge(
        meter.create_gauge(
            LOAD_METRIC,
            unit="By",
            description="Resident memory growth of the process while the model loaded "
            "(model(...).loading())",
        )
    )
    try:
        from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    except ImportError:
        _logger.warning(
            "faultlens: process metrics need opentelemetry-instrumentation-system-metrics "
            "(pip install 'faultlens[metrics]'); only %s is recorded",
            CPU_METRIC,
        )
        return provider
    instrumentor = SystemMetricsInstrumentor(config=dict(PROCESS_METRICS))
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(meter_provider=provider)
    return provider


def stop_metrics(provider: Any, *, owned: bool, timeout_millis: int) -> None:
    """Stop recording scopes; flush (and close, when ``owned``) the meter provider."""
    set_cpu_counter(None)
    set_load_gauge(None)
    if provider is None:
        return
    try:
        from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    except ImportError:
        pass
    else:
        instrumentor = SystemMetricsInstrumentor()
        if owned and instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()  # its callbacks hold the provider being closed
    provider.force_flush(timeout_millis)
    if owned:
        provider.shutdown()
