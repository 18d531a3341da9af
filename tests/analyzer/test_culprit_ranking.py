"""Culprit ranking on small systems built through the OTel SDK: the cause ranks first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from opentelemetry.trace import SpanKind
from otel_spans import MS, T0, System

import faultlens.analyzer as fa

S = 10**9


def _gateway_chain(
    sysm: System,
    t: int,
    *,
    slow_ms: float = 0.0,
    timeout: bool = False,
    a_version: str = "1.0",
    b_fails: bool = False,
    a_ms: float = 8,
) -> None:
    """gateway -> model-a -> model-b (vertical); model-b may be slow, may fail on a's output."""
    b_ms = 5 + slow_ms
    gw_ms = 40 if not timeout else 1000
    with (
        sysm.span(
            "gateway",
            "POST /score",
            start=t,
            dur_ms=gw_ms,
            kind=SpanKind.SERVER,
            attrs={"http.route": "/score"},
            error=timeout or b_fails,
        ),
        sysm.span(
            "gateway",
            "POST",
            start=t + MS,
            dur_ms=gw_ms - 2,
            kind=SpanKind.CLIENT,
            attrs={"http.url": "http://127.0.0.1:9001/predict"},
            error=timeout or b_fails,
        ),
    ):
        with sysm.span(
            "model-a",
            "POST /predict",
            start=t + 2 * MS,
            dur_ms=a_ms,
            kind=SpanKind.SERVER,
            model="a",
            version=a_version,
        ):
            pass
        with (
            sysm.span(
                "model-b",
                "POST /predict",
                start=t + 11 * MS,
                dur_ms=b_ms,
                kind=SpanKind.SERVER,
                model="b",
                version="2.0",
                error=b_fails,
            ),
            sysm.span(
                "model-b",
                "predict b",
                start=t + 12 * MS,
                dur_ms=b_ms - 2,
                model="b",
                version="2.0",
                error=b_fails,
            ),
        ):
            pass


def _run(tmp_path: Path, build) -> fa.Incident:
    sysm = System()
    for k in range(240):  # 60 s at 4 requests/s; the fault from 30 s to 45 s
        t = T0 + k * S // 4
        build(sysm, t, 30 * S <= t - T0 < 45 * S)
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    incs = fa.open(db).incidents()
    assert len(incs) == 1, [i.id for i in incs]
    return incs[0]


def _answer(inc: fa.Incident) -> dict:
    """What a person reads: the ranking with scores and evidence, and both views' FIT,
    suspects and evidence volume."""
    doc = inc.to_dict()
    return {"candidates": doc["candidates"], "fault_isolation": doc["fault_isolation"]}


def _candidate(rank: int, service: str, model: str | None, score: float, *evidence: str) -> dict:
    version = {"a": "1.0", "b": "2.0"}.get(model or "")
    return {
        "rank": rank,
        "service": service,
        "model": model,
        "version": version,
        "score": score,
        "evidence": list(evidence) or ["no departure from baseline"],
    }


def _views(seconds: float | None, suspects: int, spans: int, logs: int = 0) -> dict:
    """Both views alike, the culprit's model named (isolated) in both."""
    one = {"seconds": seconds, "suspects": suspects, "evidence_spans": spans, "evidence_logs": logs}
    return {
        "model_aware": one | {"isolates_model": True},
        "service_only": one | {"isolates_model": True},
    }


