"""`ingest`: every file format from spans made by the real SDK, idempotence, the ledger,
and a SIGKILL mid-ingest followed by a re-run."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from otel_spans import shared_span_id_spans

from faultlens.analyzer import connect, ingest
from faultlens.analyzer._settings import TUNING


def _sdk_spans(n: int = 6) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "monolith"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for i in range(n // 2):
        entry = {"http.route": "/predict"}
        model = {"ml.model.name": "fraud", "ml.model.version": "1.4"}
        with (
            tracer.start_as_current_span("POST /predict", attributes=entry),
            tracer.start_as_current_span("fraud.predict", attributes=model) as child,
        ):
            if i == 0:
                child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


@pytest.fixture(scope="module")
def request_bytes() -> bytes:
    return encode_spans(_sdk_spans()).SerializeToString()


def _expected(spans: list) -> set:
    return {
        (format(s.context.trace_id, "032x"), format(s.context.span_id, "016x"), s.name)
        for s in spans
    }


def _stored(con) -> set:
    return set(con.execute("SELECT TraceId, SpanId, SpanName FROM otel_traces").fetchall())


def _json_line(message) -> bytes:
    # MessageToDict writes ids as base64 (proto3 JSON); OTLP/JSON wants hex.
    doc = MessageToDict(message)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex().upper()
    return orjson.dumps(doc)


def _write_formats(tmp_path: Path, spans: list) -> dict[str, Path]:
    message = encode_spans(spans)
    raw = message.SerializeToString()
    line = _json_line(message)
    framed_zstd = zstandard.ZstdCompressor().compress(raw)
    files = {
        "jsonl": (tmp_path / "a.jsonl", line + b"\n"),
        "jsonl.gz": (tmp_path / "b.jsonl.gz", gzip.compress(line + b"\n")),
        "jsonl.zst": (tmp_path / "c.jsonl.zst", zstandard.ZstdCompressor().compress(line + b"\n")),
        "json-document": (
            tmp_path / "d.json",
            orjson.dumps(orjson.loads(line), option=orjson.OPT_INDENT_2),
        ),
        "protobuf": (tmp_path / "e.pb", raw),
        "framed": (
            tmp_path / "f.binpb",
            len(raw).to_bytes(4, "big") + raw + len(framed_zstd).to_bytes(4, "big") + framed_zstd,
        ),
    }
    out = {}
    for name, (path, data) in files.items():
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.mark.parametrize(
    "fmt", ["jsonl", "jsonl.gz", "jsonl.zst", "json-document", "protobuf", "framed"]
)
def test_each_format_loads_every_span(tmp_path: Path, fmt: str) -> None:
    spans = _sdk_spans()
    path = _write_formats(tmp_path, spans)[fmt]
    con = connect(":memory:")
    report = ingest(path, db=con)
    copies = 2 if fmt == "framed" else 1  # the framed file holds the request twice
    assert (report.read, report.stored, report.duplicates, report.quarantined) == (
        6 * copies,
        6,
        6 * (copies - 1),
        0,
    )
    assert _stored(con) == _expected(spans)
    assert con.execute(
        "SELECT SpanName, SpanKind, StatusCode, StatusMessage, ModelName, ModelVersion, HttpRoute "
        "FROM otel_traces WHERE StatusCode = 'Error'"
    ).fetchall() == [("fraud.predict", "Internal", "Error", "boom", "fraud", "1.4", "")]


def test_directory_recursive_and_reingest_adds_nothing(tmp_path: Path) -> None:
    spans = _sdk_spans()
    (tmp_path / "deep" / "er").mkdir(parents=True)
    _write_formats(tmp_path / "deep" / "er", spans)
    (tmp_path / "deep" / "notes.txt").write_text("not telemetry")
    db = tmp_path / "store" / "f.duckdb"
    first = ingest(tmp_path / "deep", db=db)
    assert (first.files, first.read, first.stored, first.duplicates) == (6, 42, 6, 36)
    again = ingest(tmp_path / "deep", db=db)
    assert (again.read, again.stored, again.duplicates, again.quarantined) == (42, 0, 42, 0)
    con = connect(db, read_only=True)
    assert _stored(con) == _expected(spans)
    # The ledger reconciles, batch by batch and in total.
    assert con.execute(
        "SELECT count(*) FROM faultlens_ingest_ledger "
        "WHERE Read != Stored + Duplicates + Quarantined"
    ).fetchone() == (0,)
    assert con.execute(
        "SELECT sum(Read), sum(Stored), sum(Duplicates) FROM faultlens_ingest_ledger"
    ).fetchone() == (84, 6, 78)


def test_spans_of_different_traces_sharing_a_span_id_are_all_stored(tmp_path: Path) -> None:
    """A span's identity is (TraceId, SpanId): B beside A in one batch, and C in a later
    batch beside a repeat of A (the anti-join against what is stored), are no duplicates."""
    a, b, c = shared_span_id_spans()
    first, second = tmp_path / "1.pb", tmp_path / "2.pb"
    first.write_bytes(encode_spans([a, b]).SerializeToString())
    second.write_bytes(encode_spans([a, c]).SerializeToString())
    db = tmp_path / "s.duckdb"
    got = [ingest(f, db=db) for f in (first, second)]
    assert [(r.read, r.stored, r.duplicates) for r in got] == [(2, 2, 0), (2, 1, 1)]
    assert _stored(connect(db, read_only=True)) == _expected([a, b, c])


def test_quarantine_is_not_repeated_on_reingest(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"garbage\n")
    db = tmp_path / "f.duckdb"
    assert ingest(path, db=db).quarantined == 1
    assert ingest(path, db=db).quarantined == 1
    con = connect(db, read_only=True)
    assert con.execute("SELECT Position, Reason, Record FROM faultlens_quarantine").fetchall() == [
        (
            f"{path}:1",
            "not valid JSON at column 1 (unexpected character, expected a JSON value)",
            "garbage",
        )
    ]


def test_files_that_are_not_otlp_are_skipped_and_lines_quarantined(tmp_path: Path) -> None:
    spans = _sdk_spans()
    good = _json_line(encode_spans(spans))
    (tmp_path / "truth.json").write_text('{\n  "scenario": "crash"\n}\n')
    (tmp_path / "app.jsonl").write_text('{"level": "info", "msg": "up"}\n')
    (tmp_path / "traces.jsonl").write_bytes(good + b"\n" + b'{"level": "info"}\n')
    report = ingest(tmp_path, db=connect(":memory:"))
    reason = "not OTLP (no resourceSpans/resourceLogs)"
    assert report.skipped == (
        f"{tmp_path / 'app.jsonl'}: {reason}",
        f"{tmp_path / 'truth.json'}: {reason}",
    )
    assert (report.files, report.read, report.stored, report.quarantined) == (1, 7, 6, 1)
    assert report.errors == (f"{tmp_path / 'traces.jsonl'}:2: {reason}",)


_KILL_SCRIPT = """
import sys
from faultlens.analyzer import ingest
ingest(sys.argv[1], db=sys.argv[2], workers=0, progress=lambda d, t: print(d, t, flush=True))
"""


def _big_file(path: Path, lines: int, per_line: int = 200) -> int:
    base = 1_700_000_000_000_000_000
    with open(path, "wb") as out:
        for line in range(lines):
            spans = [
                {
                    "traceId": f"{line + 1:016x}{i:016x}",
                    "spanId": f"{line * per_line + i + 1:016x}",
                    "name": "s",
                    "startTimeUnixNano": str(base + (line * per_line + i) * 1000),
                    "endTimeUnixNano": str(base + (line * per_line + i) * 1000 + 10),
                    "attributes": [{"key": "ml.model.name", "value": {"stringValue": "m"}}],
                }
                for i in range(per_line)
            ]
            doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
            out.write(orjson.dumps(doc) + b"\n")
    return lines * per_line


def test_sigkill_mid_ingest_then_rerun_completes(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.jsonl"
    total = _big_file(path, 1500)  # 300k spans, ~12 chunks
    db = tmp_path / "f.duckdb"
    env = {**os.environ, "FAULTLENS_CHUNK_BYTES": str(2 << 20), "FAULTLENS_BATCH_ROWS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(path), str(db)], env=env, stdout=subprocess.PIPE
    )
    # Each progress line follows a commit: kill after the third, mid-file.
    for _ in range(3):
        assert proc.stdout.readline(), "ingest ended before it was killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    con = connect(db, read_only=True)
    partial = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
    con.close()
    assert 0 < partial < total, "the kill did not land mid-ingest"
    con = connect(db, read_only=True)
    stored_before = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
    ledger_before = con.execute(
        "SELECT coalesce(sum(Stored), 0) FROM faultlens_ingest_ledger"
    ).fetchone()[0]
    con.close()
    assert stored_before == ledger_before  # whole batches or nothing
    report = ingest(path, db=db)
    assert (report.read, report.stored + report.duplicates) == (total, total)
    assert report.duplicates == stored_before
    con = connect(db, read_only=True)
    assert con.execute(
        "SELECT count(*), count(DISTINCT (TraceId, SpanId)) FROM otel_traces"
    ).fetchone() == (total, total)


@pytest.mark.parametrize("fmt", ["jsonl", "protobuf"])
def test_repeated_attribute_maps_stored_exactly(tmp_path: Path, fmt: str) -> None:
    # The store hands repeated maps to DuckDB as a dictionary; values must not change.
    spans = _sdk_spans(40)
    path = _write_formats(tmp_path, spans)[fmt]
    con = connect(":memory:")
    ingest(path, db=con)
    stored = con.execute(
        "SELECT SpanId, SpanAttributes FROM otel_traces ORDER BY SpanId"
    ).fetchall()
    expected = sorted(
        (format(s.context.span_id, "016x"), {k: str(v) for k, v in s.attributes.items()})
        for s in spans
    )
    assert stored == expected


def test_an_error_mid_ingest_is_raised_and_stops_the_reader(tmp_path: Path, monkeypatch) -> None:
    import threading

    from faultlens.analyzer.decode._files import chunks
    from faultlens.analyzer.serve import _ingest as _ingest

    line = _json_line(encode_spans(_sdk_spans())) + b"\n"
    path = tmp_path / "many.jsonl"
    path.write_bytes(line * 40)
    monkeypatch.setattr(
        _ingest, "_all_chunks", lambda files: chunks(files[0], chunk_bytes=len(line))
    )
    monkeypatch.setattr(TUNING, "batch_rows", 1)
    calls = []
    write_batch = _ingest.write_batch

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return write_batch(*args, **kwargs)

    monkeypatch.setattr(_ingest, "write_batch", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest(path, db=connect(":memory:"))
    assert [t.name for t in threading.enumerate() if t.name == "faultlens-read"] == []
