"""The sample product's models: small, deterministic numpy computations, no downloads.

Every model is a plain function from a JSON-able dict to a JSON-able dict, so
the same code runs inside the monolith and behind its own HTTP service. Two
models (fraud, recommend) look up user features in the feature store, a
service of its own that runs no model; they receive that lookup as an async
callable so the layout decides how it travels.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

FRAMEWORK = "numpy"
FRAMEWORK_VERSION = np.__version__

DIM = 64  # hashed bag-of-words width
EMBED_DIM = 32
N_ITEMS = 400

# Words the tokenizer's training corpus held, with their document frequencies.
POSITIVE = ("good", "great", "fine", "love", "excellent", "happy", "fast", "cheap", "nice")
NEGATIVE = ("bad", "awful", "slow", "broken", "poor", "terrible", "late", "refund", "angry")
PRODUCTS = ("shoes", "phone", "laptop", "camera", "coffee", "book", "chair", "lamp", "desk")
ASPECTS = ("watch", "bag", "jacket", "delivery", "price", "quality", "screen", "battery")
VOCABULARY = (*POSITIVE, *NEGATIVE, *PRODUCTS, *ASPECTS)
# Words the load generator also sends but the tokenizer never saw (brand names).
RARE_WORDS = ("frobnic", "trunda", "wimbra")

FeatureLookup = Callable[[str], Awaitable[list[float]]]


def _rng(name: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def _bucket(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % DIM


_DOC_FREQ = np.zeros(DIM)
for _word in VOCABULARY:
    _DOC_FREQ[_bucket(_word)] += 1
_KNOWN = {w: _bucket(w) for w in VOCABULARY}
_SENTIMENT_W = _rng("sentiment").normal(0, 1, DIM)
for _word in [
    "good",
    "great",
    "fine",
    "love",
    "excellent",
    "happy",
    "fast",
    "cheap",
    "nice",
    "solid",
]:
    _SENTIMENT_W[_bucket(_word)] += 2.0
for _word in [
    "bad",
    "awful",
    "slow",
    "broken",
    "poor",
    "terrible",
    "late",
    "refund",
    "angry",
    "noisy",
]:
    _SENTIMENT_W[_bucket(_word)] -= 2.0
_PROJECTION = _rng("embed").normal(0, 1 / math.sqrt(EMBED_DIM), (DIM, EMBED_DIM))
_ITEMS = _rng("items").normal(0, 1, (N_ITEMS, EMBED_DIM))
_ITEMS /= np.linalg.norm(_ITEMS, axis=1, keepdims=True)
_FRAUD_W = _rng("fraud").normal(0, 0.5, 11)
_USER_TO_ITEM = _rng("recommend").normal(0, 1, (8, N_ITEMS))


def user_features(user: str) -> list[float]:
    """The feature store's answer: a deterministic 8-vector per user."""
    return [round(float(v), 6) for v in _rng(f"user:{user}").normal(0, 1, 8)]


def _finite_vector(payload: dict[str, Any], key: str, dim: int, model: str) -> np.ndarray:
    values = np.asarray(payload.get(key), dtype=float)
    if values.shape != (dim,):
        raise ValueError(f"{model}: {key} must have {dim} values, got shape {values.shape}")
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ValueError(f"{model}: {key} contains {bad} non-finite values")
    return values


