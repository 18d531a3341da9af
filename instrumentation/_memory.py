"""A model's load-time memory: how much the process's resident memory grew while it loaded.

Memory cannot be split by model inside one heap: every model's arrays, the interpreter
and the server share it, and what a request allocates is freed into a common pool. What
can be measured is the growth of the process's resident set size (RSS) while a service
loads one model, when it loads it under that model's scope::

    with model("fraud", version="1.4.2").loading():
        weights = load_weights()

``loading()`` reads the RSS on entry and on exit and, with ``configure(metrics=True)``,
records the difference on the gauge ``faultlens.model.load.memory_growth`` (``By``, with
the model's ``ml.model.*`` attributes; exported at every interval, so a process's last
load is in every export after it). Spans and logs inside the scope carry the identity;
it opens no span (a load is no request).

It is an estimate of the model's own footprint, not a measurement of it: the growth
includes whatever else the process allocated meanwhile (another thread's work, allocator
arenas reserved for later), and misses memory the load reused from freed pages or mapped
without touching. A process's footprint (``process.memory.usage``) is the measured figure;
the cost analysis reports both and says which is which.

The RSS comes from psutil when it is installed (the ``faultlens[metrics]`` extra brings
it), else from ``/proc/self/statm``; where neither answers nothing is recorded.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["LOAD_METRIC", "record_load", "recording", "rss_bytes", "set_load_gauge"]

LOAD_METRIC = "faultlens.model.load.memory_growth"

# The gauge load scopes record on: set by configure(metrics=True) (_metrics.py).
_load_gauge: Any = None
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def set_load_gauge(gauge: Any) -> None:
    """Record each load's growth on ``gauge`` (None: stop)."""
    global _load_gauge
    _load_gauge = gauge


def recording() -> bool:
    return _load_gauge is not None


def rss_bytes() -> int | None:
    """The process's resident set size now, or None where it cannot be read."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.Process().memory_info().rss)
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def record_load(stamp: dict[str, str], before: int | None) -> None:
    """The growth since ``before`` on the gauge, when metrics are on."""
    gauge = _load_gauge
    if gauge is None or before is None:
        return
    after = rss_bytes()
    if after is not None:
        gauge.set(after - before, stamp)
