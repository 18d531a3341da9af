"""`configure` and `shutdown`: providers, identity processors, exporters, `logging` bridge."""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from ._identity import ModelIdentity, model, resolve_model
from ._metrics import start_metrics, stop_metrics
from ._processors import (
    ModelIdentityLogProcessor,
    ModelIdentitySpanProcessor,
)

_logger = logging.getLogger("faultlens.instrumentation")

LAYOUTS = ("monolith", "per-model")
_DEFAULT_EXPORTER = "otlp"
_FILE_EXPORTER = "otlp_json_file"


@dataclass
class _State:
    tracer_provider: trace.TracerProvider
    logger_provider: object
    owned: bool  # providers created here (shut down by `shutdown`) or found in place
    implicit: bool  # set up by the zero-code hook, from the environment only
    span_processor: ModelIdentitySpanProcessor
    log_processor: ModelIdentityLogProcessor | None
    default: ModelIdentity | None
    handler: logging.Handler | None = None
    closed: bool = field(default=False)
    meter_provider: object | None = None  # configure(metrics=True)


_state: _State | None = None
_lock = threading.Lock()


def export_metrics_now() -> None:
    """Export the metrics `configure(metrics=True)` records now, off the caller's thread:
    when a service is ready, its start-up (CPU, each model's load-time growth) is out
    before a crash a moment later could lose it with the rest of the export interval."""
    state = _state
    if state is not None and state.meter_provider is not None:
        flush = getattr(state.meter_provider, "force_flush", None)
        if flush is not None:
            threading.Thread(target=flush, name="faultlens-metrics-ready", daemon=True).start()


def configured_default() -> ModelIdentity | None:
    """The `default_model` of the active configuration (read by `instrument_app`)."""
    return _state.default if _state is not None else None


def configure(
    service_name: str | None = None,
    *,
    layout: str | None = None,
    default_model: str | model | None = None,
    service_version: str | None = None,
    endpoint: str | None = None,
    exporter: str | None = None,
    file_dir: str | os.PathLike[str] | None = None,
    log_level: int | str | None = None,
    metrics: bool | None = None,
) -> None:
    """Set up tracing and logging with model identity; see the package docstring."""
    _configure(
        service_name,
        layout=layout,
        default_model=default_model,
        service_version=service_version,
        endpoint=endpoint,
        exporter=exporter,
        file_dir=file_dir,
        log_level=log_level,
        implicit=False,
        metrics=metrics,
    )


