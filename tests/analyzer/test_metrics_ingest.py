"""OTLP metrics in: the real OTel SDK's metrics, through the receiver (OTLP/HTTP protobuf from
the SDK's exporter, and the JSON file exporter's lines POSTed as JSON) and through files
(`ingest`), checked field by field against what the SDK handed its exporters; then the same
guarantees as spans: exactly-once, the quarantine, the ledger, partialSuccess."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pytest
from opentelemetry.exporter.otlp.json.file.metric_exporter import FileMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    MetricsData,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from otel_spans import collect_process, stop

from faultlens.analyzer import connect, ingest

_TABLES = {
    Gauge: "otel_metrics_gauge",
    Sum: "otel_metrics_sum",
    Histogram: "otel_metrics_histogram",
    ExponentialHistogram: "otel_metrics_exponential_histogram",
}


class _RecordingOTLP(OTLPMetricExporter):
    """The real OTLP/HTTP exporter, keeping what the SDK handed it (the expected rows)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any):
        self.seen.append(metrics_data)
        return super().export(metrics_data, timeout_millis, **kw)


class _RecordingFile(FileMetricExporter):
    """The real OTLP JSON file exporter, keeping what the SDK handed it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.seen: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: Any):
        self.seen.append(metrics_data)
        return super().export(metrics_data, timeout_millis, **kw)


def _run_sdk(exporter: Any) -> list[MetricsData]:
    """Every instrument kind, recorded inside a sampled span (so there are exemplars),
    collected three times (cumulative: one row per series per collection)."""
    resource = Resource(
        {
            "service.name": "monolith",
            "service.instance.id": "i-7",
            "faultlens.layout": "monolith",
            "ml.model.name": "resource-model",
        },
        schema_url="https://opentelemetry.io/schemas/1.21.0",
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(instrument_name="latency.exp", aggregation=ExponentialBucketHistogramAggregation())
        ],
    )
    meter = provider.get_meter(
        "faultlens.test", "2.1", schema_url="https://x/scope", attributes={"team": "ml"}
    )
    tracer = TracerProvider().get_tracer("t")
    requests = meter.create_counter("requests", unit="{request}", description="requests served")
    cpu = meter.create_counter("cpu.time", unit="s")
    queue = meter.create_up_down_counter("queue.depth")
    latency = meter.create_histogram("latency", unit="ms")
    exp_latency = meter.create_histogram("latency.exp", unit="ms")
    temperature = meter.create_gauge("temperature")

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(41.5, {"ml.model.name": "ranker", "ok": True})]

    meter.create_observable_gauge("memory.rss", callbacks=[observe], unit="By")
    for round_ in range(3):
        with tracer.start_as_current_span("predict"):
            for i in range(5):
                model = ("fraud", "ranker")[i % 2]
                requests.add(1, {"ml.model.name": model, "ml.model.version": "3"})
                cpu.add(0.25 * (i + 1), {"ml.model.name": model, "share": 0.5})
                queue.add(-1 if i % 2 else 2, {"n": i})
                latency.record(3.0 * i + round_, {"ml.model.name": model})
                exp_latency.record(0.5 + i * 7.25)
                exp_latency.record(0.0)  # the zero bucket
                temperature.set(20 + i, {"room": "a"})
        assert provider.force_flush(30_000)
    provider.shutdown()
    return exporter.seen


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def _attrs(mapping: Any) -> dict[str, str]:
    return {k: _text(v) for k, v in (mapping or {}).items()}


def _exemplars(point: Any) -> dict[str, list]:
    ex = list(point.exemplars)
    return {
        "Exemplars.FilteredAttributes": [_attrs(e.filtered_attributes) for e in ex],
        "Exemplars.TimeUnix": [e.time_unix_nano for e in ex],
        "Exemplars.Value": [float(e.value) for e in ex],
        "Exemplars.SpanId": [format(e.span_id, "016x") if e.span_id else "" for e in ex],
        "Exemplars.TraceId": [format(e.trace_id, "032x") if e.trace_id else "" for e in ex],
    }


def _expected(batches: list[MetricsData]) -> dict[tuple, dict[str, Any]]:
    """What the exporter's tables should hold, from the SDK's own objects."""
    rows: dict[tuple, dict[str, Any]] = {}
    for batch in batches:
        for rm in batch.resource_metrics:
            res = _attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    data = metric.data
                    table = _TABLES[type(data)]
                    for point in data.data_points:
                        attrs = _attrs(point.attributes)
                        row = {
                            "ResourceAttributes": res,
                            "ResourceSchemaUrl": rm.schema_url,
                            "ScopeName": sm.scope.name,
                            "ScopeVersion": sm.scope.version,
                            "ScopeAttributes": _attrs(sm.scope.attributes),
                            "ScopeDroppedAttrCount": 0,
                            "ScopeSchemaUrl": sm.schema_url,
                            "ServiceName": res["service.name"],
                            "MetricName": metric.name,
                            "MetricDescription": metric.description or "",
                            "MetricUnit": metric.unit or "",
                            "Attributes": attrs,
                            "StartTimeUnix": point.start_time_unix_nano or 0,
                            "TimeUnix": point.time_unix_nano,
                            "ModelName": attrs.get("ml.model.name", res["ml.model.name"]),
                            "ModelVersion": attrs.get("ml.model.version"),
                            "ServiceInstanceId": "i-7",
                            "Layout": "monolith",
                        }
                        if isinstance(data, Gauge | Sum):
                            row.update(Value=float(point.value), Flags=0, **_exemplars(point))
                        if isinstance(data, Sum):
                            row["AggregationTemporality"] = data.aggregation_temporality.value
                            row["IsMonotonic"] = data.is_monotonic
                        if isinstance(data, Histogram):
                            row.update(
                                Count=point.count,
                                Sum=float(point.sum),
                                BucketCounts=list(point.bucket_counts),
                                ExplicitBounds=list(point.explicit_bounds),
                                Flags=0,
                                Min=float(point.min),
                                Max=float(point.max),
                                AggregationTemporality=data.aggregation_temporality.value,
                                **_exemplars(point),
                            )
                        if isinstance(data, ExponentialHistogram):
                            row.update(
                                Count=point.count,
                                Sum=float(point.sum),
                                Scale=point.scale,
                                ZeroCount=point.zero_count,
                                PositiveOffset=point.positive.offset,
                                PositiveBucketCounts=list(point.positive.bucket_counts),
                                NegativeOffset=point.negative.offset,
                                NegativeBucketCounts=list(point.negative.bucket_counts),
                                Flags=point.flags,
                                Min=float(point.min),
                                Max=float(point.max),
                                AggregationTemporality=data.aggregation_temporality.value,
                                **_exemplars(point),
                            )
                        key = (table, metric.name, tuple(sorted(attrs.items())), row["TimeUnix"])
                        rows[key] = row
    return rows


def _plain(value: Any) -> Any:
    """A stored value as comparable Python: maps as dicts, timestamps as integer ns."""
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return dict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _stored(con: Any) -> dict[tuple, dict[str, Any]]:
    rows: dict[tuple, dict[str, Any]] = {}
    for table in set(_TABLES.values()):
        arrow = con.sql(f"SELECT * FROM {table}").to_arrow_table()
        for name in arrow.column_names:
            if "TimeUnix" in name:  # ns timestamps as integers (Python datetimes lose ns)
                target = (
                    pa.int64() if name in ("TimeUnix", "StartTimeUnix") else pa.list_(pa.int64())
                )
                arrow = arrow.set_column(
                    arrow.column_names.index(name), name, arrow[name].cast(target)
                )
        for raw in arrow.to_pylist():
            row = {k: _plain(v) for k, v in raw.items()}
            row["Attributes"] = dict(raw["Attributes"])
            row["ResourceAttributes"] = dict(raw["ResourceAttributes"])
            row["ScopeAttributes"] = dict(raw["ScopeAttributes"])
            row["Exemplars.FilteredAttributes"] = [
                dict(m) for m in row["Exemplars.FilteredAttributes"]
            ]
            key = (table, row["MetricName"], tuple(sorted(row["Attributes"].items())))
            rows[(*key, row["TimeUnix"])] = row
    return rows


def _assert_same(expected: dict[tuple, dict], stored: dict[tuple, dict]) -> None:
    assert set(stored) == set(expected)
    for key, want in expected.items():
        got = stored[key]
        assert len(got.pop("PointId")) == 32
        assert got == want, key
    # Every kind and the parts that only some points have were exercised.
    tables = {key[0] for key in expected}
    assert tables == set(_TABLES.values())
    assert any(row["Exemplars.TraceId"] for row in expected.values())
    assert any(row.get("ZeroCount") for row in expected.values())


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    db = tmp_path / "r.duckdb"
    with collect_process(db) as (url, proc):
        yield url, db, proc


def test_sdk_metrics_through_the_receiver_field_by_field(receiver, tmp_path: Path) -> None:
    url, db, proc = receiver
    sent = _run_sdk(_RecordingOTLP(endpoint=f"{url}/v1/metrics"))
    # The JSON file exporter's lines, POSTed as OTLP/JSON bodies (the receiver's JSON path).
    lines_file = tmp_path / "m.jsonl"
    written = _run_sdk(_RecordingFile(lines_file))
    with httpx.Client(base_url=url, timeout=10) as client:
        for line in lines_file.read_bytes().splitlines():
            r = client.post(
                "/v1/metrics", content=line, headers={"content-type": "application/json"}
            )
            assert (r.status_code, r.json()) == (200, {})
    stop(proc)
    con = connect(db, read_only=True)
    expected = {**_expected(sent), **_expected(written)}
    _assert_same(expected, _stored(con))
    assert con.execute(
        "SELECT Signal, sum(Read), sum(Stored), sum(Duplicates), sum(Quarantined) "
        "FROM faultlens_ingest_ledger GROUP BY Signal"
    ).fetchall() == [("metrics", len(expected), len(expected), 0, 0)]


def test_sdk_metrics_file_ingest_field_by_field_exactly_once(tmp_path: Path) -> None:
    lines_file = tmp_path / "metrics.jsonl"
    written = _run_sdk(_RecordingFile(lines_file))
    db = tmp_path / "f.duckdb"
    first = ingest([lines_file], db=db)
    expected = _expected(written)
    assert (first.read, first.stored, first.data_points, first.errors) == (
        len(expected),
        len(expected),
        len(expected),
        (),
    )
    again = ingest([lines_file], db=db)
    assert (again.stored, again.duplicates) == (0, len(expected))
    con = connect(db, read_only=True)
    _assert_same(expected, _stored(con))


def _summary_and_bad_points() -> metrics_pb2.MetricsData:
    """Kinds no Python SDK instrument produces (a summary, a metric without data) and
    invalid points, beside a good one: built as the protobuf the Collector would send."""
    data = metrics_pb2.MetricsData()
    rm = data.resource_metrics.add()
    attr = rm.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "legacy"
    sm = rm.scope_metrics.add()
    summary = sm.metrics.add(name="rpc.duration", unit="s")
    point = summary.summary.data_points.add(
        start_time_unix_nano=1_700_000_000_000_000_000,
        time_unix_nano=1_700_000_010_000_000_000,
        count=4,
        sum=2.5,
    )
    point.quantile_values.add(quantile=0.5, value=0.5)
    point.quantile_values.add(quantile=0.99, value=1.25)
    sm.metrics.add(name="empty")  # no gauge/sum/histogram: quarantined, not dropped
    histogram = sm.metrics.add(name="h")
    histogram.histogram.data_points.add(
        time_unix_nano=1_700_000_010_000_000_000, bucket_counts=[1, 2], explicit_bounds=[1.0]
    )
    histogram.histogram.data_points.add(
        time_unix_nano=1_700_000_010_000_000_000, bucket_counts=[1, 2, 3], explicit_bounds=[1.0]
    )
    gauge = sm.metrics.add(name="g")
    gauge.gauge.data_points.add(time_unix_nano=1 << 63, as_double=1.0)
    bad_exemplar = gauge.gauge.data_points.add(time_unix_nano=5, as_int=3)
    bad_exemplar.exemplars.add(span_id=b"\x01\x02", as_double=1.0)
    return data


def test_summary_is_stored_and_bad_points_are_quarantined_one_line_each(tmp_path: Path) -> None:
    pb = tmp_path / "metrics.pb"
    pb.write_bytes(_summary_and_bad_points().SerializeToString())
    db = tmp_path / "s.duckdb"
    report = ingest([pb], db=db)
    where = f"{pb}@byte 0 resourceMetrics[0].scopeMetrics[0]"
    assert report.errors == (
        f"{where}.metrics[1]: metric 'empty' has no data (no gauge/sum/histogram)",
        f"{where}.metrics[2].dataPoints[1]: bucketCounts has 3 entries for 1 explicitBounds",
        f"{where}.metrics[3].dataPoints[0]: timeUnixNano is out of range",
        f"{where}.metrics[3].dataPoints[1]: an exemplar's spanId/traceId is not 8/16 bytes",
    )
    assert (report.read, report.stored, report.quarantined) == (6, 2, 4)
    con = connect(db, read_only=True)
    assert con.execute(
        'SELECT MetricName, Count, Sum, "ValueAtQuantiles.Quantile", "ValueAtQuantiles.Value", '
        "epoch_ns(StartTimeUnix), ServiceName FROM otel_metrics_summary"
    ).fetchall() == [
        ("rpc.duration", 4, 2.5, [0.5, 0.99], [0.5, 1.25], 1_700_000_000_000_000_000, "legacy")
    ]
    assert con.execute(
        "SELECT BucketCounts, ExplicitBounds, Sum, Min, Max FROM otel_metrics_histogram"
    ).fetchall() == [([1, 2], [1.0], 0.0, 0.0, 0.0)]
    assert con.execute("SELECT count(*) FROM faultlens_quarantine").fetchone() == (4,)
    assert con.execute(
        "SELECT sum(Read), sum(Stored) + sum(Duplicates) + sum(Quarantined) "
        "FROM faultlens_ingest_ledger WHERE Signal = 'metrics'"
    ).fetchone() == (6, 6)


def test_receiver_partial_success_for_metrics(receiver) -> None:
    url, db, proc = receiver
    good = {
        "name": "g",
        "gauge": {"dataPoints": [{"timeUnixNano": "1700000000000000000", "asDouble": 1.5}]},
    }
    bad = {
        "name": "g2",
        "gauge": {
            "dataPoints": [
                {"timeUnixNano": "5", "asInt": "2", "exemplars": [{"spanId": "zz"}]},
                {"timeUnixNano": "6", "asInt": "3"},
            ]
        },
    }
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [good, bad, {"name": "x"}]}]}]}
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post(
            "/v1/metrics", content=orjson.dumps(body), headers={"content-type": "application/json"}
        )
        assert r.status_code == 200
        partial = r.json()["partialSuccess"]
        assert partial["rejectedDataPoints"] == "3"
        assert (
            "metrics[1].dataPoints[1]: metric does not parse (an exemplar's spanId is not hex)"
            in (partial["errorMessage"])
        )
        r = client.post(
            "/v1/metrics",
            content=b"\x0a\x03abc",
            headers={"content-type": "application/x-protobuf"},
        )
        assert r.status_code == 400
        empty = metrics_pb2.MetricsData().SerializeToString()
        r = client.post(
            "/v1/metrics", content=empty, headers={"content-type": "application/x-protobuf"}
        )
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    stop(proc)
    con = connect(db, read_only=True)
    assert con.execute("SELECT MetricName, Value FROM otel_metrics_gauge").fetchall() == [
        ("g", 1.5)
    ]
    assert con.execute(
        "SELECT sum(Read), sum(Stored), sum(Quarantined) FROM faultlens_ingest_ledger"
    ).fetchone() == (4, 1, 3)
