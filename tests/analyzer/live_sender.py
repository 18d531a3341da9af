"""A small instrumented system sending to `faultlens serve` in real time, run as its own
process by the serve tests: a gateway calling model services, every service with its own
TracerProvider (its resource) and the real OTLP exporter, HTTP or gRPC.

    python live_sender.py --protocol http|grpc --endpoint URL --prefix a --models fraud,recommend
        --seconds 35 --rate 20 [--fault-model fraud --fault-at 15 --fault-s 15]

During the fault every request through the fault model's scope ends in an error there
and at the gateway. At exit it prints one JSON line: {"acknowledged": spans the server
acknowledged, "sent": spans ended, "onset_ns": the fault's onset or null}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

RUN = "concurrent/live"


def _exporter(protocol: str, endpoint: str, acked: list[int], lock: threading.Lock) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    class Counting(OTLPSpanExporter):
        """The real exporter; counts the spans of every export the server acknowledged."""

        def export(self, spans: Any) -> SpanExportResult:
            result = super().export(spans)
            if result is SpanExportResult.SUCCESS:
                with lock:
                    acked[0] += len(spans)
            return result

    if protocol == "grpc":
        return Counting(endpoint=endpoint, insecure=True)
    return Counting(endpoint=f"{endpoint}/v1/traces")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=("http", "grpc"), required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--fault-model")
    p.add_argument("--fault-at", type=float, default=0.0)
    p.add_argument("--fault-s", type=float, default=0.0)
    p.add_argument("--delay-ms", type=int, default=500, help="the batch processor's delay")
    args = p.parse_args()

    acked, lock = [0], threading.Lock()
    providers: dict[str, TracerProvider] = {}

    def tracer(service: str) -> trace.Tracer:
        if service not in providers:
            resource = Resource.create(
                {
                    "service.name": service,
                    "service.instance.id": f"{service}-{args.prefix}",
                    "faultlens.run": RUN,
                }
            )
            tp = TracerProvider(resource=resource)
            exporter = _exporter(args.protocol, args.endpoint, acked, lock)
            tp.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=args.delay_ms))
            providers[service] = tp
        return providers[service].get_tracer("faultlens.tests.live_sender")

    models = args.models.split(",")
    gateway = f"gateway-{args.prefix}"
    start = time.monotonic()
    onset_ns: int | None = None
    sent = 0
    k = 0
    while (elapsed := time.monotonic() - start) < args.seconds:
        model = models[k % len(models)]
        fault = (
            model == args.fault_model and args.fault_at <= elapsed < args.fault_at + args.fault_s
        )
        if fault and onset_ns is None:
            onset_ns = time.time_ns()
        route = f"/{model}"
        with tracer(gateway).start_as_current_span(
            f"POST {route}", kind=SpanKind.SERVER, attributes={"http.route": route}
        ) as root:
            with tracer(f"model-{model}").start_as_current_span(
                f"predict {model}", attributes={"ml.model.name": model}
            ) as span:
                time.sleep(0.002)
                if fault:
                    span.set_status(Status(StatusCode.ERROR, "model raised"))
            if fault:
                root.set_status(Status(StatusCode.ERROR, "upstream model failed"))
        sent += 2
        k += 1
        time.sleep(max(0.0, start + k / args.rate - time.monotonic()))
    for tp in providers.values():
        tp.force_flush(60_000)
        tp.shutdown()
    print(json.dumps({"acknowledged": acked[0], "sent": sent, "onset_ns": onset_ns}), flush=True)


if __name__ == "__main__":
    main()
