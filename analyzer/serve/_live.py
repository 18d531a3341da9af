"""Live detection: incidents that open, grow and resolve while the data arrives.

A loop re-runs the incident detection on a moving window of committed data (the last
``window_s`` before the newest span) on a cursor of the server's store kept for it. The
window's facts are kept current per committed batch (``facts._live.LiveFacts``): a cycle
derives again only the traces that received spans since the last one (and those leaving
the window), and the series buckets they touch, so its work follows the new data, not the
window or the store; detection and the per-incident analysis then read those tables, the
same rows a full analysis of the window derives. Each incident it finds is matched
to a tracked one by the offline analysis's own merge rule (``analysis._detect.
merge_windows`` with the same settings): what the offline analysis would merge into one
incident is one live incident, so the two agree on what an incident is:

- a detection opens an incident once it has held for ``confirm_s`` of data time (an
  alert's "for" duration): each process's exporter sends on its own schedule (every 5 s
  by default in the SDKs), so the newest buckets may hold one service's spans and not
  yet another's, and what such partial data shows alone, later data can erase; a
  detection no longer found before that is dropped without a page (with no new commit,
  it stands once ``confirm_s`` of wall time has passed: each exporter has sent what it
  held);
- an incident keeps the id of its first opening (its run and the onset bucket then,
  the offline analysis's id for the same onset) for life;
- its culprit, candidates, blast radius and isolation figures follow the evidence; a new
  top culprit is a ``culprit_changed`` event;
- it resolves once its scope has been healthy for ``hold_down_s`` of data time; a
  resolved incident that grows afterwards (late batches, or its scope departing again
  within the offline merge rule) takes the new stretch, and is ``reopened`` when the
  stretch ends within the hold-down.

The clock is the data's (the newest committed span), so a replay or a paused exporter
resolves nothing by itself, and opens only what its data already showed. Events
(``opened``, ``culprit_changed``, ``resolved``, ``reopened``) are stored in
``faultlens_incident_history`` and the latest state of each incident in
``faultlens_live_incidents``: both survive a restart, which reloads the open ones.
Every event is also handed to ``notify`` (the webhooks).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from .._settings import DetectionSettings, TimeWindow
from ..analysis._detect import Window, merge_windows
from ..analysis._pipeline import IncidentPipeline
from ..facts._live import LiveFacts, LiveUpdate
from ..facts._tables import FactTables
from ..store._dialect import DUCKDB, BoundConnection

__all__ = ["HISTORY_DDL", "LiveIncidents"]

HISTORY_DDL = (
    """CREATE TABLE IF NOT EXISTS faultlens_live_incidents (
        id VARCHAR PRIMARY KEY, run VARCHAR NOT NULL, state VARCHAR NOT NULL,
        onset_ns BIGINT NOT NULL, end_ns BIGINT NOT NULL,
        culprit_service VARCHAR, culprit_model VARCHAR,
        opened_at TIMESTAMPTZ NOT NULL, resolved_at TIMESTAMPTZ, incident JSON NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS faultlens_incident_history (
        id VARCHAR NOT NULL, event VARCHAR NOT NULL, event_at TIMESTAMPTZ NOT NULL,
        data_ns BIGINT NOT NULL, culprit_service VARCHAR, culprit_model VARCHAR,
        incident JSON NOT NULL)""",
)


@dataclass
class _Tracked:
    id: str
    run: str
    state: str
    onset_ns: int
    end_ns: int
    doc: dict[str, Any]

    @property
    def culprit(self) -> tuple[str | None, str | None]:
        c = self.doc["culprit"]
        return c["service"], c["model"]


def _reach(doc: dict[str, Any]) -> tuple[int, int]:
    """How much of the fault a detection holds: its blast radius, then its length."""
    return doc["blast_radius"]["requests"], doc["end_ns"] - doc["onset_ns"]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class LiveIncidents:
    """The detection loop and the incidents it tracks (``snapshot()`` for the API)."""

    def __init__(
        self,
        cursor: Callable[[], duckdb.DuckDBPyConnection],
        *,
        generation: Callable[[], int],
        notify: Callable[[dict[str, Any]], None] = lambda body: None,
        interval_s: float = 2.0,
        window_s: float = 600.0,
        hold_down_s: float = 30.0,
        confirm_s: float = 5.0,
        log: Callable[[str], None] = _stderr,
        settings: DetectionSettings | None = None,
    ) -> None:
        self.cursor = cursor
        self.settings = settings or DetectionSettings()
        self.generation = generation
        self.notify = notify
        self.interval_s = interval_s
        self.window_ns = int(window_s * 1e9)
        self.hold_down_ns = int(hold_down_s * 1e9)
        self.confirm_ns = int(confirm_s * 1e9)
        self.log = log
        self.lock = threading.Lock()
        self.tracked: dict[str, _Tracked] = {}
        # Detections not yet confirmed: id -> (the tracking, data and wall time first seen).
        self.pending: dict[str, tuple[_Tracked, int, int]] = {}
        self._last_found: list[dict[str, Any]] = []  # the last cycle's detections
        self.as_of_ns: int | None = None  # the newest span the last cycle saw
        self.cycles = 0
        self.last_cycle_s = 0.0
        self.last_update: LiveUpdate | None = None  # what the last cycle read and derived
        self._facts: LiveFacts | None = None  # on a cursor of its own, made by the first cycle
        self._seen_generation = -1
        self._grown: set[str] = set()  # resolved incidents that took late data this cycle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        con = cursor()
        try:
            for ddl in HISTORY_DDL:
                con.execute(ddl)
            rows = con.execute(
                "SELECT id, run, state, onset_ns, end_ns, incident FROM faultlens_live_incidents"
            ).fetchall()
        finally:
            con.close()
        for id_, run, state, onset, end, doc in rows:
            self.tracked[id_] = _Tracked(id_, run, state, onset, end, orjson.loads(doc))

    # -- the loop -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="faultlens-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        if self._facts is not None and (self._thread is None or not self._thread.is_alive()):
            self._facts.con.close()
            self._facts = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.cycle()
            except Exception as exc:  # the next cycle tries again; ingest is untouched
                self.log(f"faultlens serve: live detection cycle failed: {exc}")

    def cycle(self) -> None:
        """One detection pass over the window ending at the newest committed span."""
        generation = self.generation()
        if generation == self._seen_generation:
            # Nothing new since the last cycle: a detection pending for confirm_s of wall
            # time stands as it was found (every exporter has sent what it held by then;
            # a paused system still pages its fault).
            wall = time.monotonic_ns()
            if self.as_of_ns is not None and any(
                wall - w >= self.confirm_ns for _, _, w in self.pending.values()
            ):
                self._apply(self._last_found, self.as_of_ns)
            return
        started = time.process_time()
        if self._facts is None:
            self._facts = LiveFacts(
                self.cursor(), window_ns=self.window_ns, bucket_ns=self.settings.bucket_ns
            )
        facts = self._facts
        update = facts.update()
        if update is None:
            return
        now = update.now
        window = TimeWindow(now - self.window_ns, now + 1)
        tables = FactTables(
            BoundConnection(facts.con, DUCKDB),
            DUCKDB,
            run=None,
            stored=facts.stored,
            window=window,
        )
        found = [i.to_dict() for i in IncidentPipeline(tables, self.settings).incidents(None)]
        self._apply(found, now)
        self._seen_generation = generation
        self.as_of_ns = now
        self._last_found = found
        self.cycles += 1
        self.last_update = update
        self.last_cycle_s = time.process_time() - started

    def _apply(self, found: list[dict[str, Any]], now: int) -> None:
        """A cycle's detections into the tracked incidents: events stored, then paged."""
        con = self.cursor()
        try:
            events = self._update(found, now)
            touched = [t for t in self.tracked.values() if t.state == "open" or t.id in self._grown]
            self._grown.clear()
            self._store(con, events, now, touched)
        finally:
            con.close()
        for event, t in events:
            self.notify({"event": event, "incident": {**t.doc, "id": t.id, "state": t.state}})

    def _match(self, doc: dict[str, Any], among: list[_Tracked]) -> _Tracked | None:
        """The tracked incident the offline merge rule would put this detection with: one
        that overlaps or nearly touches it, or one whose scope departed the same way (the
        same "scope (signal)") up to ``same_scope_gap_buckets`` before it (a low-rate
        fault's quiet buckets split its stretch, and the hold-down may have resolved it)."""
        st = self.settings
        gap_ns = st.merge_gap_buckets * st.bucket_ns
        same_gap_ns = st.same_scope_gap_buckets * st.bucket_ns
        seen = Window(doc["run"], "incident", doc["id"], doc["onset_ns"], doc["end_ns"], "")
        scopes = set(doc.get("scopes") or ())
        for t in among:
            held = Window(t.run, "incident", t.id, t.onset_ns, t.end_ns, "")
            if len(merge_windows([held, seen], gap_ns=gap_ns)) == 1:
                return t
            if (
                t.run == doc["run"]
                and scopes & set(t.doc.get("scopes") or ())
                and t.onset_ns <= doc["end_ns"]
                and doc["onset_ns"] <= t.end_ns + same_gap_ns
            ):
                return t
        return None

    def _update(
        self, found: list[dict[str, Any]], now: int, wall: int | None = None
    ) -> list[tuple[str, _Tracked]]:
        wall = time.monotonic_ns() if wall is None else wall
        events: list[tuple[str, _Tracked]] = []
        with self.lock:
            # Each tracked incident takes, of the detections it matches this cycle, the one
            # with the widest blast radius: one fault seen as several stretches keeps one
            # culprit instead of flipping between them from cycle to cycle.
            best: dict[str, dict[str, Any]] = {}
            pending, self.pending = self.pending, {}
            for doc in sorted(found, key=lambda d: d["onset_ns"]):
                t = self._match(doc, list(self.tracked.values()))
                if t is None:
                    if doc["end_ns"] < now - self.hold_down_ns:
                        continue  # over before we saw it (history the offline analysis shows)
                    t = self._confirmed(doc, now, wall, pending)
                    if t is None:
                        continue
                    self.tracked[t.id] = t
                    events.append(("opened", t))
                if t.state != "open":
                    if doc["end_ns"] <= t.end_ns:
                        continue  # the same stretch seen again after it resolved
                    # It grew after it resolved: late batches (another process's exporter
                    # still held them), or its scope departed again within the merge rule.
                    # It takes them, as the offline analysis does; it opens again only if
                    # its new end is within the hold-down.
                    if now - doc["end_ns"] < self.hold_down_ns:
                        t.state = "open"
                        events.append(("reopened", t))
                    else:
                        self._grown.add(t.id)
                t.end_ns = max(t.end_ns, doc["end_ns"])
                held = best.get(t.id)
                if held is None or _reach(doc) > _reach(held):
                    best[t.id] = doc
            for id_, doc in best.items():
                t = self.tracked[id_]
                before, t.doc = t.culprit, doc
                if t.culprit != before:
                    events.append(("culprit_changed", t))
            for t in self.tracked.values():
                if t.state == "open" and now - t.end_ns >= self.hold_down_ns:
                    t.state = "resolved"
                    events.append(("resolved", t))
        return events

    def _confirmed(
        self,
        doc: dict[str, Any],
        now: int,
        wall: int,
        pending: dict[str, tuple[_Tracked, int, int]],
    ) -> _Tracked | None:
        """The incident this new detection opens, once it has held for ``confirm_ns`` of data
        time, or of wall time with nothing new arriving to erase it (each exporter has sent
        what it held by then); until then it waits in ``self.pending`` (what the last cycle
        had pending and this one no longer finds is dropped: later data erased it)."""
        held = {**pending, **self.pending}  # two detections of one cycle may match one
        t = self._match(doc, [p for p, _, _ in held.values()])
        seen, seen_wall = now, wall
        if t is not None:
            _, seen, seen_wall = held[t.id]
            pending.pop(t.id, None)
            self.pending.pop(t.id, None)
            t.onset_ns, t.end_ns = min(t.onset_ns, doc["onset_ns"]), max(t.end_ns, doc["end_ns"])
            t.doc = doc
        else:
            t = _Tracked(doc["id"], doc["run"], "open", doc["onset_ns"], doc["end_ns"], doc)
        if now - seen >= self.confirm_ns or wall - seen_wall >= self.confirm_ns:
            return t
        self.pending[t.id] = (t, seen, seen_wall)
        return None

    def _store(
        self, con: Any, events: list[tuple[str, _Tracked]], now: int, live: list[_Tracked]
    ) -> None:
        """The events, and the latest state of every incident they or the cycle touched,
        in one transaction."""
        if not events and not live:
            return
        con.execute("BEGIN")
        for event, t in events:
            doc = orjson.dumps({**t.doc, "id": t.id}, option=orjson.OPT_SERIALIZE_NUMPY).decode()
            service, model = t.culprit
            con.execute(
                """INSERT INTO faultlens_incident_history VALUES
                   ($id, $event, now(), $data_ns, $service, $model, $doc)""",
                dict(id=t.id, event=event, data_ns=now, service=service, model=model, doc=doc),
            )
        for t in {id(t): t for t in [*live, *(t for _, t in events)]}.values():
            doc = orjson.dumps({**t.doc, "id": t.id}, option=orjson.OPT_SERIALIZE_NUMPY).decode()
            service, model = t.culprit
            con.execute(
                """INSERT INTO faultlens_live_incidents VALUES
                   ($id, $run, $state, $onset, $end, $service, $model, now(),
                    CASE WHEN $state = 'resolved' THEN now() END, $doc)
                   ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                     end_ns = excluded.end_ns, culprit_service = excluded.culprit_service,
                     culprit_model = excluded.culprit_model, incident = excluded.incident,
                     resolved_at = excluded.resolved_at""",
                dict(
                    id=t.id,
                    run=t.run,
                    state=t.state,
                    onset=t.onset_ns,
                    end=t.end_ns,
                    service=service,
                    model=model,
                    doc=doc,
                ),
            )
        con.execute("COMMIT")

    # -- reading ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """{"as_of_ns", "incidents": [the contract's incident + state]}, oldest first."""
        with self.lock:
            items = sorted(self.tracked.values(), key=lambda t: t.onset_ns)
            incidents = [{**t.doc, "id": t.id, "state": t.state} for t in items]
        return {"as_of_ns": self.as_of_ns, "cycles": self.cycles, "incidents": incidents}

    def history(self, incident_id: str | None = None) -> list[dict[str, Any]]:
        con = self.cursor()
        try:
            where = "" if incident_id is None else "WHERE id = $id"
            params = {} if incident_id is None else {"id": incident_id}
            rows = con.execute(
                f"""SELECT id, event, epoch_ns(event_at) AS at_ns, data_ns, culprit_service,
                           culprit_model FROM faultlens_incident_history {where}
                    ORDER BY event_at, data_ns, rowid""",
                params,
            ).fetchall()
        finally:
            con.close()
        keys = ("id", "event", "at_ns", "data_ns", "culprit_service", "culprit_model")
        return [dict(zip(keys, r, strict=True)) for r in rows]