async def tokenize(payload: dict[str, Any], *, version: str, **_: Any) -> dict[str, Any]:
    """Hashed bag of words, L2-normalized; version 1.3.0 adds IDF weighting.

    1.3.0 is the bad deploy: a word outside the training vocabulary lands in a
    bucket whose document frequency may be zero, so its IDF is infinite and
    the normalized vector becomes NaN. The tokenizer itself does not fail; the
    next model does.
    """
    words = str(payload.get("text", "")).lower().split()
    counts = np.zeros(DIM)
    for word in words:
        counts[_KNOWN.get(word, _bucket(word))] += 1
    if tuple(int(p) for p in version.split(".")[:2]) >= (1, 3):
        with np.errstate(divide="ignore", invalid="ignore"):
            idf = np.log(len(VOCABULARY) / _DOC_FREQ)
            counts = np.where(counts > 0, counts * idf, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.linalg.norm(counts)
        tokens = counts / norm if norm > 0 else counts
    return {"tokens": [float(v) for v in tokens], "n_words": len(words)}


async def sentiment(payload: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Logistic regression over the tokenizer's vector."""
    x = _finite_vector(payload, "tokens", DIM, "sentiment")
    score = float(1 / (1 + np.exp(-(x @ _SENTIMENT_W))))
    return {"score": round(score, 6), "label": "positive" if score >= 0.5 else "negative"}


async def embed(payload: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Random projection of the tokenizer's vector to a unit embedding."""
    x = _finite_vector(payload, "tokens", DIM, "embed")
    v = x @ _PROJECTION
    n = np.linalg.norm(v)
    return {"vector": [float(f) for f in (v / n if n > 0 else v)]}


async def rank(payload: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Dot-product scoring of the catalogue against a query embedding; top 5."""
    q = _finite_vector(payload, "vector", EMBED_DIM, "rank")
    scores = _ITEMS @ q
    top = np.argsort(-scores, kind="stable")[:5]
    return {"items": [int(i) for i in top], "scores": [round(float(scores[i]), 6) for i in top]}


async def fraud(payload: dict[str, Any], *, features: FeatureLookup, **_: Any) -> dict[str, Any]:
    """Logistic fraud score over the transaction and the user's stored features."""
    user = str(payload.get("user", ""))
    amount = float(payload.get("amount", 0.0))
    stored = await features(user)
    x = np.array([math.log1p(max(amount, 0.0)), float(payload.get("foreign", 0)), *stored, 1.0])
    p = float(1 / (1 + np.exp(-(x @ _FRAUD_W))))
    return {"probability": round(p, 6), "flag": p > 0.8}


async def recommend(
    payload: dict[str, Any], *, features: FeatureLookup, **_: Any
) -> dict[str, Any]:
    """Matrix-factorization scores of every item for the user; top 5."""
    stored = np.asarray(await features(str(payload.get("user", ""))))
    scores = stored @ _USER_TO_ITEM
    top = np.argsort(-scores, kind="stable")[:5]
    return {"items": [int(i) for i in top]}


@dataclass(frozen=True)
class ModelSpec:
    """A model of the sample product: its name, shipped version and code."""

    name: str
    version: str
    predict: Callable[..., Awaitable[dict[str, Any]]]
    uses_feature_store: bool = False


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec("tokenize", "1.2.0", tokenize),
        ModelSpec("sentiment", "2.1.0", sentiment),
        ModelSpec("embed", "1.0.3", embed),
        ModelSpec("rank", "3.0.1", rank),
        ModelSpec("fraud", "1.4.2", fraud, uses_feature_store=True),
        ModelSpec("recommend", "0.9.0", recommend, uses_feature_store=True),
    )
}

# What each model holds resident once loaded (MB): a stand-in for its weights file, so
# that loading a model costs memory as a real one does (the arithmetic above needs far
# less). The services load it under ``model(...).loading()``, which records the growth.
WEIGHTS_MB = {"tokenize": 2, "sentiment": 3, "embed": 8, "rank": 6, "fraud": 2, "recommend": 4}
_LOADED: dict[str, np.ndarray] = {}


def load(name: str) -> None:
    """Load ``name``'s weights into this process (deterministic, every page touched)."""
    n = WEIGHTS_MB[name] * (1 << 20) // 8
    _LOADED[name] = _rng(f"weights:{name}").standard_normal(n)


# Endpoint -> the models a request to it needs, in call order. /sentiment and
# /search are vertical chains, /checkout a horizontal fan-out.
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "/fraud": ("fraud",),
    "/recommend": ("recommend",),
    "/sentiment": ("tokenize", "sentiment"),
    "/search": ("tokenize", "embed", "rank"),
    "/checkout": ("fraud", "recommend"),
}
