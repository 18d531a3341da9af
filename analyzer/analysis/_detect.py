"""Incident detection: each scope's abnormal stretches of buckets, merged into incidents.

A scope (endpoint, model or service) is abnormal in a bucket when its error ratio, p95
latency or traffic departs from its own baseline (``DetectionSettings``); windows of any
scope that overlap or lie within ``merge_gap_buckets`` of each other are one incident, and
so is a scope departing again within ``same_scope_gap_buckets`` of its last window.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._settings import DetectionSettings

__all__ = ["Window", "abnormal_windows", "merge_windows"]


@dataclass(frozen=True)
class Window:
    """One scope's abnormal stretch of buckets."""

    run: str
    scope: str
    key: str
    start_ns: int
    end_ns: int
    signal: str  # errors | latency | traffic


def abnormal_windows(
    series: pd.DataFrame, settings: DetectionSettings, *, bounds: dict[str, tuple[int, int]]
) -> list[Window]:
    """Stretches where a scope departs from its own preceding normal baseline.

    DESIGN.md: "Incident: a window in which some scope's error ratio or
    latency departs from its own baseline (the preceding normal window)."
    Missing buckets count as zero requests, so a scope that falls silent
    (a crashed process) departs too. ``bounds`` (first and last request per run)
    says how much of the first and last bucket the run covers: a bucket covered
    less than half is not judged, and rates are scaled by coverage.
    """
    windows: list[Window] = []
    bns = settings.bucket_ns
    run_ends = series.groupby("run").bucket_start.max()
    # Each scope's rows by position (numpy slices: no frame per scope), in (run, scope,
    # key) order.
    groups = series.groupby(["run", "scope", "key"], sort=True).indices
    starts_all = series.bucket_start.to_numpy(dtype=np.int64)
    n_all = series.requests.to_numpy(dtype=float, na_value=0.0)
    e_all = series.errors.to_numpy(dtype=float, na_value=0.0)
    p95_all = series.p95_ms.to_numpy(dtype=float, na_value=np.nan)
    for (run, scope, key), rows in sorted(groups.items()):
        starts = starts_all[rows]
        first, last = int(starts.min()), int(starts.max())
        run_end = int(run_ends[run])
        idx = np.arange(first, max(last, run_end) + bns, bns)
        # The scope's buckets on the run's grid; a missing bucket holds no request.
        at = (starts - first) // bns
        n, e, p95 = np.zeros(len(idx)), np.zeros(len(idx)), np.full(len(idx), np.nan)
        n[at] = n_all[rows]
        e[at] = e_all[rows]
        p95[at] = p95_all[rows]
        lo, hi = bounds.get(run, (first, run_end + bns))
        cover = (np.minimum(idx + bns, hi + 1) - np.maximum(idx, lo)) / bns
        flags = _flag_buckets(n, e, p95, np.clip(cover, 0, 1), settings)
        for start, stop, signal in _runs_of(flags):
            windows.append(
                Window(
                    str(run), str(scope), str(key), int(idx[start]), int(idx[stop]) + bns, signal
                )
            )
    return windows


def _flag_buckets(
    n: np.ndarray, e: np.ndarray, p95: np.ndarray, cover: np.ndarray, st: DetectionSettings
) -> list:
    """A sequential scan: the baseline only ever holds buckets judged normal.

    A bucket that departs too little to judge alone (a low-rate fault: one or two errors,
    a quiet bucket at a low rate) is a *suspect*, held out of the baseline: consecutive
    suspects are judged on their sums, and right after an abnormal bucket of the same
    signal a suspect is abnormal (the fault goes on). Suspects never judged abnormal join
    the baseline when the streak ends.
    """
    flags: list[str | None] = [None] * len(n)
    base = _Baseline()
    pending: list[int] = []  # the current streak of suspects
    kind: str | None = None  # their signal

    def release() -> None:
        for j in pending:
            base.add(n[j], e[j], p95[j], cover[j])
        pending.clear()

    for i in range(len(n)):
        if cover[i] < 0.5:
            continue
        signal = suspect = None
        if base.normal >= st.min_baseline_buckets:
            signal, suspect = _judge(n[i], e[i], p95[i], cover[i], base, st)
        prev = flags[i - 1] if i else None
        if signal is None and suspect is not None and suspect == prev:
            signal = suspect  # hysteresis: the departure goes on
        if signal is None and suspect is not None:
            if kind != suspect:
                release()
            pending.append(i)
            kind = suspect
            if _streak_departs(pending, kind, n, e, cover, base, st):
                for j in pending:
                    flags[j] = kind
                pending.clear()
            continue
        if signal is not None and signal == kind:
            for j in pending:  # the streak led up to it: the onset is its first bucket
                flags[j] = kind
            pending.clear()
        release()
        kind = None
        if signal is None:
            base.add(n[i], e[i], p95[i], cover[i])
        flags[i] = signal
    return flags


class _Baseline:
    """The running sums of the buckets judged normal."""

    def __init__(self) -> None:
        self.n = self.e = 0.0
        self.p95: list[float] = []  # kept sorted: the median is read, not recomputed
        self.normal = self.active = 0

    def add(self, n: float, e: float, p95: float, cover: float) -> None:
        self.normal += 1
        self.n += n / cover
        self.e += e
        self.active += int(n > 0)
        if not np.isnan(p95):
            bisect.insort(self.p95, float(p95))

    @property
    def rate(self) -> float:
        return self.n / self.normal

    @property
    def ratio(self) -> float:
        return self.e / self.n if self.n else 0.0


