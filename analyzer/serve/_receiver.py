"""The OTLP/HTTP receiver of `faultlens serve` and `collect`: it writes into the DuckDB store.

POST /v1/traces, /v1/logs and /v1/metrics, protobuf or JSON, optionally gzip-encoded.

- 401 without the bearer token when one is set; 413 when the body is over the
  limit, before or after decompression (gzip is inflated incrementally with a
  cap, so a gzip bomb costs no memory); 400 when the body does not decode;
  429 with Retry-After when the write queue is full.
- Records that decode but are invalid (malformed ids, ...) are quarantined and
  counted in the response's ``partialSuccess``; the good ones beside them are stored.
- One writer thread drains the queue and commits everything waiting in one
  transaction (group commit). A request is answered 200 only after its rows are
  committed, so an acknowledged export survives a SIGKILL. Shutdown drains the
  queue, then refreshes the stored span facts (``facts._stored.store_facts``) when spans
  were written, so that the analysis of what was collected reads them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import sys
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..decode._columns import LogColumns, Reject, TraceColumns
from ..decode._metrics import MetricColumns
from ..decode._otlp_json import Decoded, decode_document
from ..decode._otlp_proto import decode_message
from ..facts._stored import store_facts
from ..store._write import DEFAULT_DB, connect, write_batch

__all__ = ["Busy", "Receiver", "StoreFailed", "TooLarge", "accept", "receiver_app"]

MAX_BODY = 32 << 20  # bytes, compressed and decompressed
QUEUE_ITEMS = 256  # requests waiting for the writer before 429
_GROUP = 64  # requests committed together at most
# Per signal: the body's message, its JSON key, the response and its partialSuccess field.
_SIGNALS: dict[str, tuple[Any, str, Any, str]] = {
    "traces": (TracesData, "resourceSpans", ExportTraceServiceResponse, "rejectedSpans"),
    "logs": (LogsData, "resourceLogs", ExportLogsServiceResponse, "rejectedLogRecords"),
    "metrics": (MetricsData, "resourceMetrics", ExportMetricsServiceResponse, "rejectedDataPoints"),
}


class TooLarge(Exception):
    pass


class Busy(Exception):
    pass


@dataclass
class _Job:
    source: str
    signal: str
    table: pa.Table | dict[str, pa.Table] | None  # metrics: one table per metrics table
    rejects: list[tuple[str, Reject]]
    read: int
    done: Callable[[BaseException | None], None] = field(repr=False)


class Receiver:
    """The write side: a bounded queue and the single writer thread that drains it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, queue_items: int = QUEUE_ITEMS):
        self.con = con
        # One DuckDB thread for the small group commits (a request's few hundred spans):
        # a second costs CPU to hand out work that small, CPU the decoding needs. The span
        # facts at shutdown get the connection's own setting back.
        self.threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        con.execute("SET threads = 1")
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_items)
        self.run_id = f"collect-{uuid.uuid4().hex[:12]}"
        self.requests = itertools.count(1)
        self.wrote_spans = False
        self.commits = 0  # committed groups: what readers key their caches on
        self.thread = threading.Thread(target=self._run, name="faultlens-writer", daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise Busy() from None

    def close(self) -> None:
        """Flush everything queued, stop the writer, then refresh the span facts (every
        request has been answered by then: its rows were committed first)."""
        self.jobs.put(None)
        self.thread.join()
        self.con.execute(f"SET threads = {int(self.threads)}")
        if self.wrote_spans:
            try:
                store_facts(self.con)
            except Exception as exc:  # the spans are stored; the analysis derives its facts
                print(f"faultlens collect: span facts not refreshed: {exc}", file=sys.stderr)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self.jobs.get()
            if first is None:
                break
            group = [first]
            while len(group) < _GROUP:
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            self._commit(group)

    def _commit(self, group: list[_Job]) -> None:
        traces = [j.table for j in group if j.signal == "traces" and j.table is not None]
        logs = [j.table for j in group if j.signal == "logs" and j.table is not None]
        read = {signal: sum(j.read for j in group if j.signal == signal) for signal in _SIGNALS}
        points: dict[str, list[pa.Table]] = {}
        for job in group:
            if job.signal == "metrics":
                for name, rows in (job.table or {}).items():
                    points.setdefault(name, []).append(rows)
        error: BaseException | None = None
        try:
            counts = write_batch(
                self.con,
                run_id=self.run_id,
                source=group[0].source,
                traces=pa.concat_tables(traces) if traces else None,
                logs=pa.concat_tables(logs) if logs else None,
                rejects=[r for j in group for r in j.rejects],
                read=read,
                metrics={name: pa.concat_tables(rows) for name, rows in points.items()},
            )
            self.wrote_spans = self.wrote_spans or counts.stored["traces"] > 0
            self.commits += 1
        except Exception as exc:  # reported to every waiting request as a 503
            error = exc
        for job in group:
            job.done(error)


def _read_limited(chunks: list[bytes], encoding: str, limit: int) -> bytes:
    """The request body, inflated when gzip, never holding more than `limit` bytes."""
    if encoding in ("", "identity"):
        return b"".join(chunks)
    if encoding not in ("gzip", "x-gzip"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    for chunk in chunks:
        data = chunk
        while data:
            out += inflater.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise TooLarge()
            data = inflater.unconsumed_tail
    if not inflater.eof:
        raise ValueError("truncated gzip body")
    return bytes(out)


def _decode(body: bytes, signal: str, is_json: bool, label: str) -> Decoded:
    out = Decoded()
    if is_json:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"body is not valid JSON ({exc.msg})") from None
        if not isinstance(doc, dict):
            raise ValueError("body is not an OTLP JSON object")
        key = _SIGNALS[signal][1]
        decode_document({key: doc.get(key) or []}, label, out)
    else:
        try:
            message = _SIGNALS[signal][0].FromString(body)
        except DecodeError as exc:
            raise ValueError(f"body is not an OTLP protobuf message ({exc})") from None
        decode_message(message, label, out)
    return out


def _decode_body(
    chunks: list[bytes], encoding: str, limit: int, signal: str, is_json: bool, label: str
) -> tuple[
    Decoded, TraceColumns | LogColumns | MetricColumns, pa.Table | dict[str, pa.Table] | None
]:
    """A request's body inflated, decoded and made a table: one trip to a worker thread
    (the event loop only reads bodies and answers)."""
    decoded = _decode(_read_limited(chunks, encoding, limit), signal, is_json, label)
    cols = getattr(decoded, signal)
    return decoded, cols, cols.to_arrow()


class StoreFailed(Exception):
    """The group commit holding the request failed; nothing of it was acknowledged."""


async def accept(
    receiver: Receiver,
    chunks: list[bytes],
    *,
    source: str,
    path: str,
    signal: str,
    is_json: bool,
    encoding: str,
    max_body: int,
) -> tuple[int, str]:
    """Decode one export request, queue it and wait until its rows are committed: the
    part every OTLP transport shares. Returns the rejected records' count and message.

    Raises TooLarge (decompressed body over ``max_body``), ValueError/zlib.error (does
    not decode), Busy (write queue full) or StoreFailed (the commit failed).
    """
    label = f"{path} request {next(receiver.requests)}"
    decoded, cols, table = await run_in_threadpool(
        _decode_body, chunks, encoding, max_body, signal, is_json, label
    )
    rejects = [(signal, r) for r in cols.rejects + decoded.rejects]
    loop = asyncio.get_running_loop()
    committed: asyncio.Future[BaseException | None] = loop.create_future()

    def done(error: BaseException | None) -> None:
        loop.call_soon_threadsafe(committed.set_result, error)

    receiver.submit(_Job(source, signal, table, rejects, cols.read + decoded.read, done))
    error = await committed
    if error is not None:
        raise StoreFailed(f"store write failed: {error}")
    return len(rejects), "; ".join(f"{r.position}: {r.reason}" for _, r in rejects[:5])


def _response(signal: str, is_json: bool, rejected: int, message: str) -> Response:
    _, _, response, name = _SIGNALS[signal]
    if is_json:
        payload: dict[str, Any] = {}
        if rejected:
            payload["partialSuccess"] = {name: str(rejected), "errorMessage": message}
        return Response(orjson.dumps(payload), 200, media_type="application/json")
    msg: Any = response()
    if rejected:
        field = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)  # rejected_spans
        setattr(msg.partial_success, field, rejected)
        msg.partial_success.error_message = message
    return Response(msg.SerializeToString(), 200, media_type="application/x-protobuf")


