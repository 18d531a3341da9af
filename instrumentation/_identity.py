"""Model identity: the value kept in the OpenTelemetry context, and the `model` scope.

The identity lives in the OTel context (a contextvar), so it follows asyncio tasks,
`asyncio.to_thread` and `contextvars.copy_context().run`, and the processors read it
from the `parent_context` of every span and the context of every log record.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _cpu, _memory

MODEL_NAME = "ml.model.name"
MODEL_VERSION = "ml.model.version"
MODEL_FRAMEWORK = "ml.model.framework"
MODEL_FRAMEWORK_VERSION = "ml.model.framework.version"
REQUEST_MODELS = "faultlens.models"

# Keys into the OTel context: the innermost identity, and the per-request set of model
# names that the FastAPI middleware opened (None outside a request).
IDENTITY_KEY = otel_context.create_key("faultlens.model_identity")
REQUEST_MODELS_KEY = otel_context.create_key("faultlens.request_models")

_F = TypeVar("_F", bound=Callable[..., Any])

_tracer = trace.get_tracer("faultlens.instrumentation")


class ModelIdentity:
    """Who a span belongs to. Built once per scope; the attribute dict is prebuilt so the
    processors stamp a span with one call and no allocation."""

    __slots__ = (
        "name",
        "version",
        "framework",
        "framework_version",
        "attributes",
        "keys",
        "stamp",
        "longest",
    )

    def __init__(
        self,
        name: str,
        *,
        version: str | None = None,
        framework: str | None = None,
        framework_version: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"model name must be a non-empty string, got {name!r}")
        self.name = name
        self.version = version
        self.framework = framework
        self.framework_version = framework_version
        pairs = (
            (MODEL_NAME, name),
            (MODEL_VERSION, version),
            (MODEL_FRAMEWORK, framework),
            (MODEL_FRAMEWORK_VERSION, framework_version),
        )
        attributes = {key: str(value) for key, value in pairs if value is not None}
        self.attributes: Mapping[str, str] = MappingProxyType(attributes)
        self.keys: tuple[str, ...] = tuple(attributes)
        # for the span processor's fast path: a plain dict (never mutated) and the longest
        # value, checked against the span's attribute value limit
        self.stamp: dict[str, str] = attributes
        self.longest = max(len(value) for value in attributes.values())

    @classmethod
    def parse(cls, text: str) -> ModelIdentity:
        """`name` or `name@version` (the form of FAULTLENS_DEFAULT_MODEL)."""
        name, _, version = text.strip().partition("@")
        return cls(name.strip(), version=version.strip() or None)

    def __repr__(self) -> str:
        return f"ModelIdentity({dict(self.attributes)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelIdentity) and self.attributes == other.attributes

    def __hash__(self) -> int:
        return hash(tuple(self.attributes.items()))


def current_identity() -> ModelIdentity | None:
    """The innermost model identity in the current context, if any."""
    return otel_context.get_value(IDENTITY_KEY)  # type: ignore[return-value]


class model:  # noqa: N801 - used like a function: `with model("fraud"):`, `@model("fraud")`
    """Run code as model `name`: a context manager and a decorator (sync and async).

    Opens an INTERNAL span `predict {name}` carrying the identity, and puts the identity
    into the OTel context so every span and log record started inside carries it too.
    Scopes nest; the innermost wins. An exception escaping the scope is recorded on the
    model span, sets status ERROR and is re-raised unchanged. Inputs and outputs of the
    model are never recorded.
    """

    __slots__ = ("identity",)

    def __init__(
        self,
        name: str,
        *,
        version: str | None = None,
        framework: str | None = None,
        framework_version: str | None = None,
    ) -> None:
        self.identity = ModelIdentity(
            name, version=version, framework=framework, framework_version=framework_version
        )

    def __repr__(self) -> str:
        return f"model({self.identity.name!r}, version={self.identity.version!r})"

    def __enter__(self) -> trace.Span:
        identity = self.identity
        ctx = otel_context.set_value(IDENTITY_KEY, identity)
        seen = otel_context.get_value(REQUEST_MODELS_KEY, ctx)
        if seen is not None:
            seen.add(identity.name)  # type: ignore[attr-defined]
        span = _tracer.start_span(
            f"predict {identity.name}",
            context=ctx,
            kind=SpanKind.INTERNAL,
            attributes=identity.attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        token = otel_context.attach(trace.set_span_in_context(span, ctx))
        clock = _cpu.Clock() if _cpu.recording() else None
        _cpu.open_scopes.set((*_cpu.open_scopes.get(), (span, token, clock)))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scopes = _cpu.open_scopes.get()
        if not scopes:  # exited more often than entered: nothing of ours to close
            return
        span, token, clock = scopes[-1]
        _cpu.open_scopes.set(scopes[:-1])
        if clock is not None:
            _cpu.record(self.identity.stamp, clock, scopes[:-1])
        try:
            if exc is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.end()
        finally:
            otel_context.detach(token)
        # returning None re-raises the exception unchanged

    async def __aenter__(self) -> trace.Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def loading(self) -> _Loading:
        """A scope for loading this model: ``with model("fraud").loading(): ...``.

        Spans and logs inside carry the identity; with ``configure(metrics=True)`` the
        growth of the process's resident memory from entry to exit is recorded on the
        gauge ``faultlens.model.load.memory_growth`` (``_memory.py`` says what it
        includes). It opens no span of its own and counts no CPU as the model's."""
        return _Loading(self.identity)

    def __call__(self, func: _F) -> _F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]


def resolve_model(value: str | model | ModelIdentity | None) -> ModelIdentity | None:
    """Accept `"fraud"`, `"fraud@1.4.2"`, a `model(...)` or an identity."""
    if value is None or isinstance(value, ModelIdentity):
        return value
    if isinstance(value, model):
        return value.identity
    if isinstance(value, str):
        return ModelIdentity.parse(value) if value.strip() else None
    raise TypeError(f"default_model must be a str or model(...), got {type(value).__name__}")


class _Loading:
    """``model(...).loading()``: the identity in context (logs and spans inside carry it)
    and the resident memory growth from entry to exit, on the load gauge. No span: a load
    is no request, and a root span of its own would read as one."""

    __slots__ = ("before", "identity", "token")

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity

    def __enter__(self) -> None:
        self.token = otel_context.attach(otel_context.set_value(IDENTITY_KEY, self.identity))
        self.before = _memory.rss_bytes() if _memory.recording() else None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:  # a load that failed loaded nothing to count
                _memory.record_load(self.identity.stamp, self.before)
        finally:
            otel_context.detach(self.token)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
