"""The fault catalogue: one scenario per fault, each aimed at one model (or the feature store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FEATURE_STORE = "feature-store"


@dataclass(frozen=True)
class Scenario:
    """A fault, its target, and what the run shows."""

    name: str
    target: str  # the culprit: a model name, or "feature-store" (runs no model)
    shows: str
    params: dict[str, Any] = field(default_factory=dict)
    deploy_version: str | None = None  # bad deploy: the version rolled out at onset

    @property
    def kind(self) -> str:
        return self.name

    @property
    def culprit_model(self) -> str | None:
        return None if self.target == FEATURE_STORE else self.target


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "error-burst",
            "fraud",
            "fraud raises on every 2nd request: /fraud and /checkout fail, nothing else",
            {"every": 2},
        ),
        Scenario(
            "latency",
            "recommend",
            "recommend answers 400 ms later: /recommend and /checkout slow down, no errors",
            {"delay_s": 0.4},
        ),
        Scenario(
            "cpu-hog",
            "sentiment",
            "sentiment spins 300 ms in pure Python, holding the GIL: in the monolith every "
            "endpoint slows down, per model only /sentiment",
            {"busy_s": 0.3},
        ),
        Scenario(
            "crash",
            "embed",
            "embed kills its process (a crash loop, restarted after 1 s): in the monolith "
            "every endpoint fails, per model only /search",
        ),
        Scenario(
            "memory-leak",
            "rank",
            "rank keeps 6 MB per request until 150 MB, then is OOM-killed (SIGKILL) and "
            "restarted: the monolith loses every endpoint for the restart",
            {"step_mb": 6, "limit_mb": 150},
        ),
        Scenario(
            "bad-deploy",
            "tokenize",
            "tokenize 1.3.0 is deployed (a restart) and emits NaN for words outside its "
            "vocabulary; sentiment and embed fail on it, so errors land on the wrong models; "
            "rolled back at the end",
            deploy_version="1.3.0",
        ),
        Scenario(
            "slow-dependency",
            FEATURE_STORE,
            "the feature store (no model) takes 1.5 s; fraud and recommend give up after "
            "0.5 s and fail: errors on two models, the cause in neither",
            {"delay_s": 1.5},
        ),
        Scenario(
            "slow-model",
            "rank",
            "rank takes 2 s more; the caller gives up after 1 s: the timeout errors land on "
            "the caller while rank itself records none",
            {"delay_s": 2.0},
        ),
    )
}
