"""Blast radius of requests that left no span: a dead entry process.

When the process that receives an endpoint's requests dies, nothing records the requests
it refused. The blast radius counts them as the shortfall against the baseline rate, on
the endpoint that fell short, and on the models and services that endpoint's baseline
requests touched (DESIGN.md: blast radius "broken down by endpoint, model, service").
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry.trace import SpanKind
from otel_spans import MS, T0, System

import faultlens.analyzer as fa

S = 10**9


def _request(sysm: System, t: int, service: str, route: str, model: str) -> None:
    with (
        sysm.span(
            service,
            f"POST {route}",
            start=t,
            dur_ms=30,
            kind=SpanKind.SERVER,
            attrs={"http.route": route},
        ),
        sysm.span(service, f"predict {model}", start=t + MS, dur_ms=20, model=model),
    ):
        pass


def test_requests_a_dead_entry_process_refused_count_where_they_were_headed(
    tmp_path: Path,
) -> None:
    """svc-a (/score, model a) and svc-b (/rank, model b) take 4 requests/s each; svc-a
    is dead from 40 s to 55 s: its 60 requests leave no span at all."""
    sysm = System()
    for k in range(280):  # 70 s
        t = T0 + k * S // 4
        if not 40 * S <= t - T0 < 55 * S:
            _request(sysm, t, "svc-a", "/score", "a")
        _request(sysm, t + S // 8, "svc-b", "/rank", "b")
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    (inc,) = fa.open(db).incidents()
    assert (inc.culprit.service, inc.culprit.model) == ("svc-a", "a")
    blast = inc.to_dict()["blast_radius"]
    # Every refused request, nothing else (svc-b kept answering, none of its requests
    # failed), placed where it was headed.
    assert blast["requests"] == 60
    assert blast["endpoints"] == {"/score": 60}
    assert blast["models"] == {"a": 60}
    assert blast["services"] == {"svc-a": 60}
    assert blast["collateral"] == 0  # each refused request would have reached model a
    # Traffic counts the refused requests too: those present in the window plus those
    # missing.
    bucket = 5 * S
    lo, hi = max(inc.onset_ns - bucket, inc.baseline_start_ns + bucket), inc.end_ns + bucket
    present = sum(
        1
        for k in range(280)
        for t, refused in (
            (T0 + k * S // 4, 40 * S <= k * S // 4 < 55 * S),
            (T0 + k * S // 4 + S // 8, False),
        )
        if lo <= t < hi and not refused
    )
    assert inc.blast.total == present + 60
    # The breakdown the report and the Analysis API show: one row per endpoint, model and
    # service (never the whole, which is ``requests``), each a share of that traffic.
    rows = inc.blast.breakdown[["dimension", "key", "requests", "collateral"]]
    assert [tuple(r) for r in rows.itertuples(index=False)] == [
        ("endpoint", "/score", 60, 0),
        ("model", "a", 60, 0),
        ("service", "svc-a", 60, 0),
    ]
    assert list(inc.blast.breakdown.share) == [60 / inc.blast.total] * 3
