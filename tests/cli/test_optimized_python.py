"""The CLI answers the same under ``python -O`` (asserts stripped): nothing the analysis
needs is built as a side effect of an assert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

import faultlens.analyzer as fa

DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"


def _incidents(db: Path, *flags: str) -> dict:
    out = subprocess.run(
        [sys.executable, *flags, "-m", "faultlens.cli", "incidents", "--db", str(db)]
        + ["--format", "json", "--slo-ms", "300"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)


def test_stale_facts_are_derived_under_python_O(tmp_path: Path) -> None:
    db = tmp_path / "stale.duckdb"
    fa.ingest([DATA / "cpu-hog" / "monolith"], db=db)
    # As a receiver killed before it refreshed them leaves them: the stored facts no
    # longer cover every span, so the analysis derives its own from otel_traces.
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE faultlens_facts_runs SET spans = spans - 1")
    assert fa.open(db)._stored is None
    plain, optimized = _incidents(db), _incidents(db, "-O")
    assert optimized == plain
    assert [i["culprit"]["model"] for i in optimized["incidents"]] == ["sentiment"]
