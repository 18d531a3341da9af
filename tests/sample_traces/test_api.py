"""The package's exports, the catalogue's shape, and the models' determinism."""

from __future__ import annotations

import asyncio

import pytest

import faultlens.sample_traces as sample_traces
from faultlens.sample_traces import SCENARIOS
from faultlens.sample_traces._models import ENDPOINTS, MODELS, sentiment, tokenize


def test_exports_are_exact() -> None:
    assert sorted(sample_traces.__all__) == [
        "DATA_DIR", "LAYOUTS", "SCENARIOS", "Scenario", "run_scenario",
    ]  # fmt: skip


def test_catalogue_covers_every_fault_and_at_least_five_models() -> None:
    assert list(SCENARIOS) == [
        "error-burst", "latency", "cpu-hog", "crash", "memory-leak", "bad-deploy",
        "slow-dependency", "slow-model",
    ]  # fmt: skip
    assert len(MODELS) >= 5
    assert {m for models in ENDPOINTS.values() for m in models} == set(MODELS)
    assert all(s.target in MODELS or s.target == "feature-store" for s in SCENARIOS.values())


def test_bad_tokenizer_version_makes_the_next_model_fail() -> None:
    text = {"text": "great phone frobnic"}
    good = asyncio.run(tokenize(text, version="1.2.0"))
    bad = asyncio.run(tokenize(text, version="1.3.0"))
    assert asyncio.run(sentiment(good)) == asyncio.run(sentiment(good))  # deterministic
    with pytest.raises(ValueError, match="sentiment: tokens contains 1 non-finite values"):
        asyncio.run(sentiment(bad))
    # Texts inside the vocabulary still work on the new version.
    asyncio.run(sentiment(asyncio.run(tokenize({"text": "great phone"}, version="1.3.0"))))


def test_run_scenario_rejects_unknown_names_and_layouts(tmp_path) -> None:
    with pytest.raises(KeyError, match="unknown scenario 'nope'"):
        sample_traces.run_scenario("nope", layout="monolith", out=tmp_path)
    with pytest.raises(ValueError, match="layout must be one of"):
        sample_traces.run_scenario("crash", layout="cluster", out=tmp_path)
