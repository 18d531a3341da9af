"""The identity processors: stamp model identity on spans at start and on log records at emit.

Both read the identity from the context they are given (never from a global), do no I/O,
never raise into the host, and never overwrite an attribute the caller set.
"""

from __future__ import annotations

import logging

from opentelemetry.context import Context, get_value
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from faultlens.instrumentation._identity import (
    IDENTITY_KEY,
    MODEL_NAME,
    ModelIdentity,
    model,
    resolve_model,
)

_logger = logging.getLogger("faultlens.instrumentation")


class ModelIdentitySpanProcessor(SpanProcessor):
    """Stamp `ml.model.*` on every span started inside a `model(...)` scope.

    `default_model` (`"fraud"`, `"fraud@1.4.2"` or a `model(...)`) is used for spans
    started outside any scope: the right setting for a service that runs one model.
    """

    __slots__ = ("_default",)

    def __init__(self, *, default_model: str | model | ModelIdentity | None = None) -> None:
        self._default = resolve_model(default_model)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            identity = get_value(IDENTITY_KEY, parent_context) or self._default
            if identity is None:
                return
            present = span.attributes
            if present:
                for key in identity.keys:  # type: ignore[union-attr]
                    if key in present:
                        _fill_gaps(span, identity, present)  # type: ignore[arg-type]
                        return
            span.set_attributes(identity.attributes)  # type: ignore[union-attr]
        except Exception:  # never break the host
            _logger.debug("faultlens: could not stamp model identity on a span", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _fill_gaps(span: Span, identity: ModelIdentity, present) -> None:
    """The caller set some identity keys: keep theirs. When they named the model, the rest
    of the scope's identity (its version) is not theirs to inherit."""
    if MODEL_NAME in present:
        return
    missing = {k: v for k, v in identity.attributes.items() if k not in present}
    if missing:
        span.set_attributes(missing)


class ModelIdentityLogProcessor(LogRecordProcessor):
    """Stamp `ml.model.*` on every log record emitted inside a `model(...)` scope.

    Register it before any exporting processor (`configure` puts it first), so the
    record is stamped before it is handed to an exporter.
    """

    def __init__(self, *, default_model: str | model | ModelIdentity | None = None) -> None:
        self._default = resolve_model(default_model)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        try:
            record = log_record.log_record
            identity = get_value(IDENTITY_KEY, record.context) or self._default
            if identity is None:
                return
            attributes = record.attributes
            if attributes is None:
                record.attributes = dict(identity.attributes)  # type: ignore[union-attr]
                return
            if MODEL_NAME in attributes:  # the caller named a model: keep theirs
                return
            for key, value in identity.attributes.items():  # type: ignore[union-attr]
                if key not in attributes:
                    attributes[key] = value  # type: ignore[index]
        except Exception:  # never break the host
            _logger.debug("faultlens: could not stamp model identity on a log", exc_info=True)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
