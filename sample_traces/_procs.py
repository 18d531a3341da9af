"""Spawning, supervising and stopping the sample system's processes.

Each service process runs in its own process group (``start_new_session``),
so that stopping it stops whatever it started. Every live group is in
``_LIVE``; an ``atexit`` hook and the runner's ``finally`` both stop them
(SIGTERM, then SIGKILL after a grace period), so a run leaves nothing behind
even when it is interrupted.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    """One service of a run and its current incarnation."""

    service: str
    role: str
    port: int
    version: str
    env: dict[str, str]
    log_dir: Path
    popen: subprocess.Popen[bytes] | None = None
    instance_id: str = ""
    incarnation: int = 0
    started_ns: int = 0
    expected_exit: bool = False
    instances: list[dict[str, object]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, *, extra_env: dict[str, str] | None = None) -> None:
        """Start a new incarnation with a fresh service.instance.id."""
        self.instance_id = uuid.uuid4().hex
        self.incarnation += 1
        self.started_ns = time.time_ns()
        self.expected_exit = False
        env = {**os.environ, **self.env, **(extra_env or {})}
        env["OTEL_SERVICE_NAME"] = self.service
        env["OTEL_RESOURCE_ATTRIBUTES"] = ",".join(
            [
                env.get("OTEL_RESOURCE_ATTRIBUTES", ""),
                f"service.instance.id={self.instance_id}",
                f"service.version={self.version}",
            ]
        ).strip(",")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stderr = open(self.log_dir / f"{self.service}.{self.incarnation}.stderr", "wb")  # noqa: SIM115
        with stderr:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "faultlens.sample_traces._serve",
                    self.role,
                    "--port",
                    str(self.port),
                ],  # fmt: skip
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        _LIVE[self.popen.pid] = self.popen
        self.instances.append(
            {
                "service": self.service,
                "instance_id": self.instance_id,
                "version": self.version,
                "pid": self.popen.pid,
                "started_ns": self.started_ns,
                "ended_ns": None,
                "exit_code": None,
            }
        )

    def exited(self) -> int | None:
        """The exit code if the current incarnation has ended (negative: killed by a signal)."""
        if self.popen is None:
            return None
        code = self.popen.poll()
        if code is not None and self.instances[-1]["ended_ns"] is None:
            self.instances[-1]["ended_ns"] = time.time_ns()
            self.instances[-1]["exit_code"] = code
            _LIVE.pop(self.popen.pid, None)
        return code

    def stop(self, *, grace_s: float = 5.0) -> None:
        """SIGTERM the process group (the service flushes its telemetry), SIGKILL if it hangs."""
        if self.popen is None:
            return
        self.expected_exit = True
        stop_group(self.popen, grace_s=grace_s)
        self.exited()


def stop_group(popen: subprocess.Popen[bytes], *, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=5)
    # The group may outlive its leader (a child it forked); make sure none of it remains.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    _LIVE.pop(popen.pid, None)


def stop_all(*, grace_s: float = 5.0) -> None:
    """Stop every process group this module started and that is still alive."""
    for popen in list(_LIVE.values()):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for popen in list(_LIVE.values()):
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        stop_group(popen, grace_s=0.1)


atexit.register(stop_all)


async def wait_healthy(
    client: httpx.AsyncClient, procs: list[ServiceProcess], *, timeout_s: float = 60.0
) -> None:
    """Wait until every process answers /healthz; fail naming the ones that did not."""
    deadline = time.monotonic() + timeout_s
    pending = list(procs)
    while pending and time.monotonic() < deadline:
        still = []
        for proc in pending:
            if proc.exited() is not None:
                tail = (proc.log_dir / f"{proc.service}.{proc.incarnation}.stderr").read_text()
                raise RuntimeError(f"{proc.service} exited at startup:\n{tail[-2000:]}")
            try:
                r = await client.get(f"{proc.url}/healthz", timeout=1.0)
                if r.status_code != 200:
                    still.append(proc)
            except httpx.HTTPError:
                still.append(proc)
        pending = still
        if pending:
            await asyncio.sleep(0.1)
    if pending:
        names = ", ".join(p.service for p in pending)
        raise RuntimeError(f"not healthy after {timeout_s:.0f} s: {names}")


async def arm(client: httpx.AsyncClient, procs: list[ServiceProcess], plan_json: str) -> None:
    """Hand the fault plan to every running process."""
    for proc in procs:
        r = await client.post(
            f"{proc.url}/_faultlens/fault",
            content=plan_json,
            headers={"content-type": "application/json"},
            timeout=5.0,
        )
        r.raise_for_status()