def _configure(
    service_name: str | None,
    *,
    layout: str | None,
    default_model: str | model | None,
    service_version: str | None,
    endpoint: str | None,
    exporter: str | None,
    file_dir: str | os.PathLike[str] | None,
    log_level: int | str | None,
    implicit: bool,
    metrics: bool | None = None,
) -> None:
    global _state
    with _lock:
        if _state is not None:
            _configure_again(_state, default_model=default_model, implicit=implicit)
            return
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        layout = layout or _env_layout()
        default = resolve_model(default_model or os.environ.get("FAULTLENS_DEFAULT_MODEL"))
        file_dir = file_dir or os.environ.get("FAULTLENS_FILE_DIR") or None
        log_level = log_level or os.environ.get("FAULTLENS_LOG_LEVEL") or None

        span_processor = ModelIdentitySpanProcessor(default_model=default)
        log_processor = ModelIdentityLogProcessor(default_model=default)
        found = trace.get_tracer_provider()
        if isinstance(found, TracerProvider):  # a platform or opentelemetry-instrument set it
            found.add_span_processor(span_processor)
            logger_provider = _logs.get_logger_provider()
            if isinstance(logger_provider, LoggerProvider):
                _put_first(logger_provider, log_processor)
            else:
                log_processor = None
                logger_provider = None
            if service_name or layout or service_version:
                _logger.info(
                    "faultlens: a tracer provider already exists; its resource is kept "
                    "(set service.name and faultlens.layout through OTEL_RESOURCE_ATTRIBUTES)"
                )
            _state = _State(found, logger_provider, False, implicit, span_processor,
                            log_processor, default)  # fmt: skip
        else:
            resource = _resource(service_name, layout=layout, service_version=service_version)
            name = str(resource.attributes.get("service.name", "unknown_service"))
            tracer_provider = TracerProvider(resource=resource)
            tracer_provider.add_span_processor(span_processor)
            logger_provider = LoggerProvider(resource=resource)
            logger_provider.add_log_record_processor(log_processor)
            for span_exporter in _exporters("traces", exporter, endpoint, file_dir, name):
                tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))  # type: ignore[arg-type]
            for log_exporter in _exporters("logs", exporter, endpoint, file_dir, name):
                logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))  # type: ignore[arg-type]
            trace.set_tracer_provider(tracer_provider)
            _logs.set_logger_provider(logger_provider)
            _state = _State(tracer_provider, logger_provider, True, implicit, span_processor,
                            log_processor, default)  # fmt: skip
        if _state.logger_provider is not None:
            _state.handler = _bridge_logging(_state.logger_provider, log_level)
        if metrics if metrics is not None else _env_flag("FAULTLENS_METRICS"):
            resource = getattr(_state.tracer_provider, "resource", None) or _resource(
                service_name, layout=layout, service_version=service_version
            )
            name = str(resource.attributes.get("service.name", "unknown_service"))
            _state.meter_provider = start_metrics(
                resource, _exporters("metrics", exporter, endpoint, file_dir, name)
            )


def _configure_again(state: _State, *, default_model: str | model | None, implicit: bool) -> None:
    if state.implicit and not implicit and default_model is not None:
        # opentelemetry-instrument configured first; the app's own call still names its model
        identity = resolve_model(default_model)
        state.default = identity
        state.span_processor._default = identity
        if state.log_processor is not None:
            state.log_processor._default = identity
        return
    if not implicit:
        warnings.warn(
            "faultlens.instrumentation is already configured (by configure() or "
            "opentelemetry-instrument); this configure() call is ignored",
            RuntimeWarning,
            stacklevel=4,
        )


def shutdown(*, timeout_millis: int = 10_000) -> None:
    """Flush what was recorded; close the providers `configure` created. Safe to call twice.

    Call it on process exit (a SIGTERM handler, a FastAPI lifespan end): batch exporters
    hold the last few seconds of spans and logs in memory.
    """
    with _lock:
        state = _state
        if state is None or state.closed:
            return
        state.closed = True
    if state.handler is not None:
        logging.getLogger().removeHandler(state.handler)
    try:
        stop_metrics(state.meter_provider, owned=state.owned, timeout_millis=timeout_millis)
    except Exception:  # never break the host on the way out
        _logger.warning("faultlens: flushing metrics failed", exc_info=True)
    for provider in (state.tracer_provider, state.logger_provider):
        if provider is None:
            continue
        try:
            provider.force_flush(timeout_millis)  # type: ignore[attr-defined]
            if state.owned:
                provider.shutdown()  # type: ignore[attr-defined]
        except Exception:  # never break the host on the way out
            _logger.warning("faultlens: flushing telemetry failed", exc_info=True)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_layout() -> str | None:
    value = os.environ.get("FAULTLENS_LAYOUT", "").strip()
    if value and value not in LAYOUTS:
        _logger.warning("faultlens: FAULTLENS_LAYOUT=%r is not one of %s; ignored", value, LAYOUTS)
        return None
    return value or None


def _resource(service_name: str | None, *, layout: str | None, service_version: str | None):
    attributes: dict[str, str] = {}
    if service_name:
        attributes["service.name"] = service_name
    if service_version:
        attributes["service.version"] = service_version
    if layout:
        attributes["faultlens.layout"] = layout
    resource = Resource.create(attributes)  # merges OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    if "service.instance.id" not in resource.attributes:
        # a new id per process start is what shows that a model update restarted others
        resource = resource.merge(Resource({"service.instance.id": str(uuid.uuid4())}))
    return resource


