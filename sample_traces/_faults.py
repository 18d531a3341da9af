"""Faults, injected for real into one model (or the feature store) of a running process.

The runner hands every process the same plan (kind, target, onset_ns, end_ns,
params): through ``POST /_faultlens/fault`` once the process is up, and in
``FAULTLENS_FAULT`` (JSON) to every process it (re)starts later. A process applies it only to its
own target and only while the wall clock is inside the window, so a process
the supervisor restarts mid-incident picks the fault up again, as a real
crash loop would. Nothing here writes spans: the exceptions, sleeps, busy
loops, allocations and exits are the fault, and the instrumentation records
whatever they cause.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("faultlens.sample.faults")

FAULT_ENV = "FAULTLENS_FAULT"
# Held on purpose: the memory-growth fault keeps what it allocates.
_LEAK: list[bytearray] = []


class InjectedError(RuntimeError):
    """The error-burst fault: a model raising on a share of its requests."""


@dataclass(frozen=True)
class FaultPlan:
    """What to break, where, and when (wall-clock ns)."""

    kind: str
    target: str  # a model name, or "feature-store"
    onset_ns: int
    end_ns: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_env(cls) -> FaultPlan | None:
        raw = os.environ.get(FAULT_ENV)
        return cls(**json.loads(raw)) if raw else None

    def active(self, target: str) -> bool:
        return target == self.target and self.onset_ns <= time.time_ns() < self.end_ns


_PLAN = FaultPlan.from_env()
_counter = 0


def set_plan(plan: FaultPlan | None) -> None:
    """Arm (or clear) the fault in this process; the runner's control call lands here."""
    global _PLAN
    _PLAN = plan


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


_BASE_RSS_MB = _rss_mb()


async def before_call(target: str) -> None:
    """Apply the fault, if this target is broken right now, in its request path."""
    global _counter
    plan = _PLAN
    if plan is None or not plan.active(target):
        return
    p = plan.params
    _counter += 1
    if plan.kind == "error-burst":
        # Deterministic share: every k-th request of the window fails.
        if _counter % int(p.get("every", 2)) == 0:
            log.error("%s: injected failure #%d", target, _counter)
            raise InjectedError(f"{target}: internal error (injected burst)")
    elif plan.kind in ("latency", "slow-model", "slow-dependency"):
        await asyncio.sleep(float(p["delay_s"]))
    elif plan.kind == "cpu-hog":
        # A pure-Python loop: holds the GIL and, on the event loop, every request behind it.
        deadline = time.perf_counter() + float(p["busy_s"])
        x = 0
        while time.perf_counter() < deadline:
            for i in range(1000):
                x ^= i * i
    elif plan.kind == "crash":
        log.critical("%s: fatal error, process exiting", target)
        os._exit(70)
    elif plan.kind == "memory-leak":
        # Filled, not just reserved, so the pages are really resident.
        _LEAK.append(bytearray(b"\x01") * int(float(p["step_mb"]) * 2**20))
        grown = _rss_mb() - _BASE_RSS_MB
        if grown > float(p["limit_mb"]):
            log.critical("%s: out of memory (grew %.0f MB), killed", target, grown)
            # What the kernel's OOM killer does: SIGKILL, no cleanup.
            os.kill(os.getpid(), signal.SIGKILL)
        elif _counter % 10 == 0:
            log.warning("%s: memory grew %.0f MB since start", target, grown)
