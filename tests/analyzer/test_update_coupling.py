"""Update coupling on a small system built through the OTel SDK: per model-version change,
the models restarted with it and the downtime seen, in seconds."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.trace import SpanKind
from otel_spans import MS, T0, System

import faultlens.analyzer as fa

S = 10**9


def _request(sysm: System, service: str, model: str, version: str, t: int, instance: str) -> None:
    with (
        sysm.span(
            service, "POST /predict", start=t, dur_ms=10, kind=SpanKind.SERVER,
            attrs={"http.route": "/predict"}, instance=instance,
        ),
        sysm.span(
            service, f"predict {model}", start=t + MS, dur_ms=8, model=model, version=version,
            instance=instance,
        ),
    ):  # fmt: skip
        pass


def test_a_restart_with_a_new_version_reports_the_models_it_took_down_and_the_gap(
    tmp_path: Path,
) -> None:
    """``mono`` runs two models; its new instance starts at 20.6 s with a@1.1, 0.84 s after
    the old one's last span ended (19.75 s + 10 ms): both models restarted with it, 0.84 s
    of downtime. ``solo`` starts its new instance (b@2.1) 2 s before the old one stops: a
    restart without downtime. ``hot`` swaps a version inside its running instance: no
    restart."""
    sysm = System()
    for k in range(80):  # 20 s at 4 requests/s, then the new instances for 10 s
        t = T0 + k * S // 4
        _request(sysm, "mono", "ab"[k % 2], "1.0", t, "i1")
        _request(sysm, "solo", "b", "2.0", t, "i1")
        _request(sysm, "hot", "c", "3.0" if k < 40 else "3.1", t, "i1")
    for k in range(40):
        t = T0 + 20 * S + 600 * MS + k * S // 4
        _request(sysm, "mono", "ab"[k % 2], "1.1" if k % 2 == 0 else "1.0", t, "i2")
        _request(sysm, "solo", "b", "2.1", t - 2 * S, "i2")
        _request(sysm, "hot", "c", "3.1", t, "i1")
    db = tmp_path / "unit.duckdb"
    sysm.ingest(tmp_path, db)
    got = fa.open(db).update_coupling().sort_values("changed_ns")
    assert got.to_dict("records") == [
        {
            "run": "unit/run",
            "service": "hot",
            "model": "c",
            "old_version": "3.0",
            "new_version": "3.1",
            "changed_ns": T0 + 10 * S + MS,
            "restarted": 0,
            "restarted_models": [],
            "downtime_s": 0.0,
        },
        {
            "run": "unit/run",
            "service": "solo",
            "model": "b",
            "old_version": "2.0",
            "new_version": "2.1",
            "changed_ns": T0 + 18 * S + 600 * MS + MS,
            "restarted": 1,
            "restarted_models": ["b"],
            "downtime_s": 0.0,
        },
        {
            "run": "unit/run",
            "service": "mono",
            "model": "a",
            "old_version": "1.0",
            "new_version": "1.1",
            "changed_ns": T0 + 20 * S + 600 * MS + MS,
            "restarted": 2,
            "restarted_models": ["a", "b"],
            "downtime_s": 0.84,
        },
    ]