def test_slow_callee_ranks_first_though_the_caller_carries_the_errors(tmp_path: Path) -> None:
    """The whole answer, scores included. model-b's two spans per request, 4 requests/s for
    the 15 s of the fault, are the evidence to read: 120 spans (the fault's end bucket, where
    traffic goes on, is not in it). The gateway completes half its spans per second while
    its calls time out: exactly the silence threshold, against a 30 s (six-bucket) baseline;
    self-time outweighs origin errors (3 to 2)."""
    inc = _run(
        tmp_path, lambda s, t, bad: _gateway_chain(s, t, slow_ms=1500 if bad else 0, timeout=bad)
    )
    assert inc.onset_ns == T0 + 30 * S
    assert inc.blast.requests == 60 and inc.blast.collateral == 0
    assert _answer(inc) == {
        "candidates": [
            _candidate(
                1,
                "model-b",
                "b",
                5.9048,
                "origin errors (error spans with no erroring child): baseline 0.00/s, "
                "incident 4.00/s",
                "self-time per span: baseline 2.5 ms, incident 501.7 ms",
                "changed first among the candidates: origin errors and self-time, in the 5 s "
                "bucket at onset +0 s (08:00:30 UTC)",
            ),
            _candidate(
                2,
                "gateway",
                None,
                0.75,
                "spans per second: baseline 8.0, incident 4.0 (fell silent)",
            ),
            _candidate(3, "model-a", "a", 0.0),
        ],
        "fault_isolation": _views(5.0, 1, 120),
    }


def test_upstream_version_change_outranks_the_downstream_model_that_fails(tmp_path: Path) -> None:
    inc = _run(
        tmp_path,
        lambda s, t, bad: _gateway_chain(s, t, a_version="1.1" if bad else "1.0", b_fails=bad),
    )
    assert [(c.service, c.model, c.version) for c in inc.candidates[:1]] == [
        ("model-a", "a", "1.1")
    ]
    assert any("version change 1.0 -> 1.1" in e for e in inc.candidates[0].evidence)


def test_error_burst_in_one_model_names_it(tmp_path: Path) -> None:
    inc = _run(tmp_path, lambda s, t, bad: _gateway_chain(s, t, b_fails=bad))
    assert (inc.culprit.service, inc.culprit.model) == ("model-b", "b")
    assert any(e.startswith("origin errors") for e in inc.culprit.evidence)
    # model-b's 2 spans x 4 requests/s x 15 s, in the first bucket already.
    assert _answer(inc)["fault_isolation"] == _views(5.0, 1, 120)


def _fan_out(sysm: System, t: int, bad: bool) -> None:
    """gateway -> model-a and gateway -> model-b (horizontal); both fail alike while bad."""
    with sysm.span(
        "gateway", "POST /score", start=t, dur_ms=30, kind=SpanKind.SERVER,
        attrs={"http.route": "/score"}, error=bad,
    ):  # fmt: skip
        for i, m in enumerate("ab"):
            with (
                sysm.span(
                    "gateway",
                    "POST",
                    start=t + (1 + 12 * i) * MS,
                    dur_ms=10,
                    kind=SpanKind.CLIENT,
                    attrs={"http.url": f"http://127.0.0.1:900{i}/predict"},
                    error=bad,
                ),
                sysm.span(
                    f"model-{m}",
                    "POST /predict",
                    start=t + (2 + 12 * i) * MS,
                    dur_ms=8,
                    kind=SpanKind.SERVER,
                    model=m,
                    version=f"{i + 1}.0",
                    error=bad,
                ),
            ):
                pass


def test_a_fatal_log_outweighs_error_logs_and_the_close_rival_stays_a_suspect(
    tmp_path: Path,
) -> None:
    """Two models fail alike; model-a logs three errors, model-b one fatal record. A fatal
    record weighs five errors: model-b ranks first, and model-a, within 10% of its score
    (relative margin; 0.2 below it), is still a suspect in both views."""
    sysm = System()
    for k in range(240):
        t = T0 + k * S // 4
        _fan_out(sysm, t, 30 * S <= t - T0 < 45 * S)
    for i in range(3):
        sysm.log("model-a", "predict failed", ts=T0 + (31 + i) * S, severity=17, model="a")
    sysm.log("model-b", "predict aborted", ts=T0 + 33 * S, severity=21, model="b")
    # A process that logs without tracing is no candidate, and its errors move nothing.
    sysm.log("log-shipper", "queue full", ts=T0 + 32 * S, severity=17)
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    (inc,) = fa.open(db).incidents()
    origin = "origin errors (error spans with no erroring child): baseline 0.00/s, incident 4.00/s"
    first = (
        "changed first among the candidates: origin errors and warning/error logs, in the 5 s "
        "bucket at onset +0 s (08:00:30 UTC); 1 other candidate departed in it too"
    )
    b = _candidate(
        1,
        "model-b",
        "b",
        2.343,
        origin,
        "warning/error/fatal logs: baseline 0/0/0, incident 0/0/1",
        first,
    )
    a = _candidate(
        2,
        "model-a",
        "a",
        2.1399,
        origin,
        "warning/error/fatal logs: baseline 0/0/0, incident 0/3/0",
    )
    assert _answer(inc) == {
        "candidates": [b, a, _candidate(3, "gateway", None, 0.0)],
        # model-b's one span per request for 15 s; its one log record.
        "fault_isolation": _views(5.0, 2, 60, 1),
    }


