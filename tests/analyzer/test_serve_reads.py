"""The server's reads for a page: every call of one generation is answered by one analysis
(the span facts derived and the incidents found once a page, not once a call), with the
same answers as fresh analyses; a caller that names no generation gets a fresh one."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from faultlens import analyzer
from faultlens.analyzer.serve._reads import Reads, frame_from_bytes

RUN = "error-burst/monolith"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_traces" / "data" / RUN


class Counting(Reads):
    """Reads that count the analyses they build."""

    built = 0

    def analysis(self, con, *, run, window):
        self.built += 1
        return super().analysis(con, run=run, window=window)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("reads") / "sample.duckdb"
    analyzer.ingest([str(SAMPLE)], db=str(db))
    con = duckdb.connect(str(db))
    yield con.cursor()
    con.close()


def _page(reads: Reads, generation: int | None) -> list[tuple[str, bytes]]:
    """The overview's calls, as the dashboard makes them."""
    calls = [("incidents", {}), ("layouts", {})] + [
        ("fig_timeseries", {"scope": "model", "metric": m, "bucket_s": 5})
        for m in ("requests", "error_ratio")
    ]
    out = []
    for method, kwargs in calls:
        request = {"method": method, "args": [], "kwargs": kwargs, "run": RUN}
        request.update(since=None, until=None)
        if generation is not None:
            request["generation"] = generation
        out.append(reads.call(request))
    return out


def test_one_analysis_per_page_generation_same_answers(root) -> None:
    commits = [0]
    shared = Counting(root, generation=lambda: commits[0])
    first = _page(shared, 7)
    assert shared.built == 1  # four calls, one analysis
    commits[0] += 1  # a commit lands: the page's generation still names its answers
    assert _page(shared, 7) == first and shared.built == 1
    _page(shared, 8)
    assert shared.built == 2  # the next generation: a new analysis, once

    fresh = Counting(root, generation=lambda: commits[0])
    alone = _page(fresh, None)
    assert fresh.built == 4  # no generation named: one fresh analysis a call
    assert orjson.loads(alone[0][1]) == orjson.loads(first[0][1])  # the same incidents
    assert orjson.loads(first[0][1])["incidents"], "the sample run holds an incident"
    assert frame_from_bytes(alone[1][1]).equals(frame_from_bytes(first[1][1]))
    assert [kind for kind, _ in alone] == [kind for kind, _ in first]