def _judge(
    n: float, e: float, p95: float, cover: float, base: _Baseline, st: DetectionSettings
) -> tuple[str | None, str | None]:
    """(signal of a bucket that departs on its own, else the signal it leans to, if any)."""
    ratio, rate = base.ratio, base.rate
    noise = 3 * np.sqrt(max(ratio * (1 - ratio), 1e-4) / max(n, 1))
    lat = _median(base.p95) if base.p95 else np.nan
    if e >= st.min_errors and e / max(n, 1) > ratio + max(st.error_margin, noise):
        return "errors", None
    if (
        n >= st.min_requests
        and not np.isnan(p95)
        and not np.isnan(lat)
        and p95 > lat * st.latency_factor
        and p95 > lat + st.latency_margin_ms
    ):
        return "latency", None
    established = base.active >= st.min_baseline_buckets and rate >= 2 * st.min_requests
    low = established and n / cover < st.traffic_drop * rate
    if low and _quiet_p(n, cover, base) < st.traffic_p:
        # Only a scope with an established rate can fall silent: one burst then nothing
        # (spans orphaned by a crash, seen as entries) is no baseline. A quiet bucket a low
        # rate gives by chance (a run tests thousands of scopes and buckets) is no silence.
        return "traffic", None
    if e >= 1 and e / max(n, 1) > ratio + st.error_margin:
        return None, "errors"
    if low:
        return None, "traffic"
    return None, None


def _streak_departs(
    rows: list[int],
    kind: str,
    n: np.ndarray,
    e: np.ndarray,
    cover: np.ndarray,
    base: _Baseline,
    st: DetectionSettings,
) -> bool:
    """Whether a streak of suspect buckets departs from the baseline on its sums."""
    sn, se = float(n[rows].sum()), float(e[rows].sum())
    if kind == "errors":
        ratio = base.ratio
        noise = 3 * np.sqrt(max(ratio * (1 - ratio), 1e-4) / max(sn, 1))
        return se >= st.min_errors and se / max(sn, 1) > ratio + max(st.error_margin, noise)
    return _quiet_p(sn, float(cover[rows].sum()), base) < st.traffic_p


def _quiet_p(n: float, cover: float, base: _Baseline) -> float:
    """How likely as few as ``n`` requests are in ``cover`` buckets at the baseline's rate.

    Both counts are Poisson, and the baseline's rate is itself estimated from few buckets
    (a chance busy baseline makes a normal bucket look quiet), so the test is the
    conditional one of two Poisson counts: given both totals, the bucket's count is
    binomial with the bucket's share of the time. P(X <= n).
    """
    k, b = int(n), int(round(base.n))
    trials = k + b
    p = cover / (cover + base.normal)
    if trials == 0 or p >= 1:
        return 1.0
    # Terms from j = 0 up, in logs: trials may be thousands, k is small when it matters.
    log_q, log_p = math.log1p(-p), math.log(p)
    term = trials * log_q
    total = math.exp(term)
    for j in range(1, k + 1):
        term += math.log((trials - j + 1) / j) + log_p - log_q
        total += math.exp(term)
    return min(total, 1.0)


def _median(ordered: list[float]) -> float:
    """np.median of an already sorted list."""
    m = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[m]
    return float(np.mean([ordered[m - 1], ordered[m]]))


def _runs_of(flags: list) -> list[tuple[int, int, str]]:
    out, start = [], None
    for i, f in enumerate([*flags, None]):
        if f is not None and start is None:
            start = i
        elif f is None and start is not None:
            signals = [x for x in flags[start:i] if x]
            # The most frequent signal; on a tie the first seen (a set's order would
            # change from one process to the next with string hashing).
            out.append((start, i - 1, max(dict.fromkeys(signals), key=signals.count)))
            start = None
    return out


def merge_windows(
    windows: list[Window], *, gap_ns: int, same_scope_gap_ns: int = 0
) -> list[list[Window]]:
    """Group windows of one run that overlap in time (or nearly touch) into incidents.

    A window of a scope that already departed in the incident on the same signal joins it
    across a quiet gap up to ``same_scope_gap_ns``: the same scope departing the same way
    soon after is the same low-rate fault, whose clean buckets split its stretch.
    """
    groups: list[list[Window]] = []
    ordered = sorted(windows, key=lambda w: (w.run, w.start_ns))
    # Windows that start in the same bucket are one departure, judged together: one of them
    # of a scope that departed before pulls them all into that incident.
    for (run, start), batch in itertools.groupby(ordered, key=lambda w: (w.run, w.start_ns)):
        batch = list(batch)
        if groups and groups[-1][0].run == run:
            g = groups[-1]
            end = max(x.end_ns for x in g)
            scopes = {(w.scope, w.key, w.signal) for w in batch}
            same = max((x.end_ns for x in g if (x.scope, x.key, x.signal) in scopes), default=None)
            if start <= end + gap_ns or (same is not None and start <= same + same_scope_gap_ns):
                g.extend(batch)
                continue
        groups.append(batch)
    return groups
