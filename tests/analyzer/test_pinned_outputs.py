"""Every output of the 16 committed sample runs, pinned in one reviewed file.

``expected/sample_incidents.json`` holds ``faultlens incidents --format json`` of each
committed run (its own store, as ``faultlens ingest DIR`` makes it), at the baseline
objective and at 300 ms: fault-isolation time of both views, suspects, evidence to read,
blast radius, collateral, counterfactual, update coupling and its downtime, candidates and
their evidence. A change that moves any of them fails here; regenerating the file is a
deliberate act whose diff is reviewed:

    .venv/bin/python tests/analyzer/test_pinned_outputs.py --regenerate
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

import faultlens.analyzer as fa

DATA = Path(__file__).resolve().parents[2] / "sample_traces" / "data"
EXPECTED = Path(__file__).resolve().parent / "expected" / "sample_incidents.json"
RUNS = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in DATA.glob("*/*/truth.json"))
OBJECTIVES = {"baseline": None, "slo-300ms": 300.0}


def outputs(run: str, root: Path) -> dict[str, dict]:
    """The incidents JSON of one committed run, at each objective."""
    db = root / f"{run.replace('/', '-')}.duckdb"
    if not db.exists():
        fa.ingest([DATA / run], db=db)
    return {name: fa.incidents_json(db, slo_ms=slo) for name, slo in OBJECTIVES.items()}


def render(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(EXPECTED.read_text())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pinned")


def test_the_file_pins_every_committed_run(expected: dict) -> None:
    assert sorted(expected) == RUNS
    for run in RUNS:
        assert set(expected[run]) == set(OBJECTIVES)
        assert len(expected[run]["slo-300ms"]["incidents"]) == 1, run


@pytest.mark.parametrize("run", RUNS)
def test_outputs_equal_the_pinned_file(run: str, expected: dict, root: Path) -> None:
    got = json.loads(render(outputs(run, root)))  # the same float text as the file
    for name in OBJECTIVES:
        assert got[name] == expected[run][name], (
            f"{run} ({name}) moved: rerun with --regenerate and review the diff"
        )


def main(argv: list[str]) -> int:
    if argv != ["--regenerate"]:
        print(__doc__)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        doc = {run: outputs(run, Path(tmp)) for run in RUNS}
    EXPECTED.write_text(render(doc))
    print(f"wrote {EXPECTED} ({len(doc)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
