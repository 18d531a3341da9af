"""Files into decodable chunks: compression, framing and format, detected from content.

- gzip and zstd are recognised by their magic bytes (whole-file compression);
- text starting with ``{``: OTLP JSON Lines when the first line is a JSON value
  on its own, otherwise one whole JSON document;
- a first byte of 0 with a plausible big-endian length: the Collector file
  exporter's length-prefixed records (each may itself be zstd-compressed, as the
  exporter writes them with ``compression: zstd``), JSON or protobuf;
- anything else: one bare protobuf message (TracesData, LogsData, MetricsData, or an
  Export*ServiceRequest).

Chunks are plain data so that worker processes can decode them.
"""

from __future__ import annotations

import gc
import gzip
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import zstandard

from .._settings import TUNING
from ._columns import Reject
from ._fast import decode_traces_fast
from ._otlp_json import Decoded, decode_document, decode_json_lines
from ._otlp_proto import decode_protobuf

__all__ = ["Chunk", "DecodedChunk", "chunks", "decode_chunk", "decode_chunk_fast", "expand_paths"]

# Bytes per decoded chunk (8 MB: less memory and fewer page faults than 24 MB, and
# less per-chunk overhead than 4 MB); the environment override exists for the kill -9 test.
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_SUFFIXES = {".json", ".jsonl", ".ndjson", ".pb", ".binpb", ".proto", ".protobuf", ".otlp", ".bin"}
_COMPRESSED = {".gz", ".zst", ".zstd"}
_MAX_FRAME = 1 << 30
_OTLP_KEYS = ("resourceSpans", "resourceLogs", "resourceMetrics", "resourceProfiles")
NOT_OTLP = "not OTLP (no resourceSpans/resourceLogs)"


def _not_otlp(doc: object) -> bool:
    """A JSON value that is recognisably something else: an object (or a list of them)
    with fields, none of them OTLP's. ``{}`` is an empty TracesData, so it is OTLP."""
    docs = doc if isinstance(doc, list) else [doc]
    return bool(docs) and all(
        isinstance(d, dict) and d and not any(k in d for k in _OTLP_KEYS) for d in docs
    )


@dataclass
class Chunk:
    """A piece of one source that decodes on its own."""

    source: str
    kind: str  # "jsonl" | "json" | "frames" | "proto" | "error"
    data: Any
    first_line: int = 1
    consumed: int = 0  # bytes of the file on disk this chunk accounts for (progress)


@dataclass
class DecodedChunk:
    """A decoded chunk: tables of valid rows, rejects by signal, records read by signal."""

    source: str
    traces: pa.Table | None
    logs: pa.Table | None
    rejects: list[tuple[str, Reject]] = field(default_factory=list)
    read: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # why the whole source was skipped (it is not OTLP)
    metrics: dict[str, pa.Table] = field(default_factory=dict)  # metrics table -> rows


def expand_paths(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to read (directories recursively, OTLP-looking names only) and path errors."""
    files: list[Path] = []
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and not found.name.startswith(".") and _otlp_name(found):
                    files.append(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or directory")
    return files, errors


def _otlp_name(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in _SUFFIXES


class _Counting(io.RawIOBase):
    """Counts the bytes read from the file on disk, for progress through compression."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n or 0


def _open(path: Path) -> tuple[IO[bytes], _Counting]:
    raw = open(path, "rb")  # noqa: SIM115 (closed by the caller through the stream)
    head = raw.read(4)
    raw.seek(0)
    counting = _Counting(raw)
    buffered = io.BufferedReader(counting, 1 << 20)
    if head[:2] == _GZIP:
        return gzip.GzipFile(fileobj=buffered), counting
    if head == _ZSTD:
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_size=1 << 20), counting
    return buffered, counting


