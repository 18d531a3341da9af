"""The load generator: a seeded traffic mix at a fixed rate, every outcome recorded.

Open loop (a request starts on schedule whether or not earlier ones have
answered), bounded by a client timeout and a cap on requests in flight.
Each request carries a ``traceparent`` made here, so its trace id is known
even when the server was dead and recorded nothing.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from typing import Any

import httpx

from faultlens.sample_traces._models import ENDPOINTS, RARE_WORDS, VOCABULARY

CLIENT_TIMEOUT_S = 4.0
MAX_IN_FLIGHT = 100


def payload(endpoint: str, rng: random.Random) -> dict[str, Any]:
    """A request body for an endpoint; ~30% of texts hold a word the tokenizer never saw."""
    user = f"u{rng.randrange(500)}"
    if endpoint in ("/sentiment", "/search"):
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(3, 8))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(RARE_WORDS))
        return {"text": " ".join(words), "user": user}
    return {
        "user": user,
        "amount": round(rng.lognormvariate(3.5, 1.0), 2),
        "foreign": int(rng.random() < 0.1),
    }


async def generate(
    base_url: str, *, rate: float, seconds: float, seed: int, start_ns: int
) -> list[dict[str, Any]]:
    """Send ``rate * seconds`` requests from ``start_ns`` on; return one record per request."""
    if not base_url.startswith(("http://127.0.0.1", "http://localhost")):
        raise ValueError(f"the load generator only targets loopback, not {base_url}")
    rng = random.Random(seed)
    endpoints = list(ENDPOINTS)
    records: list[dict[str, Any]] = []
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=20)

    async def one(client: httpx.AsyncClient, endpoint: str, body: dict[str, Any]) -> None:
        trace_id = secrets.token_hex(16)
        record: dict[str, Any] = {"trace_id": trace_id, "endpoint": endpoint}
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        async with slots:
            t0 = time.time_ns()
            try:
                r = await client.post(f"{base_url}{endpoint}", json=body, headers=headers)
                record.update(status=r.status_code, error=None if r.is_success else r.text[:200])
            except httpx.HTTPError as exc:
                record.update(status=0, error=f"{type(exc).__name__}: {exc}"[:200])
            t1 = time.time_ns()
        record.update(
            start_ns=t0,
            latency_ms=round((t1 - t0) / 1e6, 3),
            outcome="ok" if record["status"] == 200 else "error",
            models=list(ENDPOINTS[endpoint]),
        )
        records.append(record)

    n = int(rate * seconds)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, limits=limits) as client:
        tasks = []
        for i in range(n):
            delay = (start_ns + int(i * 1e9 / rate) - time.time_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            endpoint = rng.choice(endpoints)
            tasks.append(asyncio.create_task(one(client, endpoint, payload(endpoint, rng))))
        await asyncio.gather(*tasks)
    records.sort(key=lambda r: r["start_ns"])
    return records
