"""`ingest`: OTLP files into the store, streaming, deduplicated, accounted for.

A reader thread cuts files into chunks (``_decode_files``) a few chunks ahead; decode
threads turn them into Arrow tables, through the vectorised JSON Lines path when it takes
the chunk (pyarrow releases the GIL) and otherwise through the Python decoder (in worker
processes when the input is large); the calling thread merges decoded chunks of one source
into batches of ~200k rows and writes each, in order, in one transaction
(``_store.write_batch``) with one DuckDB thread. About one batch of chunks is decoded ahead
of the writer, so decoding and inserting overlap, and memory stays flat however large the
input. Once every batch is in, the span facts are derived (``facts._stored.store_facts``).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .._settings import TUNING
from ..decode._files import (
    Chunk,
    DecodedChunk,
    chunks,
    decode_chunk,
    decode_chunk_fast,
    expand_paths,
    file_size,
)
from ..facts._stored import store_facts
from ..store._write import DEFAULT_DB, connect, write_batch

__all__ = ["IngestReport", "ingest"]

Progress = Callable[[int, int], None]
_PARALLEL_BYTES = 48 << 20  # below this, worker start-up costs more than it saves
_MAX_ERRORS = 1000
# DuckDB keeps every block it writes cached until its memory limit presses (~51 MB per
# 1M spans: 0.5 GB of a 10M-span ingest's peak RSS). They are on disk already, so the
# writer evicts them every _CACHE_ROWS rows by lowering the limit for a moment (a limit
# kept low costs 15-20% more CPU: DuckDB then evicts and re-allocates on every append).
_CACHE_ROWS = 1_000_000
_ON_DISK = (
    "SELECT path IS NOT NULL FROM duckdb_databases() WHERE database_name = current_database()"
)
# Raw bytes decoded ahead of the writer: about one batch, so that decoding goes on while a
# batch is inserted (the writer only pulls decoded chunks between inserts).


@dataclass(frozen=True)
class IngestReport:
    """What an ingest read and did with it; ``read == stored + duplicates + quarantined``.

    ``errors`` holds one line per problem (``FILE:LINE record N: reason``), the
    first 1000; ``errors_omitted`` counts the rest. ``skipped`` names the files that
    are recognisably not OTLP (``FILE: not OTLP (...)``); ``files`` does not count them.
    ``seconds`` includes ``facts_seconds``, the time spent deriving the span facts
    (``facts._stored.store_facts``) after the last batch.
    """

    files: int
    read: int
    stored: int
    duplicates: int
    quarantined: int
    spans: int
    log_records: int
    errors: tuple[str, ...]
    errors_omitted: int
    seconds: float
    skipped: tuple[str, ...] = ()
    facts_seconds: float = 0.0
    data_points: int = 0  # metric data points stored


class _Decoder:
    """Decodes chunks ahead of the writer, in order, a bounded window at a time.

    A thread tries the vectorized path first (pyarrow and DuckDB release the GIL, so
    decoding the next chunks overlaps the insert of this one, without pickling); a chunk
    it declines goes to worker processes (started on first need) when the input is large,
    since the Python decoder holds the GIL.
    """

    def __init__(self, processes: int, window: int) -> None:
        self.processes = processes
        self.window = window
        self.threads = ThreadPoolExecutor(2, thread_name_prefix="faultlens-decode")
        self.pool: ProcessPoolExecutor | None = None
        self.lock = threading.Lock()

    def _process_pool(self) -> ProcessPoolExecutor:
        with self.lock:
            if self.pool is None:
                context = multiprocessing.get_context("spawn")
                self.pool = ProcessPoolExecutor(self.processes, mp_context=context)
            return self.pool

    def _decode(self, chunk: Chunk) -> DecodedChunk:
        fast = decode_chunk_fast(chunk)
        if fast is not None:
            return fast
        if self.processes > 1:
            return self._process_pool().submit(decode_chunk, chunk, fast=False).result()
        return decode_chunk(chunk, fast=False)

    def decoded(self, items: Iterator[Chunk]) -> Iterator[tuple[Chunk, DecodedChunk]]:
        pending: deque[tuple[Chunk, Future[DecodedChunk]]] = deque()
        for chunk in items:
            pending.append((chunk, self.threads.submit(self._decode, chunk)))
            if len(pending) >= self.window:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()

    def close(self) -> None:
        self.threads.shutdown(cancel_futures=True)
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _concat(tables: list[pa.Table | None]) -> pa.Table | None:
    present = [t for t in tables if t is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else pa.concat_tables(present, promote_options="none")


def _grouped(
    stream: Iterator[tuple[Chunk, DecodedChunk]],
) -> Iterator[tuple[str, int, DecodedChunk]]:
    """Decoded chunks of one source merged up to ``TUNING.batch_rows``: each commit costs a fixed
    amount per column, so fewer, larger transactions load faster."""
    group: list[tuple[Chunk, DecodedChunk]] = []

    def flush() -> tuple[str, int, DecodedChunk]:
        read: dict[str, int] = {}
        for _, d in group:
            for signal, n in d.read.items():
                read[signal] = read.get(signal, 0) + n
        merged = DecodedChunk(
            group[0][0].source,
            _concat([d.traces for _, d in group]),
            _concat([d.logs for _, d in group]),
            [r for _, d in group for r in d.rejects],
            read,
            next((d.skipped for _, d in group if d.skipped), None),
            _merge_metrics([d.metrics for _, d in group]),
        )
        return group[0][0].source, sum(c.consumed for c, _ in group), merged

    rows = 0
    for chunk, decoded in stream:
        if group and chunk.source != group[0][0].source:
            yield flush()
            group, rows = [], 0
        group.append((chunk, decoded))
        rows += sum(t.num_rows for t in (decoded.traces, decoded.logs) if t is not None)
        rows += sum(t.num_rows for t in decoded.metrics.values())
        if rows >= TUNING.batch_rows:
            yield flush()
            group, rows = [], 0
    if group:
        yield flush()


def _merge_metrics(parts: list[dict[str, pa.Table]]) -> dict[str, pa.Table]:
    """Per metrics table, the rows of every decoded chunk."""
    tables: dict[str, list[pa.Table | None]] = {}
    for part in parts:
        for table, rows in part.items():
            tables.setdefault(table, []).append(rows)
    return {table: _concat(rows) for table, rows in tables.items()}


def _all_chunks(files: list[Path]) -> Iterator[Chunk]:
    for path in files:
        yield from chunks(path)


_DONE = object()


def _read_ahead(items: Iterator[Chunk], depth: int) -> Iterator[Chunk]:
    """The chunks, read (and decompressed) by a thread `depth` chunks ahead, so that
    reading overlaps decoding and inserting instead of taking turns with the insert."""
    ready: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        """Queue the item unless the consumer has stopped (then False)."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)

    reader = threading.Thread(target=read, name="faultlens-read", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _evict_written_blocks(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the blocks DuckDB cached while writing (see _CACHE_ROWS); the connection is
    ingest's own, so its limit goes back to DuckDB's default."""
    try:
        con.execute("SET memory_limit = '32MB'")
    except duckdb.Error:
        pass  # only a cache: a limit DuckDB cannot meet now changes nothing
    finally:
        con.execute("RESET memory_limit")


def ingest(
    paths: str | Path | Iterable[str | Path],
    *,
    db: str | Path | duckdb.DuckDBPyConnection = DEFAULT_DB,
    progress: Progress | None = None,
    workers: int | None = None,
    facts_progress: Progress | None = None,
) -> IngestReport:
    """Load OTLP files (traces, logs, metrics; JSON Lines, JSON, protobuf; gzip/zstd;
    directories) into the store.

    ``progress(done_bytes, total_bytes)`` is called after each committed batch, then
    ``facts_progress(done_steps, total_steps)`` while the span facts are derived (none
    when no run changed).
    ``workers`` decoding processes (default: one per core when the input is large).

    Example: ``ingest(["traces.jsonl.gz"], db=".faultlens/faultlens.duckdb")``
    """
    started = time.perf_counter()
    if isinstance(paths, str | Path):
        paths = [paths]
    files, errors = expand_paths(list(paths))
    total = sum(file_size(f) for f in files)
    con = db if isinstance(db, duckdb.DuckDBPyConnection) else connect(db)
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    # One DuckDB thread for the inserts: decoding keeps the other cores busy, and a second
    # insert thread costs ~20% more CPU for the same rows (its row groups merge at commit).
    con.execute(f"SET threads = {TUNING.insert_threads}")
    run_id = uuid.uuid4().hex
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if total >= _PARALLEL_BYTES else 0
    decoder = _Decoder(
        workers, window=max(4, workers + 2, TUNING.window_bytes // TUNING.chunk_bytes)
    )
    sums = dict.fromkeys(
        ("read", "stored", "duplicates", "quarantined", "spans", "logs", "points"), 0
    )
    lines: list[str] = list(errors)
    omitted = 0
    done = 0
    skipped: list[str] = []
    facts_seconds = 0.0
    written = 0  # rows stored since the cached blocks were last evicted
    # Only in a store ingest opened itself (a caller's connection keeps its own limit) and
    # on disk (an in-memory store's blocks have nowhere else to be).
    evict = con is not db and con.execute(_ON_DISK).fetchone()[0]
    read_ahead = _read_ahead(_all_chunks(files), depth=2)
    try:
        stream = decoder.decoded(read_ahead)
        for source, consumed, decoded in _grouped(stream):
            if decoded.skipped:
                skipped.append(f"{source}: {decoded.skipped}")
                done += consumed
                continue
            counts = write_batch(
                con,
                run_id=run_id,
                source=source,
                traces=decoded.traces,
                logs=decoded.logs,
                rejects=decoded.rejects,
                read=decoded.read,
                metrics=decoded.metrics,
            )
            sums["read"] += sum(counts.read.values())
            sums["stored"] += sum(counts.stored.values())
            sums["duplicates"] += sum(counts.duplicates.values())
            sums["quarantined"] += sum(counts.quarantined.values())
            sums["spans"] += counts.stored["traces"]
            sums["logs"] += counts.stored["logs"]
            sums["points"] += counts.stored["metrics"]
            for _, reject in decoded.rejects:
                if len(lines) < _MAX_ERRORS:
                    lines.append(f"{reject.position}: {reject.reason}")
                else:
                    omitted += 1
            done += consumed
            written += sum(counts.stored.values())
            if evict and written >= _CACHE_ROWS:
                _evict_written_blocks(con)
                written = 0
            if progress is not None:
                progress(min(done, total), total)
        con.execute(f"SET threads = {int(threads)}")
        # Derive the span facts every analysis reads once, here (analyzer/_facts.py).
        facts_started = time.perf_counter()
        try:
            store_facts(con, progress=facts_progress)
        except duckdb.Error as exc:  # every record is committed already; say so, keep them
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            store = "the store" if con is db else str(db)
            lines.append(
                f"{store}: span facts not derived ({reason}); every record is stored, and "
                "analyses derive the facts from otel_traces until the next ingest"
            )
        facts_seconds = time.perf_counter() - facts_started
    finally:
        read_ahead.close()  # stops the reader thread (an error may leave chunks unread)
        decoder.close()
        if con is not db:
            con.close()
        else:
            con.execute(f"SET threads = {int(threads)}")
    if progress is not None:
        progress(total, total)
    return IngestReport(
        files=len(files) - len(skipped),
        read=sums["read"],
        stored=sums["stored"],
        duplicates=sums["duplicates"],
        quarantined=sums["quarantined"],
        spans=sums["spans"],
        log_records=sums["logs"],
        errors=tuple(lines),
        errors_omitted=omitted,
        seconds=time.perf_counter() - started,
        skipped=tuple(skipped),
        facts_seconds=facts_seconds,
        data_points=sums["points"],
    )
