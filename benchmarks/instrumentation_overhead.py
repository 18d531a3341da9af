"""What stamping model identity costs per span, against the SDK's own floor.

Three ways of making the same span inside a `model("fraud", version="1.4.2")` scope, timed
interleaved in one run (rounds alternate their order; medians are reported):

  stamped  the identity processor adds the two attributes at span start
  public   the same processor held to its public-API path (span.set_attributes), shown
           for what the fast path saves
  floor    the same two attributes handed to the SDK at creation:
           tracer.start_span(name, attributes={...})
  bare     a span with no attributes

Every tracer provider carries the same no-op processor, so only the stamping differs.
Small batches and many rounds keep the medians steady on a shared machine.
Target: stamped / floor <= 1.05.

    .venv/bin/python benchmarks/instrumentation_overhead.py [--spans 2000] [--rounds 61]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

from opentelemetry import trace
from opentelemetry.context import get_current
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from faultlens.instrumentation import ModelIdentitySpanProcessor, model
from faultlens.instrumentation._identity import IDENTITY_KEY

ATTRIBUTES = {"ml.model.name": "fraud", "ml.model.version": "1.4.2"}
TARGET = 1.05


class PublicPathProcessor(ModelIdentitySpanProcessor):
    """The identity processor without its fast path: always `span.set_attributes`."""

    def on_start(self, span, parent_context=None) -> None:
        identity = (parent_context or get_current()).get(IDENTITY_KEY)
        if identity is not None:
            self._stamp(span, identity)


class NoopProcessor(SpanProcessor):
    """Stands in for the exporting processor on every provider alike."""

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span) -> None:
        pass


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _batch(make: Callable[[], None], spans: int) -> float:
    """Microseconds per span for one batch."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(spans):
            make()
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / spans / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=2_000, help="spans per batch")
    parser.add_argument("--rounds", type=int, default=61, help="rounds (order alternates)")
    args = parser.parse_args()

    plain = TracerProvider()
    plain.add_span_processor(NoopProcessor())
    stamped_provider = TracerProvider()
    stamped_provider.add_span_processor(ModelIdentitySpanProcessor())
    stamped_provider.add_span_processor(NoopProcessor())
    public_provider = TracerProvider()
    public_provider.add_span_processor(PublicPathProcessor())
    public_provider.add_span_processor(NoopProcessor())
    trace.set_tracer_provider(stamped_provider)  # where the model span itself goes
    plain_tracer = plain.get_tracer("bench")
    stamped_tracer = stamped_provider.get_tracer("bench")
    public_tracer = public_provider.get_tracer("bench")

    def stamped() -> None:
        stamped_tracer.start_span("infer").end()

    def public() -> None:
        public_tracer.start_span("infer").end()

    def floor() -> None:
        plain_tracer.start_span("infer", attributes=ATTRIBUTES).end()

    def bare() -> None:
        plain_tracer.start_span("infer").end()

    variants = {"stamped": stamped, "public": public, "floor": floor, "bare": bare}
    print("faultlens instrumentation overhead: per-span cost of model identity")
    print("  ran: start_span('infer') + end() inside model('fraud', version='1.4.2'),")
    print(f"       {args.spans} spans per batch, {args.rounds} rounds, order alternating,")
    print("       one no-op span processor on every provider; medians over rounds")
    print(
        f"  machine: {_cpu()}, {os.cpu_count()} cpus, load avg "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"  python {platform.python_version()} ({platform.platform()}), "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}"
    )

    samples: dict[str, list[float]] = {name: [] for name in variants}
    with model("fraud", version="1.4.2"):
        for make in variants.values():  # warm up
            _batch(make, args.spans // 10)
        order = list(variants)
        for round_no in range(args.rounds):
            for name in order if round_no % 2 == 0 else reversed(order):
                samples[name].append(_batch(variants[name], args.spans))

    # both processors really stamped
    with model("fraud", version="1.4.2"):
        for tracer in (stamped_tracer, public_tracer):
            check = tracer.start_span("check")
            check.end()
            assert dict(check.attributes) == ATTRIBUTES, dict(check.attributes)

    median = {name: statistics.median(values) for name, values in samples.items()}
    print()
    print(f"  {'variant':<8} {'median µs/span':>15} {'min':>8} {'max':>8}")
    for name, values in samples.items():
        print(f"  {name:<8} {median[name]:>15.2f} {min(values):>8.2f} {max(values):>8.2f}")
    ratio_floor = median["stamped"] / median["floor"]
    print()
    print(f"  stamped / floor = {ratio_floor:.3f}   (target <= {TARGET})")
    print(f"  stamped / bare  = {median['stamped'] / median['bare']:.3f}")
    print(f"  public  / floor = {median['public'] / median['floor']:.3f}   (public API path)")
    print(f"  floor   / bare  = {median['floor'] / median['bare']:.3f}")
    print(f"  {'PASS' if ratio_floor <= TARGET else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
