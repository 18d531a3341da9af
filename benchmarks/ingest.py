"""Ingest speed: `faultlens ingest` against the parse-only floor and the naive DuckDB path.

Generates an N-span OTLP JSON Lines file (as the Python OTLP JSON file exporter
writes it: one TracesData per line, spans grouped by resource and scope), then
times, in one run and on the same file:

1. ``faultlens ingest FILE --db fresh.duckdb`` (a subprocess, start-up included);
2. the parse-only floor: ``orjson.loads`` of every line, single process; and, beside it,
   the stages of faultlens' own decoder (JSON parse, decode to columns), in process;
3. the naive path a user would write: DuckDB ``read_json`` + ``unnest`` into a table, in
   two forms: the minimal unnest of the spans (attributes left as lists of key/value
   structs, ids and times as read), and the table a user can query by service and
   attribute (what faultlens stores: service name, MAP attributes, timestamps, duration).

and prints the ratios (targets: ingest <= 1.5x the floor, >= 5x faster than naive), for
the whole ingest and for it without the span facts it derives for the analysis at the end.
It also measures the OTLP/HTTP receiver's persisted spans/s: the real OpenTelemetry
OTLP/HTTP exporter sending protobuf from separate processes (``--senders``), each with its
spans built before the clock starts, three times by default (``--receiver-runs``; the
median is compared), each into a fresh store (``--no-receiver`` skips this). It also
prints DuckDB's store floor (the decoded rows inserted and committed, nothing else) and
the lower bound that and the decoder's CPU set for any ingest on these cores.

    python benchmarks/ingest.py --spans 1000000 --receiver-spans 50000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

MODELS = [("tokenize", "1.2.0"), ("embed", "1.0.3"), ("fraud", "1.4.2"), ("rank", "3.0.1")]


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def generate(
    path: Path, spans: int, *, per_line: int = 100, seed: int = 7, per_trace: int = 1
) -> int:
    """Write `spans` spans as OTLP JSON Lines; returns the file size in bytes.

    With ``per_trace`` 1 (the default) each span is a trace of its own whose parent was
    not recorded: every span is a request, the most work for the span facts. Above 1,
    each trace is a root span and ``per_trace - 1`` children of it, in a row."""
    rng = random.Random(seed)
    trace_id = root_id = ""
    t0 = 1_700_000_000_000_000_000
    resource = {
        "attributes": [
            _attr("service.name", "monolith"),
            _attr("service.instance.id", "host-1:4711"),
            _attr("service.version", "2.3.0"),
            _attr("faultlens.layout", "monolith"),
            _attr("telemetry.sdk.language", "python"),
        ]
    }
    scope = {"name": "faultlens.instrumentation", "version": "0.1.0"}
    written = 0
    with open(path, "wb") as out:
        while written < spans:
            batch = []
            for _ in range(min(per_line, spans - written)):
                i = written + len(batch)
                model, version = MODELS[i % len(MODELS)]
                start = t0 + i * 1_000_000
                if per_trace == 1 or i % per_trace == 0:
                    trace_id = f"{rng.getrandbits(128):032x}"
                span_id = f"{rng.getrandbits(64):016x}"
                if per_trace == 1:
                    parent_id = f"{rng.getrandbits(64):016x}"  # never recorded
                elif i % per_trace == 0:
                    root_id, parent_id = span_id, ""
                else:
                    parent_id = root_id
                span = {
                    "traceId": trace_id,
                    "spanId": span_id,
                    "parentSpanId": parent_id,
                    "flags": 1,
                    "name": f"{model}.predict",
                    "kind": 1,
                    "startTimeUnixNano": str(start),
                    "endTimeUnixNano": str(start + rng.randrange(1_000_000, 90_000_000)),
                    "attributes": [
                        _attr("ml.model.name", model),
                        _attr("ml.model.version", version),
                        _attr("ml.model.framework", "numpy"),
                    ],
                    "status": {"code": 2, "message": "boom"} if i % 97 == 0 else {},
                }
                batch.append(span)
            doc = {
                "resourceSpans": [
                    {"resource": resource, "scopeSpans": [{"scope": scope, "spans": batch}]}
                ]
            }
            out.write(orjson.dumps(doc) + b"\n")
            written += len(batch)
    return path.stat().st_size


def floor(path: Path) -> float:
    started = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            orjson.loads(line)
    return time.perf_counter() - started


def stages(path: Path) -> tuple[float, float, float, list[pa.Table]]:
    """(JSON parse, decode) wall seconds, the decode's CPU seconds, and the decoded spans,
    of faultlens' own decoder over the file, in process: its chunks, two at a time in
    threads as `faultlens ingest` decodes them, parsed by pyarrow against the OTLP schema
    (``decode._fast_parse.parse_chunk``), then all the way to the store's columns
    (``decode_chunk_fast``). What ingest adds to the decode is inserting and deriving the
    span facts."""
    from concurrent.futures import ThreadPoolExecutor

    from faultlens.analyzer.decode._fast_parse import parse_chunk
    from faultlens.analyzer.decode._files import chunks, decode_chunk_fast

    def timed(work: Any) -> tuple[float, float, list[Any]]:
        done: list[Any] = []
        started, started_cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(2) as pool:
            window: list[Any] = []
            for chunk in chunks(path):
                window.append(pool.submit(work, chunk))
                while len(window) > 4 or (window and window[0].done()):  # bounded, as ingest's
                    done.append(window.pop(0).result())
            done.extend(future.result() for future in window)
        if any(result is None for result in done):
            raise SystemExit("the vectorized decoder declined a chunk: not what ingest ran")
        return time.perf_counter() - started, time.process_time() - started_cpu, done

    parse_s, _, _ = timed(lambda chunk: parse_chunk(chunk.data))
    decode_s, decode_cpu, decoded = timed(decode_chunk_fast)
    return parse_s, decode_s, decode_cpu, [d.traces for d in decoded if d.traces is not None]


def store_floor(spans: list[pa.Table], db: Path) -> tuple[float, float]:
    """(wall, CPU) seconds DuckDB alone takes to store the decoded spans: merged into
    ingest's batches (not timed), each inserted into a fresh ``otel_traces`` and committed,
    nothing else (no dedupe, no ledger, no span facts). One DuckDB thread, as ingest's
    writer: of the settings tried (default threads, one 1M-row batch, plain maps, forced
    uncompressed storage) it took the least CPU and about the least time."""
    from faultlens.analyzer.serve._ingest import _BATCH_ROWS
    from faultlens.analyzer.store._write import _for_duckdb, connect

    whole = pa.concat_tables(spans)
    batches = [
        _for_duckdb(whole.slice(start, _BATCH_ROWS))
        for start in range(0, whole.num_rows, _BATCH_ROWS)
    ]
    con = connect(db)
    con.execute("SET threads = 1")
    started, started_cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        con.register("batch", batch)
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO otel_traces BY NAME SELECT * FROM batch")
        con.execute("COMMIT")
        con.unregister("batch")
    con.close()
    return time.perf_counter() - started, time.process_time() - started_cpu


def naive(path: Path, db: Path) -> float:
    """Minimal: unnest the spans, nothing else (attributes stay lists of key/value structs,
    ids and times as read, no service name)."""
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE spans AS SELECT unnest(ss.spans, recursive := true) FROM ("
        " SELECT unnest(rs.scopeSpans) AS ss FROM ("
        "  SELECT unnest(resourceSpans) AS rs FROM read_json(?, format = 'newline_delimited',"
        "   maximum_object_size = 1000000000)))",
        [str(path)],
    )
    con.close()
    return time.perf_counter() - started


# What a user writes to query the spans by service and attribute: one row per span with
# the service name, attributes as MAP(VARCHAR, VARCHAR), start time as TIMESTAMP and a
# duration (the generated attributes are all strings, so stringValue is the text).
_NAIVE_QUERYABLE = """
CREATE TABLE spans AS
WITH r AS (
  SELECT unnest(resourceSpans) AS rs
  FROM read_json(?, format = 'newline_delimited', maximum_object_size = 1000000000)
), s AS (
  SELECT rs.resource AS resource, unnest(rs.scopeSpans) AS ss FROM r
), sp AS (
  SELECT resource, ss.scope AS scope, unnest(ss.spans) AS span FROM s
)
SELECT
  make_timestamp_ns(span.startTimeUnixNano::BIGINT) AS Timestamp,
  lower(span.traceId) AS TraceId,
  lower(span.spanId) AS SpanId,
  coalesce(lower(span.parentSpanId), '') AS ParentSpanId,
  span.name AS SpanName,
  span.kind AS SpanKind,
  list_filter(resource.attributes, lambda a: a.key = 'service.name')[1].value.stringValue
    AS ServiceName,
  map_from_entries(list_transform(resource.attributes,
    lambda a: {'key': a.key, 'value': a.value.stringValue})) AS ResourceAttributes,
  scope.name AS ScopeName,
  scope.version AS ScopeVersion,
  map_from_entries(list_transform(span.attributes,
    lambda a: {'key': a.key, 'value': a.value.stringValue})) AS SpanAttributes,
  span.endTimeUnixNano::UBIGINT - span.startTimeUnixNano::UBIGINT AS Duration,
  coalesce(json_extract(span.status, '$.code')::INTEGER, 0) AS StatusCode,
  coalesce(json_extract_string(span.status, '$.message'), '') AS StatusMessage