@pytest.mark.parametrize("store_form", ["Server", "SPAN_KIND_SERVER"])
def test_enum_forms_are_both_read(tmp_path: Path, store_form: str) -> None:
    sysm = System()
    for k in range(240):
        t = T0 + k * S // 4
        _gateway_chain(sysm, t, b_fails=30 * S <= t - T0 < 45 * S)
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    con = fa.connect(db)
    if store_form != "Server":
        con.execute(
            "UPDATE otel_traces SET SpanKind = 'SPAN_KIND_' || upper(SpanKind), "
            "StatusCode = 'STATUS_CODE_' || upper(StatusCode)"
        )
    inc = fa.open(con).incidents()[0]
    assert (inc.culprit.service, inc.culprit.model, inc.blast.requests) == ("model-b", "b", 60)


def test_only_a_scope_with_an_established_rate_falls_silent() -> None:
    """A burst in one bucket then nothing (a crash's orphaned spans) is no traffic baseline.

    At 22x the sample's traffic such a burst passed the volume bar alone and made a
    second, empty incident; a scope busy bucket after bucket that stops still departs.
    """
    from faultlens.analyzer._settings import DetectionSettings
    from faultlens.analyzer.analysis._detect import Window, abnormal_windows

    st = DetectionSettings()
    b = st.bucket_ns
    rows = [("burst", 0, 44)] + [("steady", i, 40) for i in range(4)]
    rows += [("other", i, 40) for i in range(5)]  # the run goes on for one more bucket
    series = pd.DataFrame(
        [
            {"run": "r", "scope": "endpoint", "key": k, "bucket_start": i * b, "requests": n}
            for k, i, n in rows
        ]
    ).assign(errors=0, p95_ms=1.0)
    got = abnormal_windows(series, st, bounds={"r": (0, 5 * b - 1)})
    assert got == [Window("r", "endpoint", "steady", 4 * b, 5 * b, "traffic")]


def _absence_evidence(view: str, incident: dict[str, int]) -> object:
    """Three models in one process, 10 completed spans each per baseline bucket."""
    from faultlens.analyzer.analysis._evidence import Evidence

    b = 5_000_000_000
    rows = [("app", m, i * b, 10, 0) for m in "abc" for i in range(4)]
    rows += [("app", m, 4 * b, n, 0) for m, n in incident.items()]
    spans = pd.DataFrame(rows, columns=["service", "model", "bucket_start", "spans", "errors"])
    empty = pd.DataFrame()
    return Evidence(
        view=view,
        onset_ns=4 * b,
        bucket_ns=b,
        buckets=pd.Series([4 * b]).to_numpy(),
        candidates=empty,
        spans=spans,
        logs=empty,
        exposure=empty,
        bad_totals=pd.Series(dtype=int),
        versions=empty,
        restarts=empty,
        base_buckets=4,
    )


