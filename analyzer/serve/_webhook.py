"""Paging: POST each incident event to the ``--webhook`` URLs, never in ingest's way.

Each URL has its own bounded queue and delivery thread, so a hanging receiver delays
only its own pages. A delivery is retried with exponential backoff on a connection error
or a non-2xx answer; one that still fails, or an event that finds the queue full, is one
log line. Nothing here touches the store or the receiver.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

__all__ = ["Webhooks"]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Target:
    def __init__(self, url: str, owner: Webhooks) -> None:
        self.url = url
        self.owner = owner
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=owner.queue_items)
        self.thread = threading.Thread(target=self._run, name=f"faultlens-webhook {url}")
        self.thread.daemon = True
        self.thread.start()

    def _run(self) -> None:
        o = self.owner
        with httpx.Client(timeout=o.timeout_s) as client:
            while (body := self.jobs.get()) is not None:
                payload = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
                headers = {"content-type": "application/json"}
                error = ""
                for attempt in range(o.attempts):
                    if attempt and o.stopping.wait(o.backoff_s * 2 ** (attempt - 1)):
                        break
                    try:
                        r = client.post(self.url, content=payload, headers=headers)
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                        continue
                    if r.is_success:
                        o.delivered += 1
                        error = ""
                        break
                    error = f"HTTP {r.status_code}"
                if error:
                    o.failed += 1
                    o.log(
                        f"faultlens serve: webhook {self.url}: {body['event']} of "
                        f"{body['incident']['id']} not delivered after {o.attempts} tries "
                        f"({error})"
                    )


class Webhooks:
    """``post(body)`` queues the body for every URL and returns at once."""

    def __init__(
        self,
        urls: list[str],
        *,
        queue_items: int = 256,
        attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self.queue_items = queue_items
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.log = log
        self.stopping = threading.Event()
        self.delivered = 0
        self.failed = 0
        self.targets = [_Target(url, self) for url in urls]

    def post(self, body: dict[str, Any]) -> None:
        for t in self.targets:
            try:
                t.jobs.put_nowait(body)
            except queue.Full:
                self.failed += 1
                self.log(f"faultlens serve: webhook {t.url}: queue full, {body['event']} dropped")

    def close(self, *, grace_s: float = 5.0) -> None:
        """Deliver what is queued within ``grace_s``, then stop retrying."""
        deadline = time.monotonic() + grace_s
        for t in self.targets:
            with contextlib.suppress(queue.Full):
                t.jobs.put(None, timeout=max(0.0, deadline - time.monotonic()))
        for t in self.targets:
            t.thread.join(max(0.0, deadline - time.monotonic()))
        self.stopping.set()
        for t in self.targets:
            t.thread.join(self.timeout_s)
