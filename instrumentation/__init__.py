"""faultlens.instrumentation: model identity on every span and log record.

Every span and log record produced while a model runs carries ``ml.model.name``,
``ml.model.version``, ``ml.model.framework`` and ``ml.model.framework.version``, so
that even a server running many models in one process can be debugged model by model.
Only OpenTelemetry is imported. No model input or output is ever recorded.

Usage
-----

.. code:: python

    import logging

    from faultlens.instrumentation import configure, model, shutdown

    configure("scoring", layout="monolith", file_dir="telemetry")

    @model("fraud", version="1.4.2", framework="sklearn", framework_version="1.6.1")
    def score_fraud(features: list[float]) -> float:
        logging.getLogger("scoring").warning("low confidence")  # tagged ml.model.name=fraud
        return sum(features) / len(features)

    with model("churn", version="2.0.0"):  # a context manager as well as a decorator
        churn = 0.1

    score_fraud([0.2, 0.4])
    shutdown()  # flush on exit

For FastAPI call ``instrument_app(app)`` after ``configure``. Without code changes,
run the service under ``opentelemetry-instrument``: the ``opentelemetry_pre_instrument``
entry point ``faultlens`` adds the identity processors to the providers in place (or
configures them from the ``OTEL_*`` variables).

model(name, *, version, framework, framework_version)
-----------------------------------------------------
Opens an INTERNAL span ``predict {name}`` and puts the identity into the OTel context:
every span and log record started inside carries it, however deep, including spans of
other instrumentations (httpx, databases). Works as ``with``, ``async with`` and as a
decorator of sync and async functions. Scopes nest; the innermost wins. An exception
escaping the scope is recorded on the model span, sets status ERROR and is re-raised
unchanged.

model(...).loading()
--------------------
``with model("fraud", version="1.4.2").loading(): weights = load()`` loads a model under
its identity (logs inside carry it) and, with metrics on, records how much the process's
resident memory grew meanwhile on the gauge ``faultlens.model.load.memory_growth``
(bytes, with ``ml.model.*``). Memory cannot be split by model inside one heap; this
load-time growth is the per-model estimate the cost analysis shows beside the process's
measured footprint.

Threads
-------
The identity is a contextvar. ``asyncio`` tasks and ``asyncio.to_thread`` copy the
context, and so does Starlette's thread pool for sync endpoints: the identity follows.
``loop.run_in_executor`` and ``ThreadPoolExecutor.submit`` do not copy it: the work runs
without identity unless you hand the context over yourself::

    ctx = contextvars.copy_context()
    pool.submit(ctx.run, predict, features)

instrument_app(app, *, default_model, **fastapi_options)
-------------------------------------------------------
Instruments a FastAPI app with opentelemetry-instrumentation-fastapi unless that is
done already, and httpx clients so outgoing calls carry W3C trace context. Each server
span gets ``faultlens.models``: the sorted names of the models that ran under the
request (set just before the last response chunk is sent; models run by background
tasks after the response are not counted). ``default_model`` tags that app's requests.
Other keywords go to ``FastAPIInstrumentor.instrument_app``, e.g.
``exclude_spans=["receive", "send"]`` drops the ASGI send/receive spans.

ModelIdentitySpanProcessor, ModelIdentityLogProcessor
-----------------------------------------------------
The SDK processors that do the stamping, for a setup you build yourself:
``provider.add_span_processor(ModelIdentitySpanProcessor())``. They read the identity
from the context given at span start and log emit, never overwrite attributes the
caller set, never raise and do no I/O. Put the log processor before exporting ones.

service_name — ``OTEL_SERVICE_NAME``
    The resource's ``service.name``. ``OTEL_RESOURCE_ATTRIBUTES`` is merged as well; a
    ``service.instance.id`` is generated per process start unless given there.

layout — ``FAULTLENS_LAYOUT``
    ``monolith`` or ``per-model``, written to the resource as ``faultlens.layout``.

default_model — ``FAULTLENS_DEFAULT_MODEL``
    ``"fraud"``, ``"fraud@1.4.2"`` or a ``model(...)``: the identity of spans and logs
    outside any scope, for a service that runs one model. ``instrument_app`` takes one
    too, applied to that app's requests only.

service_version — ``OTEL_RESOURCE_ATTRIBUTES=service.version=...``
    The resource's ``service.version``.

endpoint — ``OTEL_EXPORTER_OTLP_ENDPOINT``
    Base URL of the OTLP/HTTP receiver (default ``http://localhost:4318``), e.g.
    ``faultlens collect``. ``/v1/traces``, ``/v1/logs`` and ``/v1/metrics`` are appended.

exporter — ``OTEL_TRACES_EXPORTER``, ``OTEL_LOGS_EXPORTER``, ``OTEL_METRICS_EXPORTER``
    Comma-separated: ``otlp`` (OTLP/HTTP protobuf, the default), ``otlp_json_file``,
    ``console``, ``none``. The argument applies to every signal.

file_dir — ``FAULTLENS_FILE_DIR``
    Where ``otlp_json_file`` writes OTLP JSON Lines: ``traces-{service}-{pid}.jsonl``,
    ``logs-{service}-{pid}.jsonl`` and ``metrics-{service}-{pid}.jsonl`` (one file per
    process). Giving it makes ``otlp_json_file`` the default exporter.

log_level — ``FAULTLENS_LOG_LEVEL``
    Python ``logging`` records reach the logger provider through a handler on the root
    logger, with trace context and identity; this sets the root logger's level.

metrics — ``FAULTLENS_METRICS=1``
    Also export metrics (every ``OTEL_METRIC_EXPORT_INTERVAL`` ms, default 60000, and at
    ``shutdown``): the process's CPU time and memory from OpenTelemetry's system-metrics
    instrumentation (the ``faultlens[metrics]`` extra), and ``faultlens.model.cpu.time``,
    the thread CPU time spent inside each ``model`` scope with the model's ``ml.model.*``
    attributes, so a monolith's CPU splits by model. It does not see threads a library
    starts itself (BLAS, torch, tokenizers) nor GIL waits, and in an ``async`` scope that
    awaits it includes what the event loop ran meanwhile (``_metrics.py`` says more).
    ``faultlens.model.load.memory_growth`` (a gauge, bytes) holds each
    ``model(...).loading()`` scope's resident memory growth.

Existing providers and repeated calls
-------------------------------------
When a tracer provider already exists (a platform, ``opentelemetry-instrument``),
``configure`` adds the processors to it and keeps its resource and exporters. A second
``configure`` warns and returns; after the zero-code hook it only sets ``default_model``.
``shutdown()`` flushes, and closes the providers ``configure`` created.
"""

from ._configure import configure, shutdown
from ._fastapi import instrument_app
from ._identity import model
from ._processors import (
    ModelIdentityLogProcessor,
    ModelIdentitySpanProcessor,
)

__all__ = [
    "ModelIdentityLogProcessor",
    "ModelIdentitySpanProcessor",
    "configure",
    "instrument_app",
    "model",
    "shutdown",
]
