"""Blast radius over traces that hold more than one entry span."""

from __future__ import annotations

from pathlib import Path

import duckdb
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from otel_spans import MS, T0, System

import faultlens.analyzer as fa

S = 10**9


def _request(sysm: System, t: int, *, fault: bool, orphan: bool, also: str | None = None) -> None:
    """gateway -> model-a (and a model-b span of model ``also``); with ``orphan``, a
    feature-store span of the same trace whose parent was never recorded (its caller died
    before exporting): a second entry span."""
    with (
        sysm.span(
            "gateway",
            "POST /score",
            start=t,
            dur_ms=30,
            kind=SpanKind.SERVER,
            attrs={"http.route": "/score"},
            error=fault,
        ) as root,
        sysm.span("model-a", "predict a", start=t + MS, dur_ms=20, model="a", error=fault),
    ):
        if also:
            with sysm.span("model-b", "predict b", start=t + 2 * MS, dur_ms=5, model=also):
                pass
    if orphan:
        lost = SpanContext(
            root.get_span_context().trace_id,
            0xDEAD0000 + t % 10**6,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        s = sysm.tracer("feature-store").start_span(
            "GET /features",
            context=trace.set_span_in_context(NonRecordingSpan(lost)),
            kind=SpanKind.SERVER,
            start_time=t + 2 * MS,
            attributes={"http.route": "/features"},
        )
        s.end(end_time=t + 5 * MS)


def test_each_entry_request_counts_once_in_the_traffic_it_is_a_share_of(tmp_path: Path) -> None:
    """Traffic = the entry requests in the window, each once.

    Joining each request's (dimension, key) rows back to the requests by trace counted a
    trace with k entry spans k*k times (the crash monolith: 388 requests where its window
    holds 368), which understated the share of traffic the incident hit.
    """
    sysm = System()
    for k in range(240):  # 60 s at 4 requests/s; model-a fails from 30 s to 45 s
        t = T0 + k * S // 4
        _request(sysm, t, fault=30 * S <= t - T0 < 45 * S, orphan=k % 3 == 0)
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    (inc,) = fa.open(db).incidents()
    assert (inc.culprit.service, inc.culprit.model) == ("model-a", "a")
    bucket = 5 * S
    lo, hi = max(inc.onset_ns - bucket, inc.baseline_start_ns + bucket), inc.end_ns + bucket
    with duckdb.connect(str(db), read_only=True) as con:
        entries, traces = con.execute(
            """SELECT count(*), count(DISTINCT TraceId) FROM otel_traces
               WHERE (ParentSpanId = '' OR SpanName = 'GET /features')
                 AND epoch_ns(Timestamp) >= ? AND epoch_ns(Timestamp) < ?""",
            [lo, hi],
        ).fetchone()
    assert entries > traces  # the window does hold traces with two entry spans
    assert inc.blast.total == entries
    assert inc.blast.requests == 60  # every gateway request of the 15 s fault
    assert inc.blast.share == round(60 / entries, 6)


def test_a_model_name_holding_a_control_character_is_analysed(tmp_path: Path) -> None:
    """What a trace touched is stored as text with control characters between fields; a
    name holding one is left out of the exposure counts, never a crash."""
    sysm = System()
    for k in range(240):
        t = T0 + k * S // 4
        _request(sysm, t, fault=30 * S <= t - T0 < 45 * S, orphan=False, also="b\x1fc")
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    (inc,) = fa.open(db).incidents()
    assert (inc.culprit.service, inc.culprit.model) == ("model-a", "a")
    assert inc.blast.requests == 60


def test_excess_over_a_noisy_baseline_and_refused_requests_that_never_touched_the_culprit(
    tmp_path: Path,
) -> None:
    """The incident runs to the end of the data (no traffic after it). /score (1/s, model
    a) fails every other request at baseline and every request during the incident: its
    excess is the incident's bad requests beyond the baseline's rate. /rank (4/s, model b,
    another process) stops answering at the onset and leaves no span: its refused requests
    never touched model a, so each is collateral."""
    from faultlens.analyzer.analysis._impact import blast_radius
    from faultlens.analyzer.facts._stored import open_stored_facts
    from faultlens.analyzer.store._dialect import DUCKDB, BoundConnection

    sysm = System()
    onset, end = T0 + 20 * S, T0 + 60 * S
    for k in range(60):
        t = T0 + k * S
        with (
            sysm.span("gateway", "POST /score", start=t, dur_ms=30, kind=SpanKind.SERVER,
                      attrs={"http.route": "/score"}, error=t >= onset or k % 2 == 0),
            sysm.span("model-a", "predict a", start=t + MS, dur_ms=20, model="a"),
        ):  # fmt: skip
            pass
    for k in range(80):  # /rank at 4/s, until the onset
        t = T0 + k * S // 4 + S // 8
        with (
            sysm.span("ranker", "POST /rank", start=t, dur_ms=30, kind=SpanKind.SERVER,
                      attrs={"http.route": "/rank"}),
            sysm.span("ranker", "predict b", start=t + MS, dur_ms=20, model="b"),
        ):  # fmt: skip
            pass
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    with duckdb.connect(str(db)) as con:
        assert open_stored_facts(con, DUCKDB, run=None) is not None
        (run,) = con.execute("SELECT DISTINCT run FROM fl_requests").fetchone()
        blast = blast_radius(
            BoundConnection(con, DUCKDB), DUCKDB, run=run, base_start=T0, onset=onset, end=end,
            collateral_of=("model", "a"), slo_ms=10_000.0,
        )  # fmt: skip
    # /score: 40 bad beyond a 1-in-2 rate: 20. All traffic: 40 bad beyond its baseline
    # rate (10 of 100): 36. /rank: 155 refused (4/s over the 39 s the data covers, less
    # the shortfall's share of what /score kept), every one collateral.
    assert (blast.requests, blast.total, blast.collateral) == (36 + 155, 40 + 155, 155)
    rows = blast.breakdown[["dimension", "key", "requests", "collateral"]]
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        ("endpoint", "/rank", 155, 155),
        ("endpoint", "/score", 20, 0),
        ("model", "b", 155, 155),
        ("model", "a", 20, 0),
        ("service", "ranker", 155, 155),
        ("service", "gateway", 20, 0),
        ("service", "model-a", 20, 0),
    ]