FROM sp
"""


def naive_queryable(path: Path, db: Path) -> float:
    """read_json + unnest into a table equivalent to what faultlens stores (queryable by
    service and attribute), default DuckDB settings."""
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(_NAIVE_QUERYABLE, [str(path)])
    con.close()
    return time.perf_counter() - started


def faultlens_ingest(path: Path, db: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds user + sys, its summary line) of `faultlens ingest`."""
    exe = Path(sys.executable).with_name("faultlens")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [str(exe), "ingest", str(path), "--db", str(db)], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"faultlens ingest failed: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sender(port: int, spans: int, offset: int, barrier: Any, results: Any) -> None:
    """One sender process: builds its spans with the SDK first, then, once every sender is
    ready, exports them with the real OTLP/HTTP protobuf exporter, 512 per request."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(spans):
        model, version = MODELS[(offset + i) % len(MODELS)]
        with tracer.start_as_current_span(
            f"{model}.predict", attributes={"ml.model.name": model, "ml.model.version": version}
        ):
            pass
    finished = list(memory.get_finished_spans())
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=120)
    barrier.wait()
    failed = 0
    for i in range(0, len(finished), 512):
        if exporter.export(finished[i : i + 512]) is not SpanExportResult.SUCCESS:
            failed += len(finished[i : i + 512])
    exporter.shutdown()
    results.put(failed)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def receiver(spans: int, db: Path, senders: int = 2) -> tuple[float, int, int, float | None]:
    """Persisted spans/s: `senders` processes export with the real OTLP/HTTP protobuf exporter
    into `faultlens collect` (a 200 is sent only after the spans are committed). Timing starts
    once every sender has built its spans, so span creation is not what is measured."""
    port = _free_port()
    exe = Path(sys.executable).with_name("faultlens")
    server = subprocess.Popen(
        [str(exe), "collect", "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(senders + 1)
    results = context.Queue()
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        per = spans // senders
        procs = [
            context.Process(target=_sender, args=(port, per, k * per, barrier, results))
            for k in range(senders)
        ]
        for proc in procs:
            proc.start()
        barrier.wait(timeout=600)
        started, cpu_before = time.perf_counter(), _cpu_seconds(server.pid)
        failed = sum(results.get(timeout=600) for _ in procs)
        elapsed, cpu_after = time.perf_counter() - started, _cpu_seconds(server.pid)
        for proc in procs:
            proc.join()
    finally:
        server.terminate()
        server.wait(timeout=60)
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
    con.close()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return elapsed, stored, failed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--receiver-spans", type=int, default=50_000)
    parser.add_argument("--no-receiver", action="store_true")
    parser.add_argument(
        "--receiver-runs", type=int, default=3, help="receiver runs (the median is reported)"
    )
    parser.add_argument("--senders", type=int, default=2, help="exporting processes")
    parser.add_argument(
        "--spans-per-trace",
        type=int,
        default=1,
        help="1: every span a trace of its own (the most span facts); more: a root and children",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="faultlens-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("*.duckdb*"):  # a reused --workdir: each path starts empty
        stale.unlink()
    path = workdir / "spans.jsonl"
    size = generate(path, args.spans, per_trace=args.spans_per_trace)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        f", load average {os.getloadavg()[0]:.2f} (the cores are shared: CPU seconds below "
        "are steadier than wall times)"
    )
    print(
        f"input:   {path} ({args.spans:,} spans, {args.spans_per_trace} per trace, "
        f"{size / 1e6:.0f} MB OTLP JSON Lines)"
    )
    ingest_s, ingest_cpu, summary = faultlens_ingest(path, workdir / "faultlens.duckdb")
    print(f"faultlens ingest:            {ingest_s:6.2f} s   ({summary})")
    print(f"  CPU (user + sys):          {ingest_cpu:6.2f} s   (span facts included)")
    facts = re.search(r"span facts ([0-9.]+) s", summary)
    facts_s = float(facts.group(1)) if facts else 0.0
    spans_s = ingest_s - facts_s
    print(f"  without the span facts:    {spans_s:6.2f} s   (start-up, decode, dedupe, insert)")
    # The largest child process so far: the ingest (issue 5: 10M spans in at most 1.5 GB).
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"  peak RSS:                   {peak / 1e9:6.2f} GB (target <= 1.5 GB for 10M spans)")
    floor_s = floor(path)
    print(f"parse-only floor (orjson):   {floor_s:6.2f} s")
    parse_s, decode_s, decode_cpu, decoded = stages(path)
    print(
        f"faultlens' decoder, stages:  {parse_s:6.2f} s   JSON parse (pyarrow, 2 threads) = "
        f"{parse_s / floor_s:.2f}x the floor"
    )
    print(
        f"                             {decode_s:6.2f} s   parse + decode to the store's columns"
        f" = {decode_s / floor_s:.2f}x the floor (ingest adds inserting and the span facts)"
    )
    store_s, store_cpu = store_floor(decoded, workdir / "store-floor.duckdb")
    del decoded
    print(
        f"DuckDB's store floor:        {store_s:6.2f} s   (CPU {store_cpu:.2f} s: the decoded "
        "batches inserted and committed, nothing else)"
    )
    # Decoding and storing overlap in ingest, so the bound is their CPU over all cores.
    bound = (decode_cpu + store_cpu) / (os.cpu_count() or 1)
    print(
        f"decode + store bound:        {bound:6.2f} s   ((decode CPU {decode_cpu:.2f} s + store "
        f"CPU {store_cpu:.2f} s) / {os.cpu_count()} cores: no faster with this decoder and "
        "store, span facts not included)"
    )
    naive_s = naive(path, workdir / "naive.duckdb")
    print(f"naive, minimal unnest:       {naive_s:6.2f} s   (spans unnested, nothing converted)")
    queryable_s = naive_queryable(path, workdir / "naive-queryable.duckdb")
    print(
        f"naive, queryable table:      {queryable_s:6.2f} s   "
        "(service name, MAP attributes, TIMESTAMP, duration)"
    )
    for label, took in (("ingest", ingest_s), ("ingest without span facts", spans_s)):
        print(
            f"{label}: / floor = {took / floor_s:.2f}x (target <= 1.5x); "
            f"naive minimal / it = {naive_s / took:.2f}x, "
            f"naive queryable / it = {queryable_s / took:.2f}x (target >= 5x)"
        )
    budget = naive_s / 5
    print(
        f"the >= 5x target leaves {budget:.2f} s for the whole ingest; faultlens' JSON parse "
        f"alone takes {parse_s:.2f} s of it ({parse_s / budget:.0%}), its decode "
        f"{decode_s:.2f} s ({decode_s / budget:.0%}), the decode + store bound {bound:.2f} s "
        f"({bound / budget:.0%}); the <= 1.5x target leaves {1.5 * floor_s:.2f} s "
        f"(the bound is {bound / (1.5 * floor_s):.0%} of it)"
    )
    rates = []
    for run in range(0 if args.no_receiver else args.receiver_runs):
        db = workdir / f"receiver-{run + 1}.duckdb"
        elapsed, stored, failed, cpu = receiver(args.receiver_spans, db, args.senders)
        rates.append(stored / elapsed)
        print(
            f"receiver run {run + 1}: {stored:,}/{args.receiver_spans:,} spans persisted "
            f"({failed} failed) in {elapsed:.1f} s = {rates[-1]:,.0f} spans/s (real OTLP/HTTP "
            f"protobuf exporter in {args.senders} sender processes, spans built before timing)"
            + ("" if cpu is None else f"; its own CPU {cpu / max(stored, 1) * 1e6:.0f} us/span")
        )
    if rates:
        rate = statistics.median(rates)
        print(
            f"receiver: median of {len(rates)} runs {rate:,.0f} spans/s = "
            f"{rate / 127:.1f}x Phoenix's 127 spans/s (target >= 100x; the senders' encoding "
            f"shares the same {os.cpu_count()} cores)"
        )
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
