"""Incident detection: each scope's abnormal stretches of buckets, merged into incidents.

A scope (endpoint, model or service) is abnormal in a bucket when its error ratio, p95
latency or traffic departs from its own baseline (``DetectionSettings``); windows of any
scope that overlap or lie within ``merge_gap_buckets`` of each other are one incident.
"""

from __future__ import annotations

import bisect
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
    """A sequential scan: the baseline only ever holds buckets judged normal."""
    flags: list[str | None] = [None] * len(n)
    base_n = base_e = 0.0
    base_p95: list[float] = []  # kept sorted: the median is read, not recomputed
    normal = active = 0
    for i in range(len(n)):
        signal = None
        if cover[i] < 0.5:
            continue
        if normal >= st.min_baseline_buckets:
            rate = base_n / normal
            ratio = base_e / base_n if base_n else 0.0
            noise = 3 * np.sqrt(max(ratio * (1 - ratio), 1e-4) / max(n[i], 1))
            lat = _median(base_p95) if base_p95 else np.nan
            if e[i] >= st.min_errors and e[i] / max(n[i], 1) > ratio + max(st.error_margin, noise):
                signal = "errors"
            elif (
                n[i] >= st.min_requests
                and not np.isnan(p95[i])
                and not np.isnan(lat)
                and p95[i] > lat * st.latency_factor
                and p95[i] > lat + st.latency_margin_ms
            ):
                signal = "latency"
            elif (
                active >= st.min_baseline_buckets
                and rate >= 2 * st.min_requests
                and n[i] / cover[i] < st.traffic_drop * rate
            ):
                # Only a scope with an established rate can fall silent: one burst then
                # nothing (spans orphaned by a crash, seen as entries) is no baseline.
                signal = "traffic"
        if signal is None:
            normal += 1
            base_n += n[i] / cover[i]
            base_e += e[i]
            active += int(n[i] > 0)
            if not np.isnan(p95[i]):
                bisect.insort(base_p95, float(p95[i]))
        flags[i] = signal
    return flags


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


def merge_windows(windows: list[Window], *, gap_ns: int) -> list[list[Window]]:
    """Group windows of one run that overlap in time (or nearly touch) into incidents."""
    groups: list[list[Window]] = []
    for w in sorted(windows, key=lambda w: (w.run, w.start_ns)):
        if groups and groups[-1][0].run == w.run:
            end = max(x.end_ns for x in groups[-1])
            if w.start_ns <= end + gap_ns:
                groups[-1].append(w)
                continue
        groups.append([w])
    return groups