def test_a_window_with_as_many_error_as_latency_buckets_takes_the_first_signal() -> None:
    """The window's signal is the most frequent one, a tie going to the one seen first.

    It was ``max(set(signals), ...)``: on a tie the answer followed the set's order, which
    string hashing changes from one process to the next (the 10M benchmark's memory-leak
    monolith listed ``endpoint:/search`` as errors in one run and latency in the next).
    """
    from faultlens.analyzer.analysis._detect import _runs_of

    assert _runs_of(["latency", "errors", None]) == [(0, 1, "latency")]
    assert _runs_of(["errors", "latency", None]) == [(0, 1, "errors")]
    assert _runs_of([None, "errors", "latency", "latency"]) == [(1, 3, "latency")]


def test_absence_leaves_the_model_that_stopped_completing_while_the_others_went_on() -> None:
    from faultlens.analyzer.analysis._localize import left_by_absence

    got = {
        "one stopped": left_by_absence(
            _absence_evidence("model_aware", {"a": 10, "b": 10, "c": 1}), "app"
        ),
        "all stopped (a dead process tells nothing)": left_by_absence(
            _absence_evidence("model_aware", {"a": 0, "b": 0, "c": 0}), "app"
        ),
        "half rate is no absence": left_by_absence(
            _absence_evidence("model_aware", {"a": 10, "b": 10, "c": 5}), "app"
        ),
        "no model identity": left_by_absence(
            _absence_evidence("service_only", {"a": 10, "b": 10, "c": 1}), "app"
        ),
    }
    assert got == {
        "one stopped": ("c",),
        "all stopped (a dead process tells nothing)": (),
        "half rate is no absence": (),
        "no model identity": (),
    }


def _stalled_monolith(sysm: System, t: int, bad: bool) -> None:
    """One process, two models: ``hog`` holds the process (GIL) for 300 ms a call while
    bad; ``scorer`` calls a store that answers in 2 ms, but its stalled caller only takes
    the answer after its 250 ms timeout, so every other scorer call fails."""
    hog = (t - T0) // (S // 4) % 2 == 0
    route = "/hog" if hog else "/score"
    stalled = bad and not hog and (t - T0) // (S // 2) % 2 == 0
    dur = (305 if bad else 6) if hog else (260 if stalled else 8)
    with sysm.span(
        "mono", f"POST {route}", start=t, dur_ms=dur, kind=SpanKind.SERVER,
        attrs={"http.route": route}, error=stalled,
    ):  # fmt: skip
        if hog:
            with sysm.span("mono", "predict hog", start=t + MS, dur_ms=dur - 2, model="hog"):
                pass
            return
        with (
            sysm.span(
                "mono",
                "predict scorer",
                start=t + MS,
                dur_ms=dur - 2,
                model="scorer",
                error=stalled,
            ),  # fmt: skip
            sysm.span(
                "mono",
                "GET",
                start=t + 2 * MS,
                dur_ms=dur - 4,
                kind=SpanKind.CLIENT,
                model="scorer",
                error=stalled,
                attrs={"http.url": "http://127.0.0.1:9100/f"},
            ),  # fmt: skip
            sysm.span("store", "GET /f", start=t + 3 * MS, dur_ms=2, kind=SpanKind.SERVER),
        ):
            pass


def test_a_process_stall_names_the_model_that_held_it_not_the_callers_that_timed_out(
    tmp_path: Path,
) -> None:
    """The store answered each call in time: a caller failing after that did not originate
    an error, its process stalled; the model whose own time grew is the culprit."""
    inc = _run(tmp_path, _stalled_monolith)
    top = inc.candidates[0]
    assert (top.service, top.model) == ("mono", "hog"), inc.candidates[:3]
    scorer = next(c for c in inc.candidates if c.model == "scorer")
    assert not any(e.startswith("origin errors") for e in scorer.evidence), scorer


def _ranked(*rows: tuple[str, str | None, float]) -> pd.DataFrame:
    """A ranking's rows: (service, model, score); ``mono`` runs three models."""
    return pd.DataFrame(
        {
            "service": [s for s, _, _ in rows],
            "model": [m for _, m, _ in rows],
            "n_models": [3 if s == "mono" else 0 for s, _, _ in rows],
            "score": [sc for _, _, sc in rows],
        }
    )


