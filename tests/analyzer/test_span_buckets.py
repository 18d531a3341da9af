"""Span and log sums per bucket against the spans and log records they sum.

An incident reads its spans as sums per 5 s bucket instead of scanning them. Its
baseline starts at the run's first entry request at the earliest, which may fall inside
a bucket: spans that began before it in that bucket (a callee's clock running behind its
caller's) must stay out, as they do when the spans themselves are filtered by time.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from opentelemetry.trace import SpanKind
from otel_spans import MS, T0, System

import faultlens.analyzer as fa
from faultlens.analyzer.analysis import _evidence as _evidence

S = 10**9
COLUMNS = ["service", "model", "bucket_start", "spans", "errors", "origin_errors", "self_ns"]


def _requests(sysm: System) -> None:
    """40 requests every 250 ms from 2.5 s into a bucket; model-a fails from 7.5 s. The
    first request's model-a span starts 100 ms before its caller (a skewed clock)."""
    for k in range(40):
        t = T0 + 5 * S // 2 + k * S // 4
        with sysm.span(
            "gateway",
            "POST /score",
            start=t,
            dur_ms=40,
            kind=SpanKind.SERVER,
            attrs={"http.route": "/score"},
        ):
            skew = -100 * MS if k == 0 else MS
            with sysm.span(
                "model-a", "predict a", start=t + skew, dur_ms=20, model="a", error=k >= 20
            ):
                pass


def _views(a: fa.Analysis, *, base_start: int, onset: int, end: int) -> dict:
    """Both views' evidence of an incident of run unit/run over [base_start, end)."""
    runs, n_models = a._pipeline.run_facts
    return _evidence.collect_views(
        a.con,
        a.d,
        run="unit/run",
        base_start=base_start,
        onset=onset,
        end=end,
        bucket_ns=a.settings.bucket_ns,
        slo_ms=None,
        log_buckets=a._pipeline.log_sums,
        runs=runs,
        n_models=n_models,
    )


@pytest.mark.parametrize("bucket_s", [5.0, 10.0])  # stored sums; derived at another bucket
def test_incident_span_sums_are_those_of_its_spans(tmp_path: Path, bucket_s: float) -> None:
    sysm = System()
    _requests(sysm)
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    a = fa.open(db, bucket_s=bucket_s)
    assert a._tables.span_buckets(a.settings.bucket_ns) is (bucket_s == 5.0)
    bns = a.settings.bucket_ns
    lo = int(a.con.execute("SELECT min(ts) FROM fl_requests").fetchone()[0])
    assert lo == T0 + 5 * S // 2 and lo % bns  # the baseline starts inside a bucket
    onset, end = T0 + 2 * bns, T0 + 3 * bns
    views = _views(a, base_start=lo, onset=onset, end=end)

    def raw(since: int) -> pd.DataFrame:
        return a.con.execute(
            f"""SELECT cand_service AS service, cand_model AS model,
                       ts // {bns} * {bns} AS bucket_start, count(*) AS spans,
                       sum(is_err) AS errors,
                       sum(CASE WHEN is_err = 1 AND child_err = 0 AND stalled = 0
                                THEN 1 ELSE 0 END) AS origin_errors,
                       sum(greatest(dur - child_dur, 0)) AS self_ns
                FROM fl_spans WHERE ts >= {since} AND ts < {end} GROUP BY ALL"""
        ).df()

    def rows(frame: pd.DataFrame) -> list[tuple]:
        f = frame[COLUMNS].astype({c: "int64" for c in COLUMNS[2:]})
        f["model"] = f["model"].astype(object).where(f["model"].notna(), None)
        return sorted(f.itertuples(index=False, name=None), key=repr)

    expected = raw(lo)
    # The skewed span sits in the first bucket, before the first request: it counts when
    # the whole bucket is read, and must not.
    assert rows(raw(lo // bns * bns)) != rows(expected)
    assert rows(views["model_aware"].spans) == rows(expected)
    # The service-only view: the same rows without their model.
    only = expected.assign(model=None)
    got = views["service_only"].spans
    assert got.model.isna().all()
    for column in COLUMNS[3:]:
        assert got.groupby("service")[column].sum().to_dict() == pytest.approx(
            only.groupby("service")[column].sum().to_dict()
        )
    # Every candidate a span spoke for, whatever the window.
    assert sorted(a._pipeline.run_facts[0]["unit/run"].candidates, key=repr) == sorted(
        a.con.execute("SELECT DISTINCT cand_service, cand_model FROM fl_spans").fetchall(),
        key=repr,
    )


LOG_COLUMNS = ["service", "model", "bucket_start", "warn_logs", "error_logs", "fatal_logs"]


def test_incident_log_sums_are_those_of_its_log_records(tmp_path: Path) -> None:
    """The log sums an incident reads (one aggregate of ``otel_logs`` per analysis) are
    its warning (13-16), error (17-20) and fatal (21+) records per bucket; a record
    without a model speaks for its service's only model; a warning before the run's first
    request, inside the baseline's first bucket, stays out; the evidence volume counts
    every record of the service during the incident, whatever its severity."""
    sysm = System()
    _requests(sysm)  # model-a runs model a; the first request at 2.5 s
    for at_ms, severity, model in (
        (2000, 13, None),  # before the first request: out
        (3000, 13, None),  # the only model's: a
        (6000, 17, "a"),
        (8000, 21, "a"),
        (11000, 9, None),  # info: read as evidence, not as a signal
        (12000, 13, None),
    ):
        sysm.log("model-a", f"sev {severity}", ts=T0 + at_ms * MS, severity=severity, model=model)
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    a = fa.open(db)
    assert a._tables.span_buckets(a.settings.bucket_ns)
    bns = a.settings.bucket_ns
    lo = int(a.con.execute("SELECT min(ts) FROM fl_requests").fetchone()[0])
    onset, end = T0 + 2 * bns, T0 + 3 * bns
    views = _views(a, base_start=lo, onset=onset, end=end)
    got = views["model_aware"].logs[LOG_COLUMNS].astype({c: "int64" for c in LOG_COLUMNS[2:]})
    assert sorted(got.itertuples(index=False, name=None)) == [
        ("model-a", "a", T0, 1, 0, 0),
        ("model-a", "a", T0 + bns, 0, 1, 1),
        ("model-a", "a", T0 + 2 * bns, 1, 0, 0),
    ]
    logs = a._pipeline.log_sums
    kw = dict(run="unit/run", onset=onset, end=end, service="model-a")
    assert _evidence.logs_in(logs, **kw, model=None) == 2
    assert _evidence.logs_in(logs, **kw, model="a") == 0  # neither names its model
