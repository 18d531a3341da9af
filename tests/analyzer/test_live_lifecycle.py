"""The live incident life cycle (serve/_live.py) on the detections of successive cycles:
what the offline merge rule holds as one incident is one live incident, through the
hold-down's resolve, with late data and with a low-rate fault's quiet gap; a detection
opens only once it has held for the confirmation time, and one that later data erases
before then never pages."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from faultlens.analyzer._settings import DetectionSettings
from faultlens.analyzer.serve._live import LiveIncidents

S = 10**9
T0 = 1_800_000_000 * S


def _doc(onset_s: int, end_s: int, scope: str = "model:fraud (errors)") -> dict:
    return {
        "id": f"run-{onset_s}",
        "run": "run",
        "onset_ns": T0 + onset_s * S,
        "end_ns": T0 + end_s * S,
        "culprit": {"service": "model-fraud", "model": "fraud"},
        "blast_radius": {"requests": end_s - onset_s},
        "scopes": [scope],
    }


def _live(tmp_path: Path, hold_down_s: float = 30.0, confirm_s: float = 0) -> LiveIncidents:
    db = str(tmp_path / "live.duckdb")
    duckdb.connect(db).close()
    return LiveIncidents(
        lambda: duckdb.connect(db),
        generation=lambda: 0,
        hold_down_s=hold_down_s,
        confirm_s=confirm_s,
    )


def _events(live: LiveIncidents, found: list[dict], now_s: int) -> list[tuple[str, str]]:
    return [(event, t.id) for event, t in live._update(found, T0 + now_s * S)]


def test_a_low_rate_fault_resolved_by_the_hold_down_is_reopened_not_split(tmp_path: Path) -> None:
    settings = DetectionSettings()
    gap_s = settings.same_scope_gap_buckets * settings.bucket_ns // S
    live = _live(tmp_path, hold_down_s=10)
    assert _events(live, [_doc(0, 20)], 25) == [("opened", "run-0")]
    assert _events(live, [_doc(0, 20)], 31) == [("resolved", "run-0")]
    # The same scope departs the same way again, within the offline merge rule's gap: the
    # offline analysis holds both stretches as one incident, so the live one reopens.
    again = _doc(20 + gap_s - 5, 20 + gap_s + 5)
    assert _events(live, [again], 20 + gap_s + 6) == [("reopened", "run-0")]
    assert list(live.tracked) == ["run-0"]
    assert live.tracked["run-0"].end_ns == again["end_ns"]
    # Another scope departing after the gap is another incident.
    other = _doc(20 + 3 * gap_s, 20 + 3 * gap_s + 10, scope="model:rank (latency)")
    assert _events(live, [other], 20 + 3 * gap_s + 11)[0] == ("opened", other["id"])


def test_late_data_after_the_resolve_is_taken_without_paging_again(tmp_path: Path) -> None:
    live = _live(tmp_path, hold_down_s=5)
    assert _events(live, [_doc(0, 20)], 21) == [("opened", "run-0")]
    assert _events(live, [_doc(0, 20)], 26) == [("resolved", "run-0")]
    # Another process's exporter delivers the fault's last spans late: the stretch grows,
    # but its new end is already past the hold-down: no page, the figures follow.
    assert _events(live, [_doc(0, 25)], 40) == []
    (t,) = live.tracked.values()
    assert (t.state, t.end_ns, t.doc["blast_radius"]["requests"]) == ("resolved", T0 + 25 * S, 25)
    assert "run-0" in live._grown  # stored with this cycle


def test_a_detection_opens_once_it_has_held_and_one_later_data_erases_never_pages(
    tmp_path: Path,
) -> None:
    live = _live(tmp_path, confirm_s=5)
    # Partial data (one process's spans of the newest bucket, not yet another's) shows a
    # departure; the next cycle, with the rest of the bucket, no longer does.
    assert _events(live, [_doc(0, 5, scope="model:rank (errors)")], 5) == []
    assert list(live.pending) == ["run-0"]
    assert _events(live, [], 7) == []
    assert live.pending == {} and live.tracked == {}
    # A real fault: found at 20 s, still found (and wider) at 23 s and 25 s. It opens at the
    # first cycle 5 s of data after it was first seen, with the id of its first sighting
    # and the evidence of the newest one.
    assert _events(live, [_doc(15, 20)], 20) == []
    assert _events(live, [_doc(15, 23)], 23) == []
    assert _events(live, [_doc(10, 25)], 25) == [("opened", "run-15")]
    (t,) = live.tracked.values()
    assert (t.onset_ns, t.end_ns, t.doc["id"]) == (T0 + 10 * S, T0 + 25 * S, "run-10")
    assert live.pending == {}
    # Two detections of one cycle that the merge rule holds as one wait as one.
    lat = "model:rank (latency)"
    found = [_doc(100, 105, scope=lat), _doc(106, 110, scope=lat)]
    assert _events(live, found, 110) == [("resolved", "run-15")]
    assert len(live.pending) == 1
    assert _events(live, [_doc(100, 115, scope=lat)], 115) == [("opened", "run-100")]


def test_a_detection_with_nothing_new_after_it_opens_once_the_exporters_have_had_their_time(
    tmp_path: Path,
) -> None:
    """A fault in the last data before traffic stops: no later data advances the data clock,
    but once every exporter has had the confirmation time to send what it held and nothing
    came to erase it, the detection stands."""
    live = _live(tmp_path, confirm_s=5)
    found = [_doc(0, 5)]
    assert live._update(found, T0 + 5 * S, wall=0) == []
    assert live._update(found, T0 + 5 * S, wall=4 * S) == []  # not yet: an exporter may lag
    assert [(e, t.id) for e, t in live._update(found, T0 + 5 * S, wall=5 * S)] == [
        ("opened", "run-0")
    ]


def test_the_loop_confirms_a_pending_detection_when_no_new_data_comes(tmp_path: Path) -> None:
    db = str(tmp_path / "live.duckdb")
    duckdb.connect(db).close()
    pages: list[dict] = []
    live = LiveIncidents(
        lambda: duckdb.connect(db), generation=lambda: 7, notify=pages.append, confirm_s=5
    )
    found, now = [_doc(0, 5)], T0 + 5 * S
    # The last cycle (generation 7) found it 6 s ago, wall time; no commit since.
    assert live._update(found, now, wall=time.monotonic_ns() - 6 * S) == []
    live._seen_generation, live.as_of_ns, live._last_found = 7, now, found
    live.cycle()
    assert [(p["event"], p["incident"]["id"]) for p in pages] == [("opened", "run-0")]
    assert [h["event"] for h in live.history()] == ["opened"]
    live.cycle()  # nothing pending now: nothing more
    assert len(pages) == 1