def test_suspects_are_counted_as_a_person_would_check_them() -> None:
    """Within 10% of the top score. A process's own entry counts each model it runs, unless
    some of its models are in the margin themselves; absence may narrow an unknown model
    to the ones that stopped; with no evidence at all, everything is a suspect."""
    from faultlens.analyzer.analysis._localize import suspects

    got = {
        "process and one of its models close: the model": suspects(
            _ranked(
                ("mono", None, 2.0), ("mono", "a", 1.9), ("gw", None, 1.85), ("mono", "b", 1.0)
            ),
            "model_aware",
        ),
        "process close, none of its models: all three": suspects(
            _ranked(("mono", None, 2.0), ("gw", None, 1.9), ("mono", "a", 1.0)), "model_aware"
        ),
        "service-only: a process counts its models": suspects(
            _ranked(("mono", None, 2.0), ("gw", None, 1.9), ("store", None, 0.5)), "service_only"
        ),
        "no evidence, service-only": suspects(
            _ranked(("mono", None, 0.0), ("gw", None, 0.0), ("store", None, 0.0)), "service_only"
        ),
        "no evidence, model-aware": suspects(
            _ranked(("mono", None, 0.0), ("mono", "a", 0.0), ("gw", None, 0.0)), "model_aware"
        ),
        "absence leaves one model of the process": suspects(
            _ranked(("mono", None, 2.0), ("mono", "a", 1.95), ("gw", None, 0.5)),
            "model_aware",
            narrowed={"mono": ("c",)},
        ),
        "absence, no evidence otherwise": suspects(
            _ranked(("mono", None, 0.0), ("mono", "a", 0.0), ("gw", None, 0.0)),
            "model_aware",
            narrowed={"mono": ("b", "c")},
        ),
    }
    assert got == {
        "process and one of its models close: the model": 2,
        "process close, none of its models: all three": 4,
        "service-only: a process counts its models": 4,
        "no evidence, service-only": 5,
        "no evidence, model-aware": 3,
        "absence leaves one model of the process": 1,
        "absence, no evidence otherwise": 3,
    }


def test_a_model_a_third_slower_is_no_departure(tmp_path: Path) -> None:
    """Self-time counts when it grows 1.5 times and by 20 ms a span: model-a going from 100
    to 130 ms while model-b fails is noise, not evidence."""
    inc = _run(
        tmp_path,
        lambda s, t, bad: _gateway_chain(s, t, b_fails=bad, a_ms=130 if bad else 100),
    )
    got = [(c.service, c.model, c.score, c.evidence) for c in inc.candidates]
    assert got[1:] == [
        ("gateway", None, 0.0, ("no departure from baseline",)),
        ("model-a", "a", 0.0, ("no departure from baseline",)),
    ]
    assert got[0][:2] == ("model-b", "b")


def _two_model_process(sysm: System, t: int, bad: bool) -> None:
    """One process, two models called in turn by each request; both fail alike while bad."""
    with sysm.span(
        "mono", "POST /score", start=t, dur_ms=20, kind=SpanKind.SERVER,
        attrs={"http.route": "/score"}, error=bad,
    ):  # fmt: skip
        for i, m in enumerate("ab"):
            with sysm.span(
                "mono", f"predict {m}", start=t + (1 + 9 * i) * MS, dur_ms=8, model=m, error=bad
            ):
                pass


def test_a_process_whose_two_models_fail_alike_is_the_answer(tmp_path: Path) -> None:
    """Nothing tells the two models apart: the process ranks first, both are suspects."""
    inc = _run(tmp_path, _two_model_process)
    assert [(c.service, c.model) for c in inc.candidates] == [
        ("mono", None),
        ("mono", "a"),
        ("mono", "b"),
    ]
    assert inc.culprit.evidence[-1] == (
        "mono runs 2 models (a, b); the data holds no evidence of which one failed: "
        "all are suspects"
    )
    assert (inc.suspect_models, inc.isolation[0].suspects) == (("a", "b"), 2)


