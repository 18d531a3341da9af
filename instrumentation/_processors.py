"""The identity processors: stamp model identity on spans at start and on log records at emit.

Both read the identity from the context they are given (never from a global), do no I/O,
never raise into the host, and never overwrite an attribute the caller set.
"""

from __future__ import annotations

import logging

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current, get_value
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._identity import (
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

    def __init__(self, *, default_model: str | model | ModelIdentity | None = None) -> None:
        self._default = resolve_model(default_model)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            identity = (parent_context if parent_context is not None else get_current()).get(
                IDENTITY_KEY
            ) or self._default
            if identity is None:
                return
            # Fast path (benchmarks/instrumentation_overhead.py): the identity's values were
            # validated once, when the scope was made, so they go straight into the span's
            # attribute dict instead of through set_attributes' per-span re-validation.
            # Taken only for the SDK's own attribute container, within its limits and when
            # the caller set no identity key; anything else takes the public path. on_start
            # runs before the span is handed to anyone, so no other thread can touch it.
            attributes = getattr(span, "_attributes", None)
            if type(attributes) is BoundedAttributes and not attributes._immutable:
                present = attributes._dict
                for key in identity.keys:
                    if key in present:
                        break
                else:
                    maxlen = attributes.maxlen
                    limit = attributes.max_value_len
                    if (maxlen is None or len(present) + len(identity.keys) <= maxlen) and (
                        limit is None or identity.longest <= limit
                    ):
                        present.update(identity.stamp)
                        return
            self._stamp(span, identity)
        except Exception:  # never break the host
            _logger.debug("faultlens: could not stamp model identity on a span", exc_info=True)

    @staticmethod
    def _stamp(span: Span, identity: ModelIdentity) -> None:
        """The public path: `set_attributes`, which applies the span's limits itself."""
        present = span.attributes
        if present and any(key in present for key in identity.keys):
            _fill_gaps(span, identity, present)
        else:
            span.set_attributes(identity.attributes)

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
