"""Each model scope's own CPU time (``faultlens.model.cpu.time``), asyncio steps included.

A scope reads its thread's CPU clock (``time.thread_time``) when it is entered and when
it is left. In synchronous code that is the scope's own work. In a coroutine that awaits
inside the scope, the thread's clock also runs while the event loop executes *other*
tasks' steps; a monolith serving many requests at once would then charge its model with
its neighbours' work (measured: a model that awaits a feature store was charged twice
its own CPU in a monolith). So the clock of an open scope runs only during the steps of
the task that holds it: the event loop runs each task step as an ``asyncio.Handle`` in
that task's context, and ``Handle._run`` is wrapped (while metrics are on) to resume the
clocks open in that context before the step and pause them after it. asyncio has no
public per-step hook; this wrapper is the narrowest place that sees every step, and it
costs two context look-ups per callback when no scope is open.

A task created inside a scope copies the scope into its context, so its steps count
toward the scope too (work done on the scope's behalf). Other event loops whose handles
are not ``asyncio.events.Handle`` (uvloop) are not stepped: there a scope that awaits
still counts everything its thread ran meanwhile (an upper bound).
"""

from __future__ import annotations

import asyncio.events
import contextvars
import threading
import time
from typing import Any

__all__ = ["Clock", "open_scopes", "record", "recording", "set_cpu_counter"]


class Clock:
    """A scope's thread CPU time: accumulated over the steps it ran in, and what its
    nested scopes already claimed."""

    __slots__ = ("nested", "spent", "since", "thread")

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.since: float | None = time.thread_time()  # None while its task is suspended
        self.spent = 0.0
        self.nested = 0.0

    def pause(self, now: float) -> None:
        if self.since is not None:
            self.spent += now - self.since
            self.since = None

    def resume(self, now: float) -> None:
        if self.since is None:
            self.since = now

    def total(self, now: float) -> float:
        return self.spent + (now - self.since if self.since is not None else 0.0)


# Each entered scope pushes (span, otel token, clock or None) here; a contextvar (not the
# scope object) holds it so one `model` object can be entered concurrently by many tasks
# and threads, and so the step wrapper finds the clocks of the task it runs.
open_scopes: contextvars.ContextVar[tuple[tuple[Any, object, Clock | None], ...]] = (
    contextvars.ContextVar("faultlens_open_model_scopes", default=())
)

# The counter scopes add their CPU time to: set by configure(metrics=True) (_metrics.py),
# None otherwise, so that scopes cost no clock reads when metrics are off.
_cpu_counter: Any = None
_unwrapped_run = asyncio.events.Handle._run


def recording() -> bool:
    return _cpu_counter is not None


def _clocks(scopes: tuple[tuple[Any, object, Clock | None], ...]) -> list[Clock]:
    me = threading.get_ident()
    return [c for _, _, c in scopes if c is not None and c.thread == me]


def _stepped_run(handle: asyncio.events.Handle) -> None:
    """``Handle._run``, with the open scopes' clocks of the handle's context running only
    during it."""
    context = handle._context  # type: ignore[attr-defined]
    before = context.get(open_scopes, ())
    if before:
        now = time.thread_time()
        for clock in _clocks(before):
            clock.resume(now)
    try:
        _unwrapped_run(handle)
    finally:
        after = context.get(open_scopes, ())
        if after:  # scopes entered during this step and still open pause here too
            now = time.thread_time()
            for clock in _clocks(after):
                clock.pause(now)


def set_cpu_counter(counter: Any) -> None:
    """Record each model scope's CPU time on ``counter`` (None: stop), stepping asyncio
    tasks while recording."""
    global _cpu_counter
    _cpu_counter = counter
    asyncio.events.Handle._run = _stepped_run if counter is not None else _unwrapped_run  # type: ignore[method-assign]


def record(stamp: dict[str, str], clock: Clock, outer: tuple) -> None:
    """Add the scope's own CPU time (its nested scopes' excluded: they record theirs) to
    the counter, with the model's identity ``stamp``."""
    if clock.thread != threading.get_ident():
        return  # left on another thread: this thread's clock says nothing about it
    spent = clock.total(time.thread_time())
    counter = _cpu_counter
    if counter is not None:
        counter.add(max(spent - clock.nested, 0.0), stamp)
    for _, _, enclosing in reversed(outer):
        if enclosing is not None:
            enclosing.nested += spent
            break