def test_a_model_that_died_without_a_trace_is_named_by_its_absence(tmp_path: Path) -> None:
    """Requests for model c fail in the process before c's span starts: the process's own
    spans and logs carry the errors (the culprit is the process, its model unknown), but c
    alone stopped completing while a and b went on. With model identity that leaves one
    suspect, and c's own spans and logs (none, since it stopped) to read; without it, the
    whole process's three models."""
    sysm = System()
    for k in range(240):
        t = T0 + k * S // 4
        model = "abc"[k % 3]
        dead = 30 * S <= t - T0 < 45 * S and model == "c"
        with sysm.span(
            "mono", "POST /predict", start=t, dur_ms=12, kind=SpanKind.SERVER,
            attrs={"http.route": "/predict"}, error=dead,
        ):  # fmt: skip
            if not dead:
                with sysm.span("mono", f"predict {model}", start=t + MS, dur_ms=8, model=model):
                    pass
        if dead:
            sysm.log("mono", "worker lost", ts=t + 5 * MS, severity=17)
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    (inc,) = fa.open(db).incidents()
    assert [(c.service, c.model) for c in inc.candidates[:2]] == [("mono", None), ("mono", "c")]
    assert inc.suspect_models == ("a", "b", "c")
    assert inc.to_dict()["fault_isolation"] == {
        "model_aware": {
            "seconds": 5.0,
            "suspects": 1,
            "evidence_spans": 0,
            "evidence_logs": 0,
            "isolates_model": True,
        },
        # The process's 2 spans for each of a's and b's 20 requests, 1 for c's 20 failures.
        "service_only": {
            "seconds": 5.0,
            "suspects": 3,
            "evidence_spans": 100,
            "evidence_logs": 20,
            "isolates_model": False,
        },
    }


def test_departures_are_judged_against_the_scope_baseline_and_its_noise() -> None:
    """Four normal buckets, then one bucket judged; the run covers half of its last bucket,
    which is still judged. Errors depart when their ratio rises beyond 3 binomial standard
    deviations (or 5 points) over the baseline's; latency when its p95 doubles and grows by
    50 ms."""
    from faultlens.analyzer._settings import DetectionSettings
    from faultlens.analyzer.analysis._detect import Window, abnormal_windows

    st = DetectionSettings()
    b = st.bucket_ns
    # scope key -> per bucket (requests, errors, p95 ms); the last bucket half covered.
    normal = [(100, 10, 100.0)] * 4
    scopes = {
        "errors-beyond-noise": [*normal, (100, 20, 100.0), (50, 5, 100.0)],  # 3 sd: 9 points
        "errors-within-noise": [*normal, (100, 18, 100.0), (50, 5, 100.0)],
        "p95-doubled": [*normal, (100, 10, 210.0), (50, 5, 100.0)],
        "p95-up-60-percent": [*normal, (100, 10, 160.0), (50, 5, 100.0)],
        "fails-in-the-half-bucket": [*normal, (100, 10, 100.0), (50, 40, 100.0)],
    }
    series = pd.DataFrame(
        [
            {"run": "r", "scope": "endpoint", "key": key, "bucket_start": i * b,
             "requests": n, "errors": e, "p95_ms": p95}
            for key, rows in scopes.items()
            for i, (n, e, p95) in enumerate(rows)
        ]
    )  # fmt: skip
    got = abnormal_windows(series, st, bounds={"r": (0, 5 * b + b // 2 - 1)})
    assert got == [
        Window("r", "endpoint", "errors-beyond-noise", 4 * b, 5 * b, "errors"),
        Window("r", "endpoint", "fails-in-the-half-bucket", 5 * b, 6 * b, "errors"),
        Window("r", "endpoint", "p95-doubled", 4 * b, 5 * b, "latency"),
    ]
