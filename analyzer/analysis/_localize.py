"""Culprit ranking: which (service, model) caused an incident (its evidence in words: _describe).

DESIGN.md: "Culprit ranking: candidate (service, model) pairs ranked by
evidence: origin errors (error spans with no erroring child), self-time
(exclusive duration) change, which scope changed first, the
selection-versus-baseline over-representation of each model and version
among the bad requests (as Honeycomb BubbleUp and Tempo's compare() do),
error logs, and a model version change near onset. [...] Origin errors are
one signal among several, never the verdict."

SQL aggregates per candidate and bucket (:mod:`faultlens.analyzer.analysis._evidence` gathers
them into an :class:`Evidence` per view); :func:`score_matrix` scores every prefix
[onset, t] at once, so the final ranking and the FIT replay are the same computation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._evidence import VIEWS, Evidence, candidate_key

__all__ = [
    "VIEWS",
    "WEIGHTS",
    "left_by_absence",
    "ranking",
    "score_matrix",
    "suspects",
]

# How much each signal weighs; every signal is scaled to [0, 1] first.
WEIGHTS = {
    "origin_errors": 2.0,
    "self_time": 3.0,
    "error_logs": 1.0,
    "over_representation": 1.0,
    "version_change": 3.0,
    "restart": 0.25,
    "silence": 1.5,
    "changed_first": 1.0,
}
SELF_RATIO = 1.5  # self-time must at least grow this much to count ...
SELF_MIN_NS = 20_000_000  # ... and by at least 20 ms per span ...
SELF_MIN_SPANS = 5  # ... over at least this many incident spans (a few are noise)
LOOKBACK_NS = 60 * 1_000_000_000  # version changes and restarts this long before onset count
MARGIN = 0.1  # suspects: candidates within 10% of the top score
ABSENT_RATIO = 1 / 3  # a model completing under a third of what its process's traffic implies ...
ABSENT_MIN_EXPECTED = 5.0  # ... out of at least this many expected completions is still a suspect


def _grids(
    ev: Evidence, frame: pd.DataFrame, columns: list[str]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per column: (incident buckets x candidates) cumulative sums, and the baseline total
    per candidate."""
    keys = ev.keys
    out = []
    if frame.empty or not len(ev.buckets):
        return [(np.zeros((len(ev.buckets), len(keys))), np.zeros(len(keys))) for _ in columns]
    # Every value is a count (or a multiple of 0.5): sums are exact in any order.
    col = ev.columns_of(candidate_key(frame))
    start = frame["bucket_start"].to_numpy()
    row = np.searchsorted(ev.buckets, start)
    found = (row < len(ev.buckets)) & (ev.buckets[np.minimum(row, len(ev.buckets) - 1)] == start)
    now = (start >= ev.onset_ns) & found & (col >= 0)
    before = (start < ev.onset_ns) & (col >= 0)
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        inc = np.zeros((len(ev.buckets), len(keys)))
        base = np.zeros(len(keys))
        np.add.at(inc, (row[now], col[now]), values[now])
        np.add.at(base, col[before], values[before])
        out.append((np.cumsum(inc, axis=0), base))
    return out


