"""The vectorized JSON Lines path gives exactly the Python decoder's rows, or declines."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from opentelemetry.exporter.otlp.json.file.trace_exporter import FileSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from faultlens.analyzer.decode._fast import decode_traces_fast
from faultlens.analyzer.decode._files import chunks
from faultlens.analyzer.decode._otlp_json import Decoded, decode_json_lines

SAMPLES = sorted(Path(__file__).parents[2].glob("sample_traces/data/*/*/traces.jsonl.gz"))


def _values(table: pa.Table) -> pa.Table:
    """The table with dictionary columns spelled out: how a column is dictionary-encoded
    (one entry per scope, or per distinct scope) is not part of the stored values."""
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = pa.chunked_array(
                [c.dictionary.take(c.indices) for c in column.chunks], column.type.value_type
            )
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _same_rows(fast: pa.Table, python: pa.Table) -> bool:
    return fast.schema == python.schema and _values(fast).equals(_values(python))


def _python_path(data: bytes):
    out = Decoded()
    decode_json_lines(data, "f", 1, out)
    return out.traces.to_arrow(), out.traces.read, out.rejects + out.traces.rejects


def _sdk_lines() -> bytes:
    """Spans of every shape the SDK makes, written by the real OTLP JSON file exporter."""
    stream = io.StringIO()
    resource = Resource.create({"service.name": "monolith", "faultlens.layout": "monolith"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(stream=stream)))
    tracer = provider.get_tracer("t", "1.0")
    for kind in SpanKind:
        with tracer.start_as_current_span(
            "POST /predict", kind=kind, attributes={"http.route": "/predict", "n": 3}
        ) as parent:
            parent.add_event("start", {"attempt": 2, "ok": True, "ratio": 0.25})
            attrs = {
                "gen_ai.request.model": "gpt",
                "gen_ai.response.model": "gpt-2024",
                "tags": ["a", "b"],
                "flags": [True, False],
                "big": 1e22,
                "small": 1.5e-7,
            }
            with tracer.start_as_current_span(
                "fraud.predict", attributes=attrs, links=[Link(parent.get_span_context())]
            ) as child:
                child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return stream.getvalue().encode()


@pytest.mark.parametrize("path", SAMPLES[:4], ids=lambda p: "/".join(p.parts[-3:-1]))
def test_committed_samples_take_the_fast_path_with_identical_rows(path: Path) -> None:
    for chunk in chunks(path):
        fast = decode_traces_fast(chunk.data)
        assert fast is not None
        table, read, rejects = _python_path(chunk.data)
        assert (fast[1], []) == (read, rejects)
        assert _same_rows(fast[0], table)


def test_sdk_file_exporter_output_identical_rows() -> None:
    data = _sdk_lines()
    fast = decode_traces_fast(data)
    assert fast is not None
    table, read, _ = _python_path(data)
    assert fast[1] == read == 2 * len(SpanKind)
    assert _same_rows(fast[0], table)
    # upper-case ids are lower-cased alike
    line = orjson.loads(data.split(b"\n")[0])
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["traceId"] = span["traceId"].upper()
    upper = orjson.dumps(line) + b"\n"
    fast = decode_traces_fast(upper)
    assert fast is not None and _same_rows(fast[0], _python_path(upper)[0])


def _one(span: dict, **top) -> bytes:
    doc = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}], **top}
    return orjson.dumps(doc) + b"\n"


GOOD = {"traceId": "a" * 32, "spanId": "b" * 16, "startTimeUnixNano": "5", "name": "x"}


@pytest.mark.parametrize(
    "data",
    [
        _one({**GOOD, "traceState": None}),  # null differs from absent
        _one({**GOOD, "attributes": [{"key": "k", "value": {"kvlistValue": {}}}]}),
        _one({**GOOD, "attributes": [{"key": "k", "value": {"bytesValue": "AA=="}}]}),
        _one({**GOOD, "attributes": [{"key": "k"}, {"key": "k"}]}),  # repeated key
        _one({**GOOD, "spanId": "z" * 16}),  # quarantined by the Python path
        _one({**GOOD, "kind": "SPAN_KIND_SERVER"}),  # enum by name
        _one({**GOOD, "startTimeUnixNano": 5}),  # integer as a number
        _one({**GOOD, "startTimeUnixNano": "+5"}),
        _one({**GOOD, "surprise": 1}),  # unknown field
        _one(GOOD, resourceMetrics=[{}]),
        _one(GOOD).strip() + b" " + _one(GOOD),  # two objects on one line
        b'{"resourceLogs": []}\n' + _one(GOOD),
        b"not json\n" + _one(GOOD),
    ],
)
def test_declines_what_it_cannot_decode_exactly(data: bytes) -> None:
    assert decode_traces_fast(data) is None


def test_fields_only_in_middle_lines_are_read_as_by_the_python_path() -> None:
    # The parse schema is cut to the fields of the first and last lines; a middle line
    # with more (events, links, other value types, status) must still decode exactly.
    lines = _sdk_lines().splitlines(keepends=True)
    plain = _one({**GOOD, "endTimeUnixNano": "9"})
    data = plain + b"".join(lines) + plain
    fast = decode_traces_fast(data)
    assert fast is not None
    table, read, rejects = _python_path(data)
    assert (fast[1], rejects) == (read, [])
    assert _same_rows(fast[0], table)


def _kv(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def test_repeated_and_distinct_resources_and_scopes_decode_as_by_the_python_path() -> None:
    # Each distinct resource and scope goes through the Python decoder's code once; rows
    # must still carry their own (equal values are equal, near-equal ones differ).
    span = {**GOOD, "endTimeUnixNano": "9"}
    res_a = {"attributes": [_kv("service.name", {"stringValue": "a"})]}
    res_b = {
        "attributes": [
            _kv("service.name", {"stringValue": "b"}),
            _kv("process.pid", {"intValue": "42"}),
            _kv("ml.model.name", {"stringValue": "fraud"}),
        ]
    }
    res_c = {"attributes": [_kv("service.name", {"stringValue": "b"}), _kv("process.pid", {})]}
    scope_1 = {"name": "s", "version": "1", "attributes": [_kv("k", {"boolValue": True})]}
    scope_2 = {"name": "s", "version": "1", "attributes": [_kv("k", {"stringValue": "true"})]}
    lines = []
    for resource, url, scope in [
        (res_a, None, scope_1),
        (res_b, None, scope_1),
        (res_a, "https://x/1", scope_2),
        (res_c, None, {"name": "s"}),
        (res_a, None, scope_1),
        (res_b, None, scope_2),
    ]:
        rs = {"resource": resource, "scopeSpans": [{"scope": scope, "spans": [span] * 2}]}
        if url:
            rs["schemaUrl"] = url
        lines.append(orjson.dumps({"resourceSpans": [rs, {**rs, "resource": res_c}]}) + b"\n")
    data = b"".join(lines)
    fast = decode_traces_fast(data)
    assert fast is not None
    table, read, rejects = _python_path(data)
    assert (fast[1], rejects) == (read, []) == (24, [])
    assert _same_rows(fast[0], table)
