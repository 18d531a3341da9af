"""`model` as context manager and decorator, the processors' promises, the exports."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import StatusCode

import faultlens.instrumentation as instrumentation
from faultlens.instrumentation import (
    ModelIdentityLogProcessor,
    ModelIdentitySpanProcessor,
    configure,
    model,
)
from faultlens.instrumentation._configure import _put_first

tracer = trace.get_tracer("tests.scope")
FRAUD = {"ml.model.name": "fraud", "ml.model.version": "1.4.2"}
CHURN = {"ml.model.name": "churn", "ml.model.version": "2.0.0", "ml.model.framework": "xgboost"}


def _identity(span) -> dict:
    return {k: v for k, v in span.attributes.items() if k.startswith("ml.model.")}


def _spans(telemetry, *names: str) -> list[tuple[str, dict]]:
    return [(s.name, _identity(s)) for s in telemetry.spans.get_finished_spans() if s.name in names]


def test_exports_are_exact() -> None:
    assert instrumentation.__all__ == [
        "ModelIdentityLogProcessor",
        "ModelIdentitySpanProcessor",
        "configure",
        "instrument_app",
        "model",
        "shutdown",
    ]


def test_scopes_nest_and_the_innermost_wins(telemetry) -> None:
    telemetry.spans.clear()
    with model("fraud", version="1.4.2"):
        with tracer.start_as_current_span("a"):
            pass
        with (
            model("churn", version="2.0.0", framework="xgboost"),
            tracer.start_as_current_span("b"),
        ):
            pass
        with tracer.start_as_current_span("c"):
            pass
    with tracer.start_as_current_span("d"):
        pass
    assert _spans(telemetry, "a", "b", "c", "d", "predict fraud", "predict churn") == [
        ("a", FRAUD),
        ("b", CHURN),
        ("predict churn", CHURN),
        ("c", FRAUD),
        ("predict fraud", FRAUD),
        ("d", {}),
    ]


def test_decorators_keep_the_function_and_its_result(telemetry) -> None:
    @model("fraud", version="1.4.2")
    def score(x: int) -> int:
        """Score."""
        with tracer.start_as_current_span("sync.inside"):
            return x * 2

    @model("churn", version="2.0.0", framework="xgboost")
    async def ascore(x: int) -> int:
        with tracer.start_as_current_span("async.inside"):
            await asyncio.sleep(0)
            return x * 3

    async def both() -> list[int]:
        return list(await asyncio.gather(ascore(1), asyncio.to_thread(score, 2), ascore(3)))

    telemetry.spans.clear()
    assert (score.__name__, score.__doc__) == ("score", "Score.")
    assert asyncio.run(both()) == [3, 4, 9]
    assert sorted(_spans(telemetry, "sync.inside", "async.inside"), key=str) == sorted(
        [("async.inside", CHURN), ("async.inside", CHURN), ("sync.inside", FRAUD)], key=str
    )


def test_a_shared_scope_object_is_safe_across_threads(telemetry) -> None:
    fraud = model("fraud", version="1.4.2")

    def work(i: int) -> None:
        with fraud, tracer.start_as_current_span(f"t{i}"):
            pass

    telemetry.spans.clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(16)))
    names = [f"t{i}" for i in range(16)]
    assert sorted(_spans(telemetry, *names)) == sorted((n, FRAUD) for n in names)
    assert len(_spans(telemetry, "predict fraud")) == 16


@pytest.mark.parametrize("style", ["with", "sync", "async"])
def test_exceptions_are_recorded_and_reraised_unchanged(telemetry, style: str) -> None:
    error = KeyError("missing feature")
    fraud = model("fraud", version="1.4.2")

    @fraud
    def sync_fail() -> None:
        raise error

    @fraud
    async def async_fail() -> None:
        raise error

    telemetry.spans.clear()
    with pytest.raises(KeyError) as caught:
        if style == "with":
            with fraud:
                raise error
        elif style == "sync":
            sync_fail()
        else:
            asyncio.run(async_fail())
    assert caught.value is error
    (span,) = [s for s in telemetry.spans.get_finished_spans() if s.name == "predict fraud"]
    assert (span.status.status_code, span.status.description) == (
        StatusCode.ERROR,
        "KeyError: 'missing feature'",
    )
    assert [(e.name, e.attributes["exception.type"]) for e in span.events] == [
        ("exception", "KeyError")
    ]


def test_caller_set_attributes_are_never_overwritten(telemetry) -> None:
    telemetry.spans.clear()
    with model("fraud", version="1.4.2"):
        tracer.start_span("named", attributes={"ml.model.name": "custom"}).end()
        tracer.start_span("framework", attributes={"ml.model.framework": "onnx"}).end()
    assert _spans(telemetry, "named", "framework") == [
        ("named", {"ml.model.name": "custom"}),
        ("framework", {**FRAUD, "ml.model.framework": "onnx"}),
    ]


def test_a_default_model_tags_spans_outside_any_scope(telemetry) -> None:
    processor = ModelIdentitySpanProcessor(default_model="fraud@1.4.2")
    span = trace.get_tracer_provider().get_tracer("t").start_span("bare")  # type: ignore[attr-defined]
    processor.on_start(span, parent_context=None)
    span.end()
    assert _identity(span) == FRAUD
    with model("churn", version="2.0.0", framework="xgboost"):
        inner = tracer.start_span("inner")
        processor.on_start(inner, parent_context=None)
        inner.end()
    assert _identity(inner) == CHURN


def test_processors_never_raise_into_the_host() -> None:
    class Hostile:
        @property
        def attributes(self):
            raise RuntimeError("boom")

        log_record = property(attributes.fget)

    with model("fraud"):
        ModelIdentitySpanProcessor().on_start(Hostile(), parent_context=None)  # type: ignore[arg-type]
        ModelIdentityLogProcessor().on_emit(Hostile())  # type: ignore[arg-type]


def test_the_log_processor_stamps_before_exporting_processors_see_the_record() -> None:
    seen: list[dict] = []

    class Snapshot(LogRecordProcessor):
        def on_emit(self, log_record) -> None:
            seen.append(dict(log_record.log_record.attributes or {}))

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(Snapshot())  # registered first, as a platform would
    _put_first(provider, ModelIdentityLogProcessor())
    with model("fraud", version="1.4.2"):
        provider.get_logger("t").emit(body="scored", attributes={"k": "v"})
    assert seen == [{"k": "v", **FRAUD}]


def test_python_logging_outside_a_scope_is_not_tagged(telemetry) -> None:
    telemetry.logs.clear()
    ctx = contextvars.copy_context()
    with model("fraud", version="1.4.2"):
        logging.getLogger("tests.scope").warning("inside")
        ctx.run(logging.getLogger("tests.scope").warning, "copied before the scope")
    tagged = [
        (str(r.log_record.body), r.log_record.attributes.get("ml.model.name"))
        for r in telemetry.logs.get_finished_logs()
    ]
    assert tagged == [("inside", "fraud"), ("copied before the scope", None)]


def test_a_second_configure_warns_and_returns(telemetry) -> None:
    before = trace.get_tracer_provider()
    with pytest.warns(RuntimeWarning, match="already configured"):
        configure("another")
    assert trace.get_tracer_provider() is before


def test_span_limits_apply_to_the_identity_as_to_any_attribute() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=3))
    provider.add_span_processor(ModelIdentitySpanProcessor())
    with model("fraud", version="1.4.2"):
        span = provider.get_tracer("t").start_span("limited")
        span.end()
    assert _identity(span) == {"ml.model.name": "fra", "ml.model.version": "1.4"}


def test_a_span_of_another_sdk_is_stamped_through_the_public_api() -> None:
    class OtherSpan:
        def __init__(self) -> None:
            self.attributes: dict[str, str] = {"ml.model.framework": "onnx"}

        def set_attributes(self, attributes) -> None:
            self.attributes.update(attributes)

    span = OtherSpan()
    with model("fraud", version="1.4.2"):
        ModelIdentitySpanProcessor().on_start(span, parent_context=None)  # type: ignore[arg-type]
    assert span.attributes == {**FRAUD, "ml.model.framework": "onnx"}