def _share(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, None)
    total = x.sum(axis=1, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


def score_matrix(ev: Evidence) -> dict[str, np.ndarray]:
    """Every signal and the total score, for each prefix [onset, t] (rows) and candidate."""
    T = len(ev.buckets)
    steps = np.arange(1, T + 1, dtype=float)[:, None]
    nb = ev.base_buckets
    (origin, origin_b), (n, n_b), (self_ns, self_b) = _grids(
        ev, ev.spans, ["origin_errors", "spans", "self_ns"]
    )
    lg = ev.logs
    logs_f = lg.assign(w=0.5 * lg.warn_logs + lg.error_logs + 5 * lg.fatal_logs)
    ((logs, logs_b),) = _grids(ev, logs_f, ["w"])
    sig: dict[str, np.ndarray] = {}
    origin_x = origin - origin_b / nb * steps
    sig["origin_errors"] = _share(origin_x) * _strength(origin_x)
    base_mean = np.divide(self_b, n_b, out=np.zeros_like(self_b), where=n_b > 0)
    inc_mean = np.divide(self_ns, n, out=np.zeros_like(self_ns), where=n > 0)
    grew = (
        (n_b > 0)
        & (n >= SELF_MIN_SPANS)
        & (inc_mean >= SELF_RATIO * np.maximum(base_mean, 1.0))
        & (inc_mean - base_mean >= SELF_MIN_NS)
    )
    extra = np.where(grew, inc_mean - base_mean, 0.0)
    # Per-span growth, not total: a slow model shows in each of its spans; a busy
    # process's many spans each grow a little.
    sig["self_time"] = _share(extra)
    logs_x = logs - logs_b / nb * steps
    sig["error_logs"] = _share(logs_x) * _strength(logs_x)
    over, version = _over_representation(ev)
    sig["over_representation"] = over
    sig["version_change"] = version
    sig["restart"] = _restarted(ev)
    expected = n_b / nb * steps
    quiet = np.clip(1 - np.divide(n, expected, out=np.ones_like(n), where=expected > 0), 0, 1)
    sig["silence"] = np.where((expected >= 5) & (quiet >= 0.5), quiet, 0.0)
    first = _first_moves(ev, origin_x, extra, logs_x, version + sig["silence"])
    sig["changed_first"] = _changed_first(first, len(ev.buckets))
    total = sum(WEIGHTS[k] * v for k, v in sig.items())
    if ev.view == "model_aware":
        total = _undecided_process(ev, total)
    sig["score"] = total
    # Not scored: what :func:`first_mover` says of the candidate that departed first.
    sig["first_bucket"] = first
    sig["first_signal"] = _first_signals(
        first,
        {
            "origin errors": origin_x > 0.5,
            "self-time": extra > 0,
            "warning/error logs": logs_x > 0.5,
            "version change": version > 0.5,
            "silence": sig["silence"] > 0.5,
        },
    )
    return sig


def _strength(excess: np.ndarray, half: float = 3.0) -> np.ndarray:
    """How much a count says, saturating: 1 event is a hint, dozens are a pattern."""
    x = np.clip(excess, 0, None)
    return x / (x + half)


def _new_versions(ev: Evidence) -> set[tuple[str, str, str]]:
    """(service, model or '', version) of versions that started within the lookback
    while an older one of the same model had run before."""
    first: dict[tuple, int] = {}
    rows = list(
        zip(
            ev.versions.service.to_numpy(dtype=object),
            ev.versions.model.to_numpy(dtype=object),
            ev.versions.version.to_numpy(dtype=object),
            ev.versions.first_ns.to_numpy(),
            strict=True,
        )
    )
    for s, m, _, f in rows:
        key = (s, m if isinstance(m, str) else "")
        first[key] = min(first.get(key, f), f)
    since = ev.onset_ns - LOOKBACK_NS
    return {
        (s, m if isinstance(m, str) else "", v)
        for s, m, v, f in rows
        if f >= since and f > first[s, m if isinstance(m, str) else ""]
    }


def _over_representation(ev: Evidence) -> tuple[np.ndarray, np.ndarray]:
    """BubbleUp: share of bad requests exposed to an item minus its share at baseline."""
    T, C = len(ev.buckets), len(ev.keys)
    over, version = np.zeros((T, C)), np.zeros((T, C))
    x = ev.exposure
    if x.empty:
        return over, version
    per, base_total = ev.bad_per_bucket
    bad_total = np.maximum(np.cumsum(per), 1.0)[:, None]
    new_versions = _new_versions(ev)
    services = x.service.to_numpy(dtype=object)
    models = x.model.to_numpy(dtype=object)
    versions = x.version.to_numpy(dtype=object)
    star = versions == "*"
    is_new = np.array(
        [
            not st and (s, m or "", v) in new_versions
            for s, m, v, st in zip(services, models, versions, star, strict=True)
        ],
        dtype=bool,
    )
    k = candidate_key(x)
    start = x.bucket_start.to_numpy()
    n = x.n.to_numpy(dtype=float)
    for rows, target in ((star, over), (is_new, version)):
        if rows.any():
            share = _excess_share(
                ev, k[rows], versions[rows], start[rows], n[rows], bad_total, base_total
            )
            target[:] = np.clip(share, 0, 1)
    return over, version


def _excess_share(
    ev: Evidence,
    k: np.ndarray,
    versions: np.ndarray,
    start: np.ndarray,
    n: np.ndarray,
    bad_total: np.ndarray,
    base_total: float,
) -> np.ndarray:
    """Per incident prefix and candidate: the largest, over the candidate's items (key,
    version) seen during the incident, of its share of bad requests minus its baseline
    share; 0 for a candidate without such items. Counts are exact in any order."""
    T, C = len(ev.buckets), len(ev.keys)
    out = np.zeros((T, C))
    pair = np.array([f"{a}\x1e{b}" for a, b in zip(k, versions, strict=True)], dtype=object)
    now = start >= 0
    pairs = pd.Index(pd.unique(pair[now]))
    if not len(pairs) or not T:
        return out
    col = pairs.get_indexer(pair)
    row = np.searchsorted(ev.buckets, start)
    found = now & (row < T) & (ev.buckets[np.minimum(row, T - 1)] == start)
    inc = np.zeros((T, len(pairs)))
    np.add.at(inc, (row[found], col[found]), n[found])
    inc = np.cumsum(inc, axis=0) / bad_total
    before = ~now & (col >= 0)
    base = np.zeros(len(pairs))
    base[col[before]] = n[before] / base_total
    diff = inc - base[None, :]
    best = np.full((T, C), -np.inf)
    owners = ev.columns_of([p.split("\x1e", 1)[0] for p in pairs])
    for p, c in enumerate(owners):
        if c >= 0:
            best[:, c] = np.maximum(best[:, c], diff[:, p])
    return np.where(np.isneginf(best), 0.0, best)


def _restarted(ev: Evidence) -> np.ndarray:
    ends = ev.buckets + ev.bucket_ns
    out = np.zeros((len(ev.buckets), len(ev.candidates)))
    since: dict[str, int] = {}
    for service, first in zip(
        ev.restarts.service.to_numpy(dtype=object), ev.restarts.first_ns.to_numpy(), strict=True
    ):
        if first >= ev.onset_ns - LOOKBACK_NS:
            since[service] = min(since.get(service, first), first)
    for j, (service, model, nm) in enumerate(zip(ev.services, ev.models, ev.n_models, strict=True)):
        if nm > 1 and model is not None:
            continue  # a process restart is evidence about the process, not one of its models
        if service in since:
            out[:, j] = (ends > since[service]).astype(float)
    return out


def _first_moves(
    ev: Evidence, origin: np.ndarray, extra: np.ndarray, logs: np.ndarray, version: np.ndarray
) -> np.ndarray:
    """Per candidate, the first incident bucket its own signals departed in: -1 for a
    version change before onset, ``len(ev.buckets)`` when they never did."""
    moved = (origin > 0.5) | (extra > 0) | (logs > 0.5) | (version > 0.5)
    T, C = moved.shape
    first = np.where(moved.any(axis=0), moved.argmax(axis=0), T)
    # A version change before onset moved before anything else did.
    counts: dict[tuple[str, str], int] = {}
    for s, m in zip(
        ev.versions.service.to_numpy(dtype=object),
        ev.versions.model.to_numpy(dtype=object),
        strict=True,
    ):
        key = (s, m if isinstance(m, str) else "")
        counts[key] = counts.get(key, 0) + 1
    for j, (s, m) in enumerate(zip(ev.services, ev.models, strict=True)):
        if counts.get((s, m or ""), 0) > 1 and version[:, j].max() > 0.5:
            first[j] = -1
    return first


def _changed_first(first: np.ndarray, T: int) -> np.ndarray:
    """1 for the candidate(s) whose own signals departed earliest, as seen at each t."""
    out = np.zeros((T, len(first)))
    for t in range(T):
        seen = np.where(first <= t, first, T + 1)
        if seen.min() <= t:
            out[t] = (seen == seen.min()).astype(float)
    return out


def _first_signals(first: np.ndarray, moved: dict[str, np.ndarray]) -> np.ndarray:
    """Per candidate, which of its signals departed in its first bucket, as words."""
    out = np.empty(len(first), dtype=object)
    for j, t in enumerate(first):
        if t < 0:
            out[j] = "version change before onset"
            continue
        if t >= len(next(iter(moved.values()))):
            out[j] = None
            continue
        names = [name for name, m in moved.items() if m[t, j]]
        out[j] = " and ".join(names) or "version change and silence together"
    return out


def _undecided_process(ev: Evidence, total: np.ndarray) -> np.ndarray:
    """A multi-model process whose models the evidence cannot tell apart is the answer.

    When the best two models of one process score within the margin, the process
    itself (model null) takes their score and, on the tie, ranks first: without
    evidence of the model every model in it stays a suspect (issue 6: do not guess).
    """
    out = total.copy()
    has_model = np.array([m is not None for m in ev.models], dtype=bool)
    for s in dict.fromkeys(ev.services[ev.n_models > 1]):
        in_s = ev.services == s
        parent = np.flatnonzero(in_s & ~has_model)
        kids = np.flatnonzero(in_s & has_model)
        if not len(parent) or len(kids) < 2:
            continue
        top2 = np.sort(total[:, kids], axis=1)[:, -2:]
        undecided = top2[:, 0] >= (1 - MARGIN) * top2[:, 1]
        p = parent[0]
        out[:, p] = np.where(undecided, np.maximum(total[:, p], top2[:, 1]), total[:, p])
    return out


def left_by_absence(ev: Evidence, service: str) -> tuple[str, ...]:
    """Models of a multi-model process that absence still names, when its model is unknown.

    A process that died without leaving the fatal span or log (os._exit, SIGKILL) still
    tells its models apart by what they stopped doing: a model that completed spans in
    the baseline, whose traffic still arrives (the process's other models keep completing
    at their baseline mix, so the requests that would reach it keep coming), but which now
    completes under ``ABSENT_RATIO`` of its expected share (at least ``ABSENT_MIN_EXPECTED``
    completions expected) stays a suspect; models that keep completing are cleared.
    Expected = baseline completions of the model / baseline completions of the others x
    incident completions of the others. Empty when the view has no model identity, or
    absence clears every model or none (then it says nothing).
    """
    if ev.view != "model_aware":
        return ()
    sp = ev.spans[(ev.spans.service == service) & ev.spans.model.notna()]
    ok = sp.assign(ok=sp.spans - sp.errors, inc=sp.bucket_start >= ev.onset_ns)
    ok = ok.groupby(["model", "inc"]).ok.sum().unstack("inc")
    ok = ok.reindex(columns=[False, True]).fillna(0)
    if len(ok) < 2:
        return ()
    base, inc = ok[False], ok[True]
    other_base, other_inc = base.sum() - base, inc.sum() - inc
    expected = base / other_base.where(other_base > 0) * other_inc
    absent = (base > 0) & (expected >= ABSENT_MIN_EXPECTED) & (inc <= ABSENT_RATIO * expected)
    left = tuple(sorted(str(m) for m in ok.index[absent.to_numpy()]))
    return left if 0 < len(left) < len(ok) else ()


def ranking(ev: Evidence, sig: dict[str, np.ndarray], t: int) -> pd.DataFrame:
    """Candidates ranked by score at prefix t: model null before models on ties."""
    cand = ev.candidates
    score = np.round(sig["score"][t], 4)
    services, models = ev.services, ev.models
    top = np.where(np.isnan(score), -np.inf, score)  # a NaN score ranks last
    order = sorted(
        range(len(cand)),
        key=lambda i: (-top[i], models[i] is not None, services[i], models[i] or ""),
    )
    c = {"rank": np.arange(1, len(cand) + 1)}
    c.update({k: cand[k].to_numpy()[order] for k in cand.columns})
    c["score"] = score[order]
    c.update({name: sig[name][t][order] for name in WEIGHTS})
    return pd.DataFrame(c)


def suspects(
    ranked: pd.DataFrame, view: str, *, narrowed: dict[str, tuple[str, ...]] | None = None
) -> int:
    """Candidates within the score margin, counted as a person would have to check them.

    In the service-only view a multi-model process counts once per model it runs;
    in the model-aware view a process entry gives way to its own models in the margin, and
    counts once per model it runs when none of them is (its model is unknown).
    ``narrowed`` (model-aware only) maps a process whose model is unknown to the models
    absence leaves (:func:`left_by_absence`): those replace its models in the count.
    """
    rows = [
        (sv, m if isinstance(m, str) else None, max(int(n), 1), float(sc))
        for sv, m, n, sc in zip(
            ranked.service.to_numpy(dtype=object),
            ranked.model.to_numpy(dtype=object),
            ranked.n_models.to_numpy(),
            ranked.score.to_numpy(dtype=float),
            strict=True,
        )
    ]
    top = rows[0][3] if rows else 0.0
    if top <= 0:
        if view == "service_only":
            return sum(r[2] for r in rows)
        if not narrowed:
            return len(rows)
        close = rows
    else:
        close = [r for r in rows if r[3] >= top * (1 - MARGIN)]
    if view == "service_only":
        return sum(r[2] for r in close)
    extra = 0
    for service, models in (narrowed or {}).items():
        close = [r for r in close if r[0] != service or r[1] is None or r[1] in models]
        extra += len(set(models) - {r[1] for r in close if r[0] == service})
        close = [r for r in close if r[0] != service or r[1] is not None]
    with_models = {r[0] for r in close if r[1] is not None}
    # A process entry none of whose models is in the margin leaves all of them to check.
    entries = [r for r in close if r[1] is None and r[0] not in with_models]
    return sum(r[1] is not None for r in close) + sum(r[2] for r in entries) + extra
