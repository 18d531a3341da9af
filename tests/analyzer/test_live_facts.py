"""The live facts (`faultlens serve`'s detection window, `facts._live`) follow the new data.

A committed sample run (error-burst, per-model: written through the OTel SDK) is ingested
into a source store, then committed into a fresh store in batches cut by span end (as
exporters send them: a parent after its children, so a trace arrives in several batches).
After each batch the live facts are updated and checked against a full derivation of the
same window: every fact table holds the same rows, and detection finds the same incidents.
A window shorter than the run makes its lower edge move. A last trace, committed in two
parts, shows what an update reads: only that trace's new rows from the store, only that
trace derived again, only the buckets it touches.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import faultlens.analyzer as fa
from faultlens.analyzer._settings import DetectionSettings, TimeWindow
from faultlens.analyzer.analysis._pipeline import IncidentPipeline
from faultlens.analyzer.facts import _live
from faultlens.analyzer.facts._live import LiveFacts
from faultlens.analyzer.facts._sql import derive_fact_tables, scope_series_sql, span_buckets_sql
from faultlens.analyzer.facts._tables import FactTables, run_filter
from faultlens.analyzer.present._api import Analysis
from faultlens.analyzer.store._dialect import DUCKDB, BoundConnection
from faultlens.analyzer.store._write import connect

DATA = Path(fa.__file__).parents[1] / "sample_traces" / "data" / "error-burst" / "per-model"
S = 10**9
BUCKET_NS = DetectionSettings().bucket_ns
TABLES = (  # the fact tables an analysis reads
    "fl_spans",
    "fl_requests",
    "fl_exposure",
    "fl_instances",
    "fl_callee",
    "fl_service_models",
    "fl_scope_series",
    "fl_span_buckets",
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("live-facts") / "source.duckdb"
    fa.ingest([DATA], db=db)
    return db


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def _derived(con: duckdb.DuckDBPyConnection, window: TimeWindow) -> dict[str, list[tuple]]:
    """The fact tables a full analysis of ``window`` derives from ``otel_traces``."""
    where, params = run_filter(DUCKDB, None, window)
    derive_fact_tables(con, DUCKDB, run_filter=where, params=params)
    con.execute(DUCKDB.temp_table("fl_scope_series", scope_series_sql(DUCKDB, bucket_ns=BUCKET_NS)))
    con.execute(DUCKDB.temp_table("fl_span_buckets", span_buckets_sql(DUCKDB, bucket_ns=BUCKET_NS)))
    return {t: _rows(con, t) for t in TABLES}


def _live_incidents(facts: LiveFacts, window: TimeWindow) -> list[dict]:
    tables = FactTables(
        BoundConnection(facts.con, DUCKDB), DUCKDB, run=None, stored=facts.stored, window=window
    )
    pipeline = IncidentPipeline(tables, DetectionSettings())
    return [i.to_dict() for i in pipeline.incidents(None)]


@pytest.mark.parametrize("window_s", [600, 20])
def test_live_facts_equal_a_full_derivation_and_follow_the_new_data(
    source: Path, tmp_path: Path, window_s: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The held Arrow tables joined into one piece at every update, not every 64.
    monkeypatch.setattr(_live, "_MAX_CHUNKS", 1)
    con = connect(tmp_path / "live.duckdb")
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    # A late trace, over a second before the newest span (committing it does not move the
    # window), is held back for the end; the rest is cut by span end.
    (last,) = con.execute(
        """SELECT TraceId FROM src.otel_traces GROUP BY TraceId
           HAVING max(Timestamp) < (SELECT max(Timestamp) FROM src.otel_traces) - INTERVAL 1 SECOND
              AND count(*) > 2 AND count(*) FILTER (ParentSpanId = '') = 1
           ORDER BY min(Timestamp) DESC, TraceId LIMIT 1"""
    ).fetchone()
    ends = [
        r[0]
        for r in con.execute(
            """SELECT epoch_ns(Timestamp) + Duration AS e FROM src.otel_traces
               WHERE TraceId <> $last ORDER BY e""",
            {"last": last},
        ).fetchall()
    ]
    cuts = [ends[len(ends) * k // 8] for k in range(1, 8)] + [ends[-1] + 1]
    facts = LiveFacts(con.cursor(), window_ns=window_s * S, bucket_ns=BUCKET_NS)
    low, found, dropped = 0, [], 0
    for cut in cuts:
        con.execute(
            """INSERT INTO otel_traces SELECT * FROM src.otel_traces
               WHERE TraceId <> $last AND epoch_ns(Timestamp) + Duration >= $low
                 AND epoch_ns(Timestamp) + Duration < $cut""",
            {"last": last, "low": low, "cut": cut},
        )
        con.execute(
            """INSERT INTO otel_logs SELECT * FROM src.otel_logs
               WHERE epoch_ns(Timestamp) >= $low AND epoch_ns(Timestamp) < $cut""",
            {"low": low, "cut": cut},
        )
        low = cut
        update = facts.update()
        dropped += update.dropped_spans
        window = TimeWindow(update.now - window_s * S, update.now + 1)
        full = con.cursor()
        assert {t: _rows(facts.con, t) for t in TABLES} == _derived(full, window)
        found = _live_incidents(facts, window)
        assert found == [i.to_dict() for i in Analysis(full, window=window).incidents()]
        full.close()
    # The 40 s run moves a 20 s window's lower edge; a 600 s window holds all of it.
    assert (dropped > 0) == (window_s == 20)
    if window_s == 600:  # the fault's incident is there
        assert [(i["culprit"]["service"], i["culprit"]["model"]) for i in found] == [
            ("model-fraud", "fraud")
        ]
    held = update.window_spans
    assert (
        held
        == con.execute(
            "SELECT count(*) FROM otel_traces WHERE Timestamp >= make_timestamp_ns($lo)",
            {"lo": update.now - window_s * S},
        ).fetchone()[0]
    )
    # The last trace, its children first, then its root: each update reads only the new
    # rows, derives only that trace again, and computes only the buckets it touches.
    spans = con.execute(
        """SELECT count(*), count(*) FILTER (ParentSpanId = '') FROM src.otel_traces
           WHERE TraceId = $last""",
        {"last": last},
    ).fetchone()
    assert spans[0] > spans[1] == 1
    for part, (new, trace_rows) in {
        "ParentSpanId <> ''": (spans[0] - 1, spans[0] - 1),
        "ParentSpanId = ''": (1, spans[0]),
    }.items():
        con.execute(
            f"""INSERT INTO otel_traces SELECT * FROM src.otel_traces
                WHERE TraceId = $last AND {part}""",
            {"last": last},
        )
        update = facts.update()
        assert update.new_spans == new
        assert update.dropped_spans == 0  # the window did not move
        assert update.dirty_traces == 1
        assert update.recomputed_spans == trace_rows
        assert not update.maps_changed
        assert 1 <= update.dirty_buckets <= 2
        assert update.window_spans == held + trace_rows
        window = TimeWindow(update.now - window_s * S, update.now + 1)
        full = con.cursor()
        assert {t: _rows(facts.con, t) for t in TABLES} == _derived(full, window)
        assert _live_incidents(facts, window) == [
            i.to_dict() for i in Analysis(full, window=window).incidents()
        ]
        full.close()
    # Nothing committed since: an update reads nothing and derives nothing.
    update = facts.update()
    assert (update.new_spans, update.dirty_traces, update.recomputed_spans) == (0, 0, 0)
    con.close()