def chunks(path: Path, *, chunk_bytes: int | None = None) -> Iterator[Chunk]:
    """The decodable chunks of one file, read as a stream (memory stays bounded)."""
    source = str(path)
    chunk_bytes = chunk_bytes or TUNING.chunk_bytes
    stream, counting = _open(path)
    with stream, counting.raw:
        try:
            names = [x.lower() for x in path.suffixes]
            json_name = any(x in (".json", ".jsonl", ".ndjson") for x in names)
            yield from _chunks(source, stream, counting, chunk_bytes, json_name)
        except (OSError, EOFError, zstandard.ZstdError) as exc:
            yield Chunk(source, "error", f"cannot read: {exc}", consumed=0)


def _newlines(data: bytes, block: int = 1 << 18) -> int:
    """How many b"\\n" the data holds: numpy's compare (3x `bytes.count`), a block at a
    time so that its temporary comes from the heap, not from fresh pages."""
    view = np.frombuffer(data, np.uint8)
    return sum(int(np.count_nonzero(view[i : i + block] == 10)) for i in range(0, len(view), block))


def _chunks(
    source: str, stream: IO[bytes], counting: _Counting, size: int, json_name: bool
) -> Iterator[Chunk]:
    head = stream.read(size)
    if not head:
        return
    first = head.lstrip()[:1]
    done = 0

    def consumed() -> int:
        nonlocal done
        step, done = counting.count - done, counting.count
        return step

    # Content decides; a .json/.jsonl name only breaks the tie for text that is not JSON.
    if first in (b"{", b"[") or (json_name and head[0] != 0):
        end = head.find(b"\n")
        first_line = head if end < 0 else head[:end]
        try:
            first_doc = orjson.loads(first_line)
            is_lines = True
            if _not_otlp(first_doc):
                yield Chunk(source, "skip", NOT_OTLP, consumed=consumed())
                return
        except orjson.JSONDecodeError:
            # A pretty-printed document opens with a line that is not JSON on its own.
            is_lines = first_line.lstrip()[:1] not in (b"{", b"[")
        if not is_lines:
            yield Chunk(source, "json", head + stream.read(), consumed=consumed())
            return
        # Each read is cut after its last newline; the partial line left over opens the
        # next chunk (each byte is copied once at most).
        line = 1
        partial = b""
        data = head
        while data:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                partial += data
            else:
                if partial or cut < len(data):
                    piece = b"".join((partial, memoryview(data)[:cut]))
                    partial = data[cut:]
                else:
                    piece = data
                yield Chunk(source, "jsonl", piece, first_line=line, consumed=consumed())
                line += _newlines(piece)
            data = stream.read(size)
        if partial:
            yield Chunk(source, "jsonl", partial, first_line=line, consumed=consumed())
        return
    if head[0] == 0 and len(head) >= 4 and int.from_bytes(head[:4], "big") < _MAX_FRAME:
        yield from _frames(source, head, stream, size, consumed)
        return
    yield Chunk(source, "proto", head + stream.read(), consumed=consumed())


def _frames(source: str, head: bytes, stream: IO[bytes], size: int, consumed: Any) -> Iterator:
    buffer = head
    offset = 0
    frames: list[tuple[int, bytes]] = []
    batch = 0
    while True:
        while len(buffer) < 4 or len(buffer) < 4 + int.from_bytes(buffer[:4], "big"):
            more = stream.read(size)
            if not more:
                break
            buffer += more
        if not buffer:
            break
        length = int.from_bytes(buffer[:4], "big")
        if len(buffer) < 4 or len(buffer) < 4 + length:
            frames.append((offset, b"\xfftruncated"))
            break
        frames.append((offset, buffer[4 : 4 + length]))
        batch += length
        offset += 4 + length
        buffer = buffer[4 + length :]
        if batch >= size:
            yield Chunk(source, "frames", frames, consumed=consumed())
            frames, batch = [], 0
    if frames:
        yield Chunk(source, "frames", frames, consumed=consumed())


