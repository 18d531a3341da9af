"""configure(metrics=True): process metrics and each model scope's thread CPU time, written by
the real OTLP JSON file exporter in a child process (configure is once per process) and
read back through `faultlens ingest`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from faultlens.analyzer import connect, ingest

_CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from faultlens.instrumentation import _cpu, configure, model, shutdown

    metrics = {"on": True, "off": False}.get(sys.argv[2])  # else FAULTLENS_METRICS decides
    configure("monolith", layout="monolith", file_dir=sys.argv[1], metrics=metrics)
    with model("outer", version="1").loading():  # 6 MB of weights, every page touched
        weights = bytearray(b"\\x01") * (6 << 20)

    def spin(n):
        x = 0
        for i in range(n):
            x += i * i
        return x

    start = time.thread_time()
    with model("outer", version="1"):
        spin(1_500_000)
        with model("inner"):
            spin(500_000)
    window = time.thread_time() - start

    def elsewhere():
        with model("threaded"):
            spin(300_000)

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    recording = _cpu.recording()
    shutdown()
    print(json.dumps({"window": window, "recording": recording}))
    """
)


def _run(tmp_path: Path, metrics: str, env: dict[str, str] | None = None) -> tuple[dict, Path]:
    out = tmp_path / "telemetry"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAULTLENS_"))}
    child_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out), metrics],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), out


def test_model_scopes_record_their_own_thread_cpu_and_the_process_its_cpu_and_memory(
    tmp_path: Path,
) -> None:
    child, out = _run(tmp_path, "on")
    assert child["recording"] is True
    assert sorted(p.name.split("-")[0] for p in out.iterdir()) == ["logs", "metrics", "traces"]
    db = tmp_path / "m.duckdb"
    report = ingest([out], db=db)
    assert report.errors == () and report.data_points > 0
    con = connect(db, read_only=True)
    # Cumulative counters: the last value of each series is the total.
    cpu = dict(
        con.execute(
            "SELECT ModelName, max(Value) FROM otel_metrics_sum "
            "WHERE MetricName = 'faultlens.model.cpu.time' GROUP BY ModelName"
        ).fetchall()
    )
    assert set(cpu) == {"outer", "inner", "threaded"}
    assert all(seconds > 0 for seconds in cpu.values())
    # The outer scope excludes what its nested scope recorded: together they are the
    # thread's CPU over the outer window, not more.
    assert cpu["outer"] + cpu["inner"] <= child["window"] + 1e-6
    assert cpu["outer"] > cpu["inner"]  # three times the work
    assert con.execute(
        "SELECT DISTINCT MetricUnit, IsMonotonic, AggregationTemporality, ServiceName, Layout, "
        "Attributes['ml.model.version'] FROM otel_metrics_sum "
        "WHERE MetricName = 'faultlens.model.cpu.time' AND ModelName = 'outer'"
    ).fetchall() == [("s", True, 2, "monolith", "monolith", "1")]
    process = dict(
        con.execute(
            "SELECT MetricName, max(Value) FROM otel_metrics_sum "
            "WHERE MetricName LIKE 'process.%' GROUP BY MetricName"
        ).fetchall()
    )
    assert {"process.cpu.time", "process.memory.usage", "process.thread.count"} <= set(process)
    assert process["process.memory.usage"] > 1 << 20  # resident bytes of a Python process
    # The models' CPU is part of the process's.
    process_cpu = con.execute(
        "SELECT sum(v) FROM (SELECT max(Value) AS v FROM otel_metrics_sum "
        "WHERE MetricName = 'process.cpu.time' GROUP BY Attributes)"
    ).fetchone()[0]
    assert sum(cpu.values()) <= process_cpu + 0.02  # psutil counts in clock ticks
    # The load scope's growth of the process's resident memory, with the model's identity.
    loads = con.execute(
        "SELECT ModelName, ModelVersion, MetricUnit, Value FROM otel_metrics_gauge "
        "WHERE MetricName = 'faultlens.model.load.memory_growth'"
    ).fetchall()
    assert {row[:3] for row in loads} == {("outer", "1", "By")}
    assert all(0.9 * (6 << 20) < row[3] < 1.5 * (6 << 20) for row in loads), loads


def test_metrics_are_off_unless_asked_and_the_environment_turns_them_on(tmp_path: Path) -> None:
    child, out = _run(tmp_path / "off", "off")
    assert child["recording"] is False
    assert not any(p.name.startswith("metrics-") for p in out.iterdir())
    child, out = _run(tmp_path / "env", "unset", {"FAULTLENS_METRICS": "1"})
    assert child["recording"] is True
    assert any(p.name.startswith("metrics-") for p in out.iterdir())


_ASYNC_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from faultlens.instrumentation import configure, model, shutdown

    configure("monolith", layout="monolith", file_dir=sys.argv[1], metrics=True)

    def spin(n):
        x = 0
        for i in range(n):
            x += i * i
        return x

    async def steps():  # CPU in 20 steps, yielding to the loop between them
        for _ in range(20):
            spin(60_000)
            await asyncio.sleep(0)

    async def waiter(done):
        with model("waiter"):  # awaits while every other task below runs
            await done.wait()

    async def busy():
        with model("busy"):
            await steps()

    async def parent():
        with model("parent"):  # the work is a task started inside the scope
            await asyncio.ensure_future(steps())

    async def main():
        done = asyncio.Event()
        wait = asyncio.ensure_future(waiter(done))
        start = time.thread_time()
        await asyncio.gather(busy(), parent(), steps())
        window = time.thread_time() - start
        done.set()
        await wait
        return window

    window = asyncio.run(main())
    shutdown()
    print(json.dumps({"window": window}))
    """
)


def test_an_async_scope_counts_its_own_task_steps_not_the_loops_other_work(
    tmp_path: Path,
) -> None:
    out = tmp_path / "telemetry"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAULTLENS_"))}
    done = subprocess.run(
        [sys.executable, "-c", _ASYNC_CHILD, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    window = json.loads(done.stdout.strip().splitlines()[-1])["window"]
    db = tmp_path / "m.duckdb"
    assert ingest([out], db=db).errors == ()
    cpu = dict(
        connect(db, read_only=True)
        .execute(
            "SELECT ModelName, max(Value) FROM otel_metrics_sum "
            "WHERE MetricName = 'faultlens.model.cpu.time' GROUP BY ModelName"
        )
        .fetchall()
    )
    # Three tasks did the same work over the window, one of them in no scope: the thread's
    # clock over "waiter" saw all of it, but none of it ran in waiter's steps.
    assert cpu["waiter"] < 0.05 * cpu["busy"]
    # A task started inside a scope works on its behalf: counted there.
    assert 0.5 < cpu["parent"] / cpu["busy"] < 2
    # The unscoped third is nobody's: the scopes together hold about two thirds.
    assert cpu["busy"] + cpu["parent"] + cpu["waiter"] < 0.85 * window