def _status(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", code, headers=headers, media_type="text/plain")


def receiver_app(
    db: str | Path | duckdb.DuckDBPyConnection = DEFAULT_DB,
    *,
    token: str | None = None,
    max_body: int = MAX_BODY,
    queue_items: int = QUEUE_ITEMS,
    routes: list[Route] | None = None,
    around: Callable[[Receiver], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> Starlette:
    """The ASGI app of the receiver; ``routes`` are served beside the OTLP ones and
    ``around(receiver)`` is entered once the writer runs and left before it flushes
    (``faultlens serve`` starts its gRPC server, reads and live detection there)."""
    state: dict[str, Any] = {}

    async def export(request: Request) -> Response:
        signal = request.url.path.rsplit("/", 1)[-1]  # traces, logs or metrics (the routes)
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            return _status(401, "missing or wrong bearer token")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            return _status(413, f"body over {max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                return _status(413, f"body over {max_body} bytes")
            chunks.append(chunk)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = content_type == "application/json"
        if not is_json and content_type not in ("application/x-protobuf", "application/protobuf"):
            return _status(415, f"unsupported Content-Type {content_type!r}")
        try:
            rejected, message = await accept(
                state["receiver"],
                chunks,
                source="otlp-http",
                path=request.url.path,
                signal=signal,
                is_json=is_json,
                encoding=request.headers.get("content-encoding", "").strip().lower(),
                max_body=max_body,
            )
        except TooLarge:
            return _status(413, f"decompressed body over {max_body} bytes")
        except (ValueError, zlib.error) as exc:
            return _status(400, str(exc))
        except Busy:
            return _status(429, "write queue full, retry later", {"Retry-After": "1"})
        except StoreFailed as exc:
            return _status(503, str(exc), {"Retry-After": "1"})
        return _response(signal, is_json, rejected, message)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        con = db if isinstance(db, duckdb.DuckDBPyConnection) else connect(db)
        state["receiver"] = Receiver(con, queue_items=queue_items)
        await run_in_threadpool(lambda: None)  # the worker threads' start-up, before a request
        try:
            if around is None:
                yield
            else:
                async with around(state["receiver"]):
                    yield
        finally:
            await run_in_threadpool(state["receiver"].close)
            if con is not db:
                con.close()

    otlp = [
        Route("/v1/traces", export, methods=["POST"]),
        Route("/v1/logs", export, methods=["POST"]),
        Route("/v1/metrics", export, methods=["POST"]),
    ]
    return Starlette(routes=otlp + (routes or []), lifespan=lifespan)
