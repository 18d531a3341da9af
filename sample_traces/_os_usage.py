"""What the OS says the run's processes used: CPU time and resident memory, from psutil.

The runner samples every live incarnation every ``INTERVAL_S`` from outside (the same
counters the services' system-metrics instrumentation exports from inside), so the cost
analysis can be checked against the OS: truth.json's ``os_usage`` holds the samples as
``[t_ns, instance index, cpu_seconds (user + system), rss_bytes]`` with the instance ids
listed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import psutil

from ._procs import ServiceProcess

INTERVAL_S = 0.5


async def sample(procs: list[ServiceProcess], stop: asyncio.Event) -> dict[str, Any]:
    """Sample every running incarnation of ``procs`` until ``stop`` is set."""
    handles: dict[int, psutil.Process] = {}
    instances: list[str] = []
    rows: list[list[Any]] = []
    while not stop.is_set():
        for proc in procs:
            if proc.popen is None or proc.popen.returncode is not None:
                continue
            pid = proc.popen.pid
            with contextlib.suppress(psutil.Error):  # it died between the check and the read
                handle = handles.get(pid) or handles.setdefault(pid, psutil.Process(pid))
                with handle.oneshot():
                    times, rss = handle.cpu_times(), handle.memory_info().rss
                if proc.instance_id not in instances:
                    instances.append(proc.instance_id)
                rows.append([time.time_ns(), instances.index(proc.instance_id),
                             round(times.user + times.system, 2), rss])  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), INTERVAL_S)
    return {"interval_s": INTERVAL_S, "instances": instances, "rows": rows}