def _decode_frame(data: bytes, label: str, out: Decoded) -> None:
    if data == b"\xfftruncated":
        out.reject(label, "truncated record (the file ends inside it)", b"")
        return
    if data[:4] == _ZSTD:
        try:
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=_MAX_FRAME)
        except zstandard.ZstdError as exc:
            out.reject(label, f"record is not valid zstd ({exc})", data[:4096])
            return
    if data.lstrip()[:1] == b"{":
        try:
            decode_document(orjson.loads(data), label, out)
        except orjson.JSONDecodeError as exc:
            out.reject(label, f"not valid JSON ({exc.msg})", data)
        return
    decode_protobuf(data, label, out)


def decode_chunk_fast(chunk: Chunk) -> DecodedChunk | None:
    """The chunk through the vectorized trace decoder, or None when it declines it."""
    if chunk.kind != "jsonl":
        return None
    if not chunk.data or chunk.data.isspace():  # (strip() would copy the chunk)
        return DecodedChunk(chunk.source, None, None, [], {"traces": 0, "logs": 0, "unknown": 0})
    fast = decode_traces_fast(chunk.data)
    if fast is None:
        return None
    read = {"traces": fast[1], "logs": 0, "unknown": 0}
    return DecodedChunk(chunk.source, fast[0], None, [], read)


def decode_chunk(chunk: Chunk, *, fast: bool = True) -> DecodedChunk:
    """Decode one chunk into tables and rejects (runs in a worker process when parallel)."""
    decoded = decode_chunk_fast(chunk) if fast else None
    if decoded is not None:
        return decoded
    # Decoding allocates millions of acyclic containers and keeps them alive until the
    # chunk is done: the cyclic GC would rescan them over and over (2x the decode time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode_chunk(chunk)
    finally:
        if enabled:
            gc.enable()


def _decode_chunk(chunk: Chunk) -> DecodedChunk:
    out = Decoded()
    if chunk.kind == "jsonl":
        decode_json_lines(chunk.data, chunk.source, chunk.first_line, out)
    elif chunk.kind == "json":
        try:
            doc = orjson.loads(chunk.data)
        except orjson.JSONDecodeError as exc:
            out.reject(
                f"{chunk.source}:{exc.lineno}:{exc.colno}", f"not valid JSON ({exc.msg})", b""
            )
        else:
            if _not_otlp(doc):
                return DecodedChunk(chunk.source, None, None, [], {}, skipped=NOT_OTLP)
            docs = doc if isinstance(doc, list) else [doc]
            for i, one in enumerate(docs):
                label = chunk.source if len(docs) == 1 else f"{chunk.source}[{i}]"
                decode_document(one, label, out)
    elif chunk.kind == "frames":
        for offset, data in chunk.data:
            _decode_frame(data, f"{chunk.source}@byte {offset}", out)
    elif chunk.kind == "skip":
        return DecodedChunk(chunk.source, None, None, [], {}, skipped=chunk.data)
    elif chunk.kind == "proto":
        decode_protobuf(chunk.data, f"{chunk.source}@byte 0", out)
    else:
        out.reject(chunk.source, chunk.data, b"")
    traces = out.traces.to_arrow()
    logs = out.logs.to_arrow()
    metrics = out.metrics.to_arrow()
    rejects = [("unknown", r) for r in out.rejects]
    rejects += [("traces", r) for r in out.traces.rejects]
    rejects += [("logs", r) for r in out.logs.rejects]
    rejects += [("metrics", r) for r in out.metrics.rejects]
    rejects.sort(key=lambda item: _in_file_order(item[1].position))
    read = {
        "traces": out.traces.read,
        "logs": out.logs.read,
        "metrics": out.metrics.read,
        "unknown": out.read,
    }
    return DecodedChunk(chunk.source, traces, logs, rejects, read, metrics=metrics)


def _in_file_order(position: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", position)]


def file_size(path: Path) -> int:
    """Bytes on disk (what progress counts)."""
    return os.path.getsize(path)