def _exporters(
    signal: str,
    exporter: str | None,
    endpoint: str | None,
    file_dir: str | os.PathLike[str] | None,
    service_name: str,
) -> list[SpanExporter | LogRecordExporter]:
    env = f"OTEL_{signal.upper()}_EXPORTER"
    chosen = exporter or os.environ.get(env) or (_FILE_EXPORTER if file_dir else _DEFAULT_EXPORTER)
    found: list[SpanExporter | LogRecordExporter] = []
    for name in (part.strip() for part in chosen.split(",")):
        if name in ("", "none"):
            continue
        if name in ("otlp", "otlp_proto_http"):
            found.append(_otlp_exporter(signal, endpoint))
        elif name == _FILE_EXPORTER:
            found.append(_file_exporter(signal, file_dir, service_name))
        elif name == "console":
            found.append(_console_exporter(signal))
        else:
            _logger.warning("faultlens: unknown %s exporter %r in %s; skipped", signal, name, env)
    return found


def _otlp_exporter(signal: str, endpoint: str | None) -> SpanExporter | LogRecordExporter:
    url = f"{endpoint.rstrip('/')}/v1/{signal}" if endpoint else None
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=url)
    if signal == "metrics":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=url)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=url)


def _file_exporter(
    signal: str, file_dir: str | os.PathLike[str] | None, service_name: str
) -> SpanExporter | LogRecordExporter:
    # One file per process and signal: several processes appending to one file could
    # interleave their lines.
    directory = Path(file_dir or ".")
    directory.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", service_name)
    path = directory / f"{signal}-{stem}-{os.getpid()}.jsonl"
    if signal == "traces":
        from opentelemetry.exporter.otlp.json.file import FileSpanExporter

        return FileSpanExporter(path)
    if signal == "metrics":
        from opentelemetry.exporter.otlp.json.file.metric_exporter import FileMetricExporter

        return FileMetricExporter(path)
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter

    return FileLogExporter(path)


def _console_exporter(signal: str) -> SpanExporter | LogRecordExporter:
    if signal == "traces":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if signal == "metrics":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

    return ConsoleLogRecordExporter()


def _put_first(provider: LoggerProvider, processor: LogRecordProcessor) -> None:
    """Stamp before any exporting processor already registered sees the record."""
    multi = getattr(provider, "_multi_log_record_processor", None)
    processors = getattr(multi, "_log_record_processors", None)
    lock = getattr(multi, "_lock", None)
    if isinstance(processors, tuple) and lock is not None:
        with lock:
            multi._log_record_processors = (processor, *multi._log_record_processors)  # type: ignore[union-attr]
        return
    # an SDK whose internals moved: appending still stamps records exported later (batch)
    _logger.info("faultlens: log processor appended, not put first, on this SDK")
    provider.add_log_record_processor(processor)


class _NotOurOwnLogs(logging.Filter):
    """The exporters' own warnings must not feed back into the exporters."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("opentelemetry")


def _bridge_logging(logger_provider: object, log_level: int | str | None) -> logging.Handler | None:
    root = logging.getLogger()
    if any(type(h).__name__ == "LoggingHandler" for h in root.handlers):
        return None  # opentelemetry-instrument's logging bridge is already in place
    with warnings.catch_warnings():
        # The SDK handler is deprecated in favour of opentelemetry-instrumentation-logging,
        # which is not a dependency here; the SDK one does the same job.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.NOTSET, logger_provider=logger_provider)  # type: ignore[arg-type]
    handler.addFilter(_NotOurOwnLogs())
    if log_level is not None:
        level = log_level if isinstance(log_level, int) else logging.getLevelName(log_level.upper())
        if isinstance(level, int):
            root.setLevel(level)
        else:
            _logger.warning("faultlens: log level %r is not a logging level; ignored", log_level)
    root.addHandler(handler)
    return handler
