"""faultlens.sample_traces: the sample multi-model system and its committed traces.

Six numpy models (tokenize, sentiment, embed, rank, fraud, recommend) behind
five endpoints, run either as one process (``monolith``) or as a gateway plus
one service per model (``per-model``), with a feature store beside them. A
scenario injects one fault from the catalogue while a load generator runs,
and writes the OTLP traces and logs plus ``truth.json``.

Usage::

    from faultlens.sample_traces import SCENARIOS, run_scenario

    truth = run_scenario("crash", layout="per-model", seconds=20, out="/tmp/crash")

``DATA_DIR`` holds the committed runs: ``<scenario>/<layout>/{traces,logs}.jsonl.gz``
and ``truth.json``.
"""

from pathlib import Path

from ._catalogue import SCENARIOS, Scenario
from ._runner import LAYOUTS, run_scenario

DATA_DIR = Path(__file__).parent / "data"

__all__ = ["DATA_DIR", "LAYOUTS", "SCENARIOS", "Scenario", "run_scenario"]
