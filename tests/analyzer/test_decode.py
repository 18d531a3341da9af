"""OTLP/JSON and protobuf decoding: the protocol's own examples field by field,
each encoding trap, the model alias list, and a fuzz that every input is accounted for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
    Status,
    TracesData,
)

from faultlens.analyzer import connect, ingest
from faultlens.analyzer.decode._identity import resolve_model
from faultlens.analyzer.decode._otlp_json import Decoded, decode_json_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp-examples"
T0 = dt.datetime(2018, 12, 13, 14, 51)


def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _load(tmp_path: Path, name: str, payload: object) -> object:
    path = tmp_path / name
    path.write_bytes(payload if isinstance(payload, bytes) else orjson.dumps(payload) + b"\n")
    con = connect(":memory:")
    report = ingest(path, db=con)
    return con, report


def test_trace_example_field_by_field() -> None:
    con = connect(":memory:")
    report = ingest(FIXTURES / "trace.json", db=con)
    assert (report.read, report.stored, report.quarantined) == (1, 1, 0)
    assert _rows(con, "SELECT * FROM otel_traces") == [
        {
            "Timestamp": T0,
            "TraceId": "5b8efff798038103d269b633813fc60c",
            "SpanId": "eee19b7ec3c1b174",
            "ParentSpanId": "eee19b7ec3c1b173",
            "TraceState": "",
            "SpanName": "I'm a server span",
            "SpanKind": "Server",
            "ServiceName": "my.service",
            "ResourceAttributes": {"service.name": "my.service"},
            "ScopeName": "my.library",
            "ScopeVersion": "1.0.0",
            "SpanAttributes": {"my.span.attr": "some value"},
            "Duration": 1_000_000_000,
            "StatusCode": "Unset",
            "StatusMessage": "",
            "Events.Timestamp": [],
            "Events.Name": [],
            "Events.Attributes": [],
            "Links.TraceId": [],
            "Links.SpanId": [],
            "Links.TraceState": [],
            "Links.Attributes": [],
            "ModelName": None,
            "ModelVersion": None,
            "ServiceInstanceId": "",
            "HttpRoute": "",
            "Layout": "",
            "ScopeAttributes": {"my.scope.attribute": "some scope attribute"},
        }
    ]


def _log_row(**fields: object) -> dict:
    row = {
        "Timestamp": T0 + dt.timedelta(milliseconds=300),
        "TraceId": "",
        "SpanId": "",
        "TraceFlags": 0,
        "ServiceName": "my.service",
        "ResourceSchemaUrl": "",
        "ResourceAttributes": {"service.name": "my.service"},
        "ScopeSchemaUrl": "",
        "ScopeName": "my.library",
        "ScopeVersion": "1.0.0",
        "ScopeAttributes": {"my.scope.attribute": "some scope attribute"},
        "EventName": "",
        "ModelName": None,
        "ModelVersion": None,
        "ServiceInstanceId": "",
    }
    row.update(fields)
    return row


def test_logs_example_field_by_field() -> None:
    con = connect(":memory:")
    ingest(FIXTURES / "logs.json", db=con)
    rows = _rows(con, "SELECT * EXCLUDE (RecordId) FROM otel_logs")
    assert rows == [
        _log_row(
            TraceId="5b8efff798038103d269b633813fc60c",
            SpanId="eee19b7ec3c1b174",
            SeverityText="Information",
            SeverityNumber=10,
            Body="Example log record",
            LogAttributes={
                "string.attribute": "some string",
                "boolean.attribute": "true",
                "int.attribute": "10",
                "double.attribute": "637.704",
                "array.attribute": '["many","values"]',
                "map.attribute": '{"some.map.key":"some value"}',
            },
        )
    ]
    (record_id,) = con.execute("SELECT RecordId FROM otel_logs").fetchone()
    assert len(record_id) == 32 and int(record_id, 16) >= 0


def test_events_example_field_by_field() -> None:
    con = connect(":memory:")
    ingest(FIXTURES / "events.json", db=con)
    assert _rows(con, "SELECT * EXCLUDE (RecordId) FROM otel_logs") == [
        _log_row(
            SeverityText="test severity text",
            SeverityNumber=9,
            Body='{"referrer":"https://wwww.google.com","title":"Free Online GUID Generator",'
            '"type":0,"url":"https://www.guidgenerator.com/online-guid-generator.aspx"}',
            LogAttributes={"event.attribute": "some event attribute"},
            EventName="browser.page_view",
        )
    ]


def _span(**fields: object) -> dict:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "predict",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000500000000",
    }
    span.update(fields)
    return span


def _traces(*spans: dict, resource: list | None = None, legacy: bool = False) -> dict:
    scope_key = "instrumentationLibrarySpans" if legacy else "scopeSpans"
    scope = {"instrumentationLibrary" if legacy else "scope": {"name": "s"}, "spans": list(spans)}
    return {"resourceSpans": [{"resource": {"attributes": resource or []}, scope_key: [scope]}]}


def _kv(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def test_encoding_traps(tmp_path: Path) -> None:
    doc = _traces(
        _span(
            traceId="0AF7651916CD43DD8448EB211C80319C",
            spanId="B7AD6B7169203331",
            parentSpanId="",
            startTimeUnixNano=1700000000000000000,
            endTimeUnixNano=1700000000250000000,
            kind="SPAN_KIND_CLIENT",
            status={"code": "STATUS_CODE_ERROR", "message": "boom"},
            unknownField={"ignored": True},
            attributes=[
                _kv("b", {"bytesValue": "AQID_w"}),  # URL-safe, unpadded
                _kv("i", {"intValue": 42}),
                _kv("d", {"doubleValue": 1.0}),
                _kv("e", {"doubleValue": 1e-7}),
                _kv("arr", {"arrayValue": {"values": [{"intValue": "1"}, {"boolValue": False}]}}),
                _kv(
                    "kv",
                    {"kvlistValue": {"values": [_kv("z", {}), _kv("a", {"stringValue": "<"})]}},
                ),
                _kv("empty", {}),
                _kv("dup", {"stringValue": "first"}),
                _kv("dup", {"stringValue": "last"}),
            ],
            events=[{"timeUnixNano": "1700000000100000000", "name": "exception"}],
            links=[{"traceId": "0AF7651916CD43DD8448EB211C80319D", "spanId": "00F067AA0BA902B7"}],
        ),
        legacy=True,
    )
    con, report = _load(tmp_path, "t.json", doc)
    assert (report.read, report.stored, report.quarantined) == (1, 1, 0)
    (row,) = _rows(
        con,
        "SELECT TraceId, SpanId, SpanKind, StatusCode, StatusMessage, Duration, SpanAttributes, "
        'ScopeName, "Events.Name", "Events.Timestamp", "Links.TraceId", "Links.SpanId" '
        "FROM otel_traces",
    )
    assert row == {
        "TraceId": "0af7651916cd43dd8448eb211c80319c",
        "SpanId": "b7ad6b7169203331",
        "SpanKind": "Client",
        "StatusCode": "Error",
        "StatusMessage": "boom",
        "Duration": 250_000_000,
        "SpanAttributes": {
            "b": "AQID/w==",
            "i": "42",
            "d": "1",
            "e": "1e-7",
            "arr": "[1,false]",
            "kv": '{"a":"\\u003c","z":null}',
            "empty": "",
            "dup": "last",
        },
        "ScopeName": "s",
        "Events.Name": ["exception"],
        "Events.Timestamp": [dt.datetime(2023, 11, 14, 22, 13, 20, 100000)],
        "Links.TraceId": ["0af7651916cd43dd8448eb211c80319d"],
        "Links.SpanId": ["00f067aa0ba902b7"],
    }


def _ingested_span(path: Path, span: Span) -> duckdb.DuckDBPyConnection:
    """A protobuf traces file of this one span, ingested without an error into a new store."""
    path.write_bytes(
        TracesData(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
        ).SerializeToString()
    )
    con = connect(":memory:")
    assert ingest(path, db=con).errors == ()
    return con


def _pb_kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def test_protobuf_decodes_as_json_does_field_by_field(tmp_path: Path) -> None:
    # One span with every attribute type, an event and a link with attributes, and a model,
    # in both encodings: the two decoders must store the same row, every column.
    tid, sid, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "00f067aa0ba902b7"
    link_tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    attributes = [
        ("s", {"stringValue": "text"}, {"string_value": "text"}),
        ("b", {"bytesValue": "AQID/w=="}, {"bytes_value": b"\x01\x02\x03\xff"}),
        ("i", {"intValue": "-42"}, {"int_value": -42}),
        ("d", {"doubleValue": 0.5}, {"double_value": 0.5}),
        ("t", {"boolValue": True}, {"bool_value": True}),
        (
            "arr",
            {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "x"}]}},
            {"array_value": ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="x")])},
        ),
        (
            "kv",
            {"kvlistValue": {"values": [_kv("z", {"boolValue": False})]}},
            {"kvlist_value": KeyValueList(values=[_pb_kv("z", bool_value=False)])},
        ),
        ("ml.model.name", {"stringValue": "fraud"}, {"string_value": "fraud"}),
    ]
    doc = _traces(
        _span(
            parentSpanId=parent,
            traceState="k=v",
            kind=3,
            status={"code": 2, "message": "boom"},
            attributes=[_kv(k, j) for k, j, _ in attributes],
            events=[
                {
                    "timeUnixNano": "1700000000100000000",
                    "name": "exception",
                    "attributes": [_kv("exception.type", {"stringValue": "ValueError"})],
                }
            ],
            links=[
                {
                    "traceId": link_tid,
                    "spanId": parent,
                    "traceState": "a=b",
                    "attributes": [_kv("n", {"intValue": "7"})],
                }
            ],
        )
    )
    span = Span(
        trace_id=bytes.fromhex(tid),
        span_id=bytes.fromhex(sid),
        parent_span_id=bytes.fromhex(parent),
        trace_state="k=v",
        name="predict",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1700000000000000000,
        end_time_unix_nano=1700000000500000000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        attributes=[_pb_kv(k, **p) for k, _, p in attributes],
        events=[
            Span.Event(
                time_unix_nano=1700000000100000000,
                name="exception",
                attributes=[_pb_kv("exception.type", string_value="ValueError")],
            )
        ],
        links=[
            Span.Link(
                trace_id=bytes.fromhex(link_tid),
                span_id=bytes.fromhex(parent),
                trace_state="a=b",
                attributes=[_pb_kv("n", int_value=7)],
            )
        ],
    )
    message = TracesData(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(scope={"name": "s"}, spans=[span])])]
    )
    rows = {}
    for name, payload in (("s.json", doc), ("s.binpb", message.SerializeToString())):
        con, report = _load(tmp_path, name, payload)
        assert (report.read, report.stored, report.quarantined) == (1, 1, 0), name
        rows[name] = _rows(con, "SELECT * FROM otel_traces")
    assert rows["s.binpb"] == rows["s.json"]
    (row,) = rows["s.binpb"]
    assert (row["TraceId"], row["ParentSpanId"], row["TraceState"]) == (tid, parent, "k=v")
    assert (row["SpanKind"], row["StatusCode"], row["StatusMessage"]) == ("Client", "Error", "boom")
    assert row["SpanAttributes"] == {
        "s": "text",
        "b": "AQID/w==",
        "i": "-42",
        "d": "0.5",
        "t": "true",
        "arr": '[1,"x"]',
        "kv": '{"z":false}',
        "ml.model.name": "fraud",
    }
    assert (row["ModelName"], row["Duration"]) == ("fraud", 500_000_000)
    assert row["Events.Name"] == ["exception"]
    assert row["Events.Timestamp"] == [dt.datetime(2023, 11, 14, 22, 13, 20, 100000)]
    assert row["Events.Attributes"] == [{"exception.type": "ValueError"}]
    assert (row["Links.TraceId"], row["Links.SpanId"]) == ([link_tid], [parent])
    assert (row["Links.TraceState"], row["Links.Attributes"]) == (["a=b"], [{"n": "7"}])


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"ml.model.name": "fraud", "ml.model.version": "1.4.2"}, ("fraud", "1.4.2")),
        (
            {"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"},
            ("gpt-4o", "gpt-4o-2024-08-06"),
        ),
        ({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o"}, ("gpt-4o", None)),
        (
            {"llm.invocation_parameters": '{"model": "claude-3", "temperature": 0}'},
            ("claude-3", None),
        ),
        (
            {"embedding.invocation_parameters": '{"model": "e5"}', "embedding.model_name": "e5-v2"},
            ("e5", None),
        ),
        ({"llm.invocation_parameters": "not json", "llm.model_name": "m-2024"}, ("m-2024", None)),
        ({"llm.request.model_name": "a", "llm.response.model_name": "a-1"}, ("a", "a-1")),
        ({"ml.model.name": "x", "gen_ai.request.model": "y", "ml.model.version": "3"}, ("x", "3")),
        ({"http.route": "/p"}, (None, None)),
    ],
)
def test_model_alias_list(attrs: dict, expected: tuple) -> None:
    assert resolve_model(attrs) == expected


def test_model_columns_and_resource_columns(tmp_path: Path) -> None:
    resource = [
        _kv("service.name", {"stringValue": "monolith"}),
        _kv("service.instance.id", {"stringValue": "i-1"}),
        _kv("faultlens.layout", {"stringValue": "monolith"}),
    ]
    doc = _traces(
        _span(
            attributes=[
                _kv("ml.model.name", {"stringValue": "fraud"}),
                _kv("ml.model.version", {"stringValue": "1.4.2"}),
            ]
        ),
        _span(spanId="b7ad6b7169203332", attributes=[_kv("http.route", {"stringValue": "/p"})]),
        resource=resource,
    )
    con, _ = _load(tmp_path, "m.jsonl", doc)
    assert con.execute(
        "SELECT SpanId, ModelName, ModelVersion, HttpRoute, ServiceName, ServiceInstanceId, Layout "
        "FROM otel_traces ORDER BY SpanId"
    ).fetchall() == [
        ("b7ad6b7169203331", "fraud", "1.4.2", "", "monolith", "i-1", "monolith"),
        ("b7ad6b7169203332", None, None, "/p", "monolith", "i-1", "monolith"),
    ]


def test_bad_spans_quarantined_beside_good_ones(tmp_path: Path) -> None:
    good = _span()
    lines = [
        orjson.dumps(
            _traces(
                good,
                _span(spanId="xyz"),
                _span(spanId="b7ad6b7169203339", startTimeUnixNano="soon"),
            )
        ),
        b"{not json",
        orjson.dumps([1, 2]),
    ]
    con, report = _load(tmp_path, "bad.jsonl", b"\n".join(lines) + b"\n")
    assert (report.read, report.stored, report.duplicates, report.quarantined) == (5, 1, 0, 4)
    src = str(tmp_path / "bad.jsonl")
    assert sorted(report.errors) == sorted(
        [
            f"{src}:1 record 2: spanId is not 16 hex digits (or is all zero)",
            f"{src}:1 record 3: 'soon' is not an integer",
            f"{src}:2: not valid JSON at column 2 (unexpected character, expected a string key)",
            f"{src}:3: not an OTLP JSON object",
        ]
    )
    assert con.execute(
        "SELECT Source, Position FROM faultlens_quarantine ORDER BY Position"
    ).fetchall() == [
        (src, f"{src}:1 record 2"),
        (src, f"{src}:1 record 3"),
        (src, f"{src}:2"),
        (src, f"{src}:3"),
    ]


_any_value = st.recursive(
    st.one_of(
        st.builds(lambda s: {"stringValue": s}, st.text(max_size=5)),
        st.builds(
            lambda i: {"intValue": i},
            st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=3)),
        ),
        st.builds(
            lambda b: {"boolValue": b}, st.one_of(st.booleans(), st.integers(-(2**63), 2**64 - 1))
        ),
        st.builds(lambda b: {"bytesValue": b}, st.text(max_size=6)),
        st.just({}),
        st.none(),
    ),
    lambda inner: st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
    max_leaves=5,
)
_ids = st.one_of(
    st.just("0af7651916cd43dd8448eb211c80319c"),
    st.text(max_size=34),
    st.integers(-(2**63), 2**64 - 1),
)
_fuzz_span = st.fixed_dictionaries(
    {"traceId": _ids, "spanId": st.one_of(st.just("b7ad6b7169203331"), st.text(max_size=17))},
    optional={
        "startTimeUnixNano": st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=4)),
        "kind": st.one_of(st.integers(-1, 9), st.text(max_size=3), st.none()),
        "attributes": st.lists(
            st.fixed_dictionaries(
                {"key": st.one_of(st.text(max_size=3), st.integers(-(2**63), 2**64 - 1))},
                optional={"value": _any_value},
            ),
            max_size=3,
        ),
        "status": st.one_of(st.none(), st.fixed_dictionaries({"code": st.integers(-1, 3)})),
        "events": st.one_of(
            st.none(),
            st.lists(
                st.dictionaries(st.text(max_size=4), st.integers(-(2**63), 2**64 - 1)), max_size=2
            ),
        ),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spans=st.lists(_fuzz_span, max_size=4), junk=st.binary(max_size=40))
def test_fuzz_every_input_accounted_for(spans: list, junk: bytes) -> None:
    data = orjson.dumps(_traces(*spans)) + b"\n" + junk.replace(b"\n", b" ") + b"\n"
    out = Decoded()
    decode_json_lines(data, "f", 1, out)
    table = out.traces.to_arrow()
    stored = 0 if table is None else table.num_rows
    read = out.read + out.traces.read + out.logs.read
    rejects = len(out.rejects) + len(out.traces.rejects) + len(out.logs.rejects)
    assert read == stored + rejects
    assert stored + len(out.traces.rejects) >= 0
    if table is not None:
        assert all(len(t) == 32 for t in table["TraceId"].to_pylist())


def test_each_bad_value_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    """A span whose values do not decode is rejected with a reason a person can act on; the
    good span after them is stored."""
    bad = {
        "boolValue is not a boolean": {"attributes": [_kv("b", {"boolValue": "yes"})]},
        "intValue 'ten' is not an integer": {"attributes": [_kv("i", {"intValue": "ten"})]},
        "bytesValue is not valid base64": {"attributes": [_kv("x", {"bytesValue": "!!"})]},
        "arrayValue.values is not a list": {
            "attributes": [_kv("a", {"arrayValue": {"values": 3}})]
        },
        "event name is not a string": {
            "events": [{"timeUnixNano": "1700000000100000000", "name": 5}]
        },
        "bytesValue is not a base64 string": {"attributes": [_kv("x", {"bytesValue": 5})]},
        "intValue is not an integer": {"attributes": [_kv("i", {"intValue": [1]})]},
        "malformed record ('int' object is not iterable)": {"events": 3},
        "traceId is not 32 hex digits (or is all zero)": {"traceId": "xyz"},
        "a link's traceId/spanId is not hex of the right length": {
            "links": [{"traceId": "abc", "spanId": "b7ad6b7169203331"}]
        },
    }
    spans = [_span(spanId=f"b7ad6b716920{i + 1:04x}", **f) for i, f in enumerate(bad.values())]
    con, report = _load(tmp_path, "bad.jsonl", orjson.dumps(_traces(*spans, _span())) + b"\n")
    src = tmp_path / "bad.jsonl"
    assert report.errors == tuple(f"{src}:1 record {i}: {why}" for i, why in enumerate(bad, 1))
    assert con.execute("SELECT SpanId FROM otel_traces").fetchall() == [("b7ad6b7169203331",)]


def test_protobuf_files_an_unknown_kind_a_bad_span_no_span_and_no_message(
    tmp_path: Path,
) -> None:
    """An unknown span kind is stored as '' (as the JSON path does); a bad span is named by
    its file and record; a message with resources but no span is no error; bytes that
    decode as no OTLP message are quarantined whole, with their first 4 KiB to read."""
    tid = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    spans = [
        Span(trace_id=tid, span_id=bytes.fromhex("b7ad6b7169203331"), name="kind 9", kind=9),
        Span(trace_id=tid, span_id=bytes(8), name="zero span id"),
    ]
    files = {
        "spans.pb": TracesData(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
        ).SerializeToString(),
        "no_span.pb": TracesData(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans()])]
        ).SerializeToString(),
        "garbage.pb": b"\x0a\xff" + b"x" * 5000,  # a field longer than the message
    }
    got = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        con = connect(":memory:")
        report = ingest(tmp_path / name, db=con)
        got[name] = (
            (report.read, report.stored, report.quarantined, report.errors),
            con.execute("SELECT SpanName, SpanKind FROM otel_traces").fetchall(),
            con.execute("SELECT Position, Reason, Record FROM faultlens_quarantine").fetchall(),
        )
    bad = "spanId is not 16 hex digits (or is all zero)"
    assert got["spans.pb"][:2] == (
        (2, 1, 1, (f"{tmp_path / 'spans.pb'}@byte 0 record 2: {bad}",)),
        [("kind 9", "")],
    )
    assert got["no_span.pb"] == ((0, 0, 0, ()), [], [])
    garbage = f"{tmp_path / 'garbage.pb'}@byte 0"
    assert got["garbage.pb"] == (
        (1, 0, 1, (f"{garbage}: not an OTLP protobuf message",)),
        [],
        [
            (
                garbage,
                "not an OTLP protobuf message",
                files["garbage.pb"][:4096].decode("utf-8", "replace"),
            )
        ],
    )


def test_protobuf_logs_decode_as_json_logs_do(tmp_path: Path) -> None:
    """The protocol's log example and a model's record with an event name and flags, in both
    encodings: the same rows, and the same counts."""
    import base64

    from google.protobuf.json_format import Parse
    from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

    doc = orjson.loads((FIXTURES / "logs.json").read_bytes())
    records = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    records += [
        {
            "timeUnixNano": "1544712660400000000",
            "severityNumber": 17,
            "severityText": "ERROR",
            "eventName": "model.failed",
            "flags": 1,
            "body": {"stringValue": "predict failed"},
            "attributes": [
                _kv("ml.model.name", {"stringValue": "fraud"}),
                _kv("ml.model.version", {"stringValue": "1.4"}),
            ],
        },
    ]
    proto = orjson.loads(orjson.dumps(doc))
    for record in proto["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        for key in ("traceId", "spanId"):
            if key in record:
                record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    (tmp_path / "logs.json").write_bytes(orjson.dumps(doc))
    (tmp_path / "logs.pb").write_bytes(Parse(orjson.dumps(proto), LogsData()).SerializeToString())
    got = {}
    for name in ("logs.json", "logs.pb"):
        con = connect(":memory:")
        report = ingest(tmp_path / name, db=con)
        got[name] = (
            (report.read, report.stored, report.quarantined),
            _rows(con, "SELECT * FROM otel_logs ORDER BY Timestamp"),
        )
    assert got["logs.pb"] == got["logs.json"]
    counts, rows = got["logs.pb"]
    assert counts == (2, 2, 0)
    assert [
        (r["SeverityNumber"], r["TraceFlags"], r["EventName"], r["ModelName"], r["ModelVersion"])
        for r in rows
    ] == [(10, 0, "", None, None), (17, 1, "model.failed", "fraud", "1.4")]


def test_severity_outside_the_otlp_enum_is_kept_as_unspecified_in_both_encodings(
    tmp_path: Path,
) -> None:
    """A SeverityNumber past OTLP's 0..24 (300, 200, -1) keeps its record and its text in
    JSON and in protobuf alike, stored as 0 (unspecified): a 200 stored as sent would count
    as a fatal log. Both encodings of one record are the same record: stored once."""
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, LogsData, ResourceLogs, ScopeLogs

    numbers = [300, 200, -1, 24, 25]
    records = [
        {
            "timeUnixNano": str(1544712660300000000 + i),
            "severityNumber": n,
            "severityText": f"LEVEL{n}",
            "body": {"stringValue": f"line {i}"},
        }
        for i, n in enumerate(numbers)
    ]
    (tmp_path / "logs.json").write_bytes(
        orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]})
    )
    message = LogsData(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                time_unix_nano=1544712660300000000 + i,
                                severity_number=n,
                                severity_text=f"LEVEL{n}",
                                body=AnyValue(string_value=f"line {i}"),
                            )
                            for i, n in enumerate(numbers)
                        ]
                    )
                ]
            )
        ]
    )
    (tmp_path / "logs.pb").write_bytes(message.SerializeToString())
    expected = [("line 0", 0, "LEVEL300"), ("line 1", 0, "LEVEL200"), ("line 2", 0, "LEVEL-1")]
    expected += [("line 3", 24, "LEVEL24"), ("line 4", 0, "LEVEL25")]
    sql = "SELECT Body, SeverityNumber, SeverityText FROM otel_logs ORDER BY Body"
    con = connect(":memory:")
    reports = [ingest(tmp_path / name, db=con) for name in ("logs.json", "logs.pb")]
    assert [
        (r.read, r.stored, r.duplicates, r.quarantined, r.errors, r.spans, r.log_records)
        for r in reports
    ] == [(5, 5, 0, 0, (), 0, 5), (5, 0, 5, 0, (), 0, 0)]
    assert con.execute(sql).fetchall() == expected
    con = connect(":memory:")
    assert ingest(tmp_path / "logs.pb", db=con).stored == 5
    assert con.execute(sql).fetchall() == expected


def test_json_unknown_codes_enum_names_a_bad_resource_and_profiles(tmp_path: Path) -> None:
    """An unknown status code is Unset; a severity given by its enum name is its number; a
    resource whose schemaUrl is not a string is quarantined whole, named by where it sits;
    profiles are counted as not stored."""
    lines = [
        {"resourceSpans": [{"schemaUrl": 5, "scopeSpans": [{"spans": [_span(name="lost")]}]}]},
        _traces(_span(spanId="b7ad6b7169203332", name="status 7", status={"code": 7})),
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "timeUnixNano": "1700000000000000000",
                                    "severityNumber": "SEVERITY_NUMBER_WARN",
                                    "body": {"stringValue": "warned"},
                                }
                            ]
                        }
                    ]
                }
            ]
        },
        {"resourceProfiles": [{"scopeProfiles": []}]},
    ]
    src = tmp_path / "edge.jsonl"
    con, report = _load(tmp_path, src.name, b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    assert (report.read, report.stored, report.quarantined, report.errors) == (
        4,
        2,
        2,
        (
            f"{src}:1: resourceSpans[0]: schemaUrl is not a string",
            f"{src}:4: resourceProfiles: profiles are not stored",
        ),
    )
    assert con.execute("SELECT SpanName, StatusCode FROM otel_traces").fetchall() == [
        ("status 7", "Unset")
    ]
    assert con.execute("SELECT Body, SeverityNumber FROM otel_logs").fetchall() == [("warned", 13)]
    (record,) = con.execute(
        "SELECT Record FROM faultlens_quarantine WHERE Position = ?", [f"{src}:1"]
    ).fetchone()
    assert "'schemaUrl': 5" in record and "'name': 'lost'" in record  # the whole resource


def test_attribute_values_at_their_limits_in_both_encodings_and_bad_ones_in_json(
    tmp_path: Path,
) -> None:
    """false, an empty AnyValue, the int64 limits and bytes inside an array are stored as
    the Collector writes them, alike from JSON and protobuf; JSON values past the limits
    or of the wrong type are quarantined, each with its reason."""
    good = [
        ("f", {"boolValue": False}, AnyValue(bool_value=False)),
        ("e", {}, AnyValue()),
        ("max", {"intValue": str((1 << 63) - 1)}, AnyValue(int_value=(1 << 63) - 1)),
        ("min", {"intValue": str(-(1 << 63))}, AnyValue(int_value=-(1 << 63))),
        (
            "no key",
            {"kvlistValue": {"values": [{"value": {"intValue": "1"}}]}},
            AnyValue(kvlist_value=KeyValueList(values=[KeyValue(value=AnyValue(int_value=1))])),
        ),
        (
            "arr",
            {"arrayValue": {"values": [{"bytesValue": "AQI="}, {"boolValue": False}]}},
            AnyValue(
                array_value=ArrayValue(
                    values=[AnyValue(bytes_value=b"\x01\x02"), AnyValue(bool_value=False)]
                )
            ),
        ),
    ]
    bad = {
        "an AnyValue is not an object": {"arrayValue": {"values": [5]}},
        "intValue is out of range": {"intValue": str(1 << 63)},
        "a key is not a string": {"kvlistValue": {"values": [{"key": 5, "value": {}}]}},
        "doubleValue is not a number": {"doubleValue": True},
    }
    spans = [_span(name="good", attributes=[_kv(k, j) for k, j, _ in good])]
    spans += [
        _span(spanId=f"b7ad6b716920340{i}", name=why, attributes=[_kv("x", value)])
        for i, (why, value) in enumerate(bad.items())
    ]
    spans.append(_span(spanId="b7ad6b7169203409", endTimeUnixNano=str(1 << 64)))
    con, report = _load(tmp_path, "values.json", _traces(*spans))
    src = tmp_path / "values.json"
    assert report.errors == (
        *(f"{src}:1 record {i}: {why}" for i, why in enumerate(bad, 2)),
        f"{src}:1 record 6: '18446744073709551616' is out of range",
    )
    stored = {
        "f": "false",
        "e": "",
        "max": "9223372036854775807",
        "min": "-9223372036854775808",
        "no key": '{"":1}',
        "arr": '["AQI=",false]',
    }
    assert (report.spans, report.log_records) == (1, 0)
    sql = "SELECT SpanName, ServiceName, SpanAttributes FROM otel_traces"
    assert con.execute(sql).fetchall() == [("good", "", stored)]  # no service.name: ''

    span = Span(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        name="good",
        attributes=[KeyValue(key=k, value=p) for k, _, p in good],
    )
    con = _ingested_span(tmp_path / "values.pb", span)
    assert con.execute(sql).fetchall() == [("good", "", stored)]


def test_protobuf_non_finite_doubles_and_a_url_template_route(tmp_path: Path) -> None:
    """NaN and the infinities, which JSON cannot hold, stored as the Collector's pcommon
    AsString writes them (Go's names: NaN, +Inf, -Inf); a span with url.template and no
    http.route has that template as its route."""
    span = Span(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        name="GET",
        attributes=[
            _pb_kv("nan", double_value=float("nan")),
            _pb_kv("up", double_value=float("inf")),
            _pb_kv("down", double_value=float("-inf")),
            _pb_kv("url.template", string_value="/items/{id}"),
        ],
    )
    con = _ingested_span(tmp_path / "d.pb", span)
    assert con.execute("SELECT SpanAttributes, HttpRoute FROM otel_traces").fetchall() == [
        (
            {
                "nan": "json: unsupported value: NaN",
                "up": "json: unsupported value: +Inf",
                "down": "json: unsupported value: -Inf",
                "url.template": "/items/{id}",
            },
            "/items/{id}",
        )
    ]


def test_each_bad_log_value_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    records = [
        {"timeUnixNano": "1544712660300000000", "severityText": 5},
        {"timeUnixNano": "1544712660300000000", "eventName": 5},
        {"timeUnixNano": "1544712660300000000", "body": {"stringValue": "fine"}},
    ]
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    con, report = _load(tmp_path, "bad.jsonl", doc)
    src = tmp_path / "bad.jsonl"
    assert report.errors == (
        f"{src}:1 record 1: severityText is not a string",
        f"{src}:1 record 2: eventName is not a string",
    )
    assert con.execute("SELECT Body FROM otel_logs").fetchall() == [("fine",)]


def test_structured_values_are_stored_as_go_json_writes_them() -> None:
    """The Collector's exporter stores arrays and maps as Go's encoding/json text: sorted
    keys, and <, > and & escaped whichever of them appears."""
    from faultlens.analyzer.decode._identity import json_text

    assert [json_text(v) for v in (["a>b"], ["x&y"], {"k": "<", "a": 1}, ["plain"])] == [
        '["a\\u003eb"]',
        '["x\\u0026y"]',
        '{"a":1,"k":"\\u003c"}',
        '["plain"]',
    ]
