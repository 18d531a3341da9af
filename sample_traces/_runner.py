"""Run one scenario in one layout: start the system, load it, inject the fault, record truth.

Timeline of a run of S seconds: baseline (3/8 of S), fault (3/8), recovery
(the rest). The runner is also the supervisor: a process that dies is
restarted after ``RESTART_DELAY_S`` with a new ``service.instance.id``; a
bad deploy is a restart with the new model version at onset, and a rollback
at the end. Every process is stopped before ``run_scenario`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from ._catalogue import FEATURE_STORE, SCENARIOS, Scenario
from ._faults import FaultPlan
from ._load import (
    CLIENT_SERVICE,
    CLIENT_TIMEOUT_S,
    client_tracer_provider,
    generate,
)
from ._models import ENDPOINTS, MODELS
from ._os_usage import sample
from ._procs import ServiceProcess, arm, free_port, stop_all, wait_healthy

LAYOUTS = ("monolith", "per-model")
RESTART_DELAY_S = 1.0
MONOLITH_VERSION = "1.0.0"
SCHEMA_VERSION = 1


def _settings(**values: Any) -> dict[str, str]:
    return {"FAULTLENS_SAMPLE": json.dumps(values)}


def build_services(layout: str, run_env: dict[str, str], raw: Path) -> list[ServiceProcess]:
    """The processes of a layout; the entry service (monolith or gateway) comes last."""
    versions = {name: spec.version for name, spec in MODELS.items()}
    store = ServiceProcess(FEATURE_STORE, "feature-store", free_port(), "1.0.0", dict(run_env), raw)
    store_url = store.url
    if layout == "monolith":
        env = {**run_env, **_settings(feature_store_url=store_url, versions=versions)}
        return [
            store,
            ServiceProcess("monolith", "monolith", free_port(), MONOLITH_VERSION, env, raw),
        ]
    procs = [store]
    for name, spec in MODELS.items():
        env = {**run_env, **_settings(feature_store_url=store_url, versions=versions)}
        procs.append(ServiceProcess(f"model-{name}", f"model:{name}", free_port(), spec.version,
                                    env, raw))  # fmt: skip
    urls = {p.role.removeprefix("model:"): p.url for p in procs if p.role.startswith("model:")}
    env = {**run_env, **_settings(model_urls=urls)}
    procs.append(ServiceProcess("gateway", "gateway", free_port(), "1.0.0", env, raw))
    return procs


def culprit_service(scenario: Scenario, layout: str) -> str:
    if scenario.target == FEATURE_STORE:
        return FEATURE_STORE
    return "monolith" if layout == "monolith" else f"model-{scenario.target}"


def _run_resource(scenario: Scenario, layout: str) -> dict[str, str]:
    """The resource attributes every process of a run carries, the load generator too."""
    return {
        "faultlens.layout": layout,
        "faultlens.run": f"{scenario.name}/{layout}",
        "faultlens.scenario": scenario.name,
    }


def _run_env(
    scenario: Scenario, layout: str, raw: Path, otlp_endpoint: str | None
) -> dict[str, str]:
    resource = _run_resource(scenario, layout)
    env = {
        "FAULTLENS_LAYOUT": layout,
        "OTEL_RESOURCE_ATTRIBUTES": ",".join(f"{k}={v}" for k, v in resource.items()),
        # Short batch delays: a crashing process loses at most half a second of telemetry.
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "OTEL_BLRP_SCHEDULE_DELAY": "500",
        # Process CPU/memory and each model's CPU (instrumentation/_metrics.py), every
        # second: a run lasts tens of seconds, and the cost analysis reads their growth.
        "FAULTLENS_METRICS": "1",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    if otlp_endpoint:
        env.update(OTEL_TRACES_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp",
                   OTEL_METRICS_EXPORTER="otlp",
                   OTEL_EXPORTER_OTLP_ENDPOINT=otlp_endpoint)  # fmt: skip
    else:
        env.update(OTEL_TRACES_EXPORTER="otlp_json_file", OTEL_LOGS_EXPORTER="otlp_json_file",
                   OTEL_METRICS_EXPORTER="otlp_json_file",
                   FAULTLENS_FILE_DIR=str(raw / "telemetry"))  # fmt: skip
    return env


class _Supervisor:
    """Restarts crashed processes and performs the deploys; records every restart."""

    def __init__(self, procs: list[ServiceProcess], client: httpx.AsyncClient) -> None:
        self.procs = procs
        self.client = client
        self.restarts: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for proc in self.procs:
                if not proc.expected_exit and (code := proc.exited()) is not None:
                    proc.expected_exit = True  # until the new incarnation is up
                    self._spawn_task(self._restart(proc, code))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
        for task in list(self._tasks):
            await task

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, proc: ServiceProcess, code: int) -> None:
        at_ns, old = time.time_ns(), proc.instance_id
        await asyncio.sleep(RESTART_DELAY_S)
        proc.spawn()
        reason = "crash" if code >= 0 else f"killed by {signal.Signals(-code).name}"
        await self._record(proc, at_ns=at_ns, old=old, reason=reason, exit_code=code)

    async def _record(self, proc: ServiceProcess, **fields: Any) -> None:
        entry = {
            "service": proc.service,
            "at_ns": fields.pop("at_ns"),
            "reason": fields.pop("reason"),
            "old_instance_id": fields.pop("old"),
            "new_instance_id": proc.instance_id,
            "new_version": proc.version,
            **fields,
            "ready_ns": None,
        }
        self.restarts.append(entry)
        with contextlib.suppress(RuntimeError):
            await wait_healthy(self.client, [proc], timeout_s=30)
            entry["ready_ns"] = time.time_ns()

    async def deploy(
        self, proc: ServiceProcess, *, at_ns: int, model: str, version: str, service_version: str,
        reason: str,
    ) -> None:  # fmt: skip
        """Restart ``proc`` with ``model`` at ``version``, as a deploy does."""
        await asyncio.sleep(max(0.0, (at_ns - time.time_ns()) / 1e9))
        started, old = time.time_ns(), proc.instance_id
        proc.expected_exit = True
        await asyncio.to_thread(proc.stop)
        settings = json.loads(proc.env["FAULTLENS_SAMPLE"])
        settings["versions"][model] = version
        proc.env["FAULTLENS_SAMPLE"] = json.dumps(settings)
        proc.version = service_version
        proc.spawn()
        await self._record(proc, at_ns=started, old=old, reason=reason, exit_code=None)


async def _run(
    scenario: Scenario, layout: str, *, seconds: float, out: Path, rate: float, seed: int,
    otlp_endpoint: str | None,
) -> dict[str, Any]:  # fmt: skip
    raw = out / "raw"
    procs = build_services(layout, _run_env(scenario, layout, raw, otlp_endpoint), raw)
    entry = procs[-1]
    culprit = culprit_service(scenario, layout)
    baseline_s = fault_s = seconds * 3 / 8
    async with httpx.AsyncClient() as client:
        for proc in procs:
            proc.spawn()
        await wait_healthy(client, procs)
        start_ns = time.time_ns() + 200_000_000
        onset_ns = start_ns + int(baseline_s * 1e9)
        end_ns = onset_ns + int(fault_s * 1e9)
        plan = FaultPlan(scenario.kind, scenario.target, onset_ns, end_ns, dict(scenario.params))
        await arm(client, procs, plan.to_env())
        for proc in procs:  # restarted processes pick the fault up from their environment
            proc.env["FAULTLENS_FAULT"] = plan.to_env()
        supervisor = _Supervisor(procs, client)
        stop = asyncio.Event()
        watch = asyncio.create_task(supervisor.watch(stop))
        os_usage = asyncio.create_task(sample(procs, stop))
        deploys = []
        if scenario.deploy_version is not None:
            target = next(p for p in procs if p.service == culprit)
            model, old_version = scenario.target, MODELS[scenario.target].version
            new_service = scenario.deploy_version if layout == "per-model" else "1.1.0"
            old_service = old_version if layout == "per-model" else MONOLITH_VERSION
            deploys.append(asyncio.create_task(supervisor.deploy(
                target, at_ns=onset_ns, model=model, version=scenario.deploy_version,
                service_version=new_service, reason="deploy")))  # fmt: skip
            deploys.append(asyncio.create_task(supervisor.deploy(
                target, at_ns=end_ns, model=model, version=old_version,
                service_version=old_service, reason="rollback")))  # fmt: skip
        client_spans = client_tracer_provider(
            _run_resource(scenario, layout),
            file_dir=None if otlp_endpoint else raw / "telemetry",
            otlp_endpoint=otlp_endpoint,
        )
        try:
            try:
                requests = await generate(
                    entry.url,
                    rate=rate,
                    seconds=seconds,
                    seed=seed,
                    start_ns=start_ns,
                    tracer_provider=client_spans,
                )
            finally:
                client_spans.shutdown()  # flushes the last batch of client spans
            for task in deploys:
                await task
        finally:
            stop.set()
            await watch
            usage = await os_usage
    for proc in procs:
        proc.stop()
    culprit_version = None
    if scenario.culprit_model is not None:
        culprit_version = scenario.deploy_version or MODELS[scenario.target].version
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "layout": layout,
        "run": f"{scenario.name}/{layout}",
        "shows": scenario.shows,
        "fault": {
            "kind": scenario.kind,
            "target": scenario.target,
            "params": scenario.params,
            "deploy_version": scenario.deploy_version,
            "onset_ns": onset_ns,
            "end_ns": end_ns,
        },  # fmt: skip
        "culprit": {
            "model": scenario.culprit_model,
            "service": culprit,
            "version": culprit_version,
        },
        "load": {
            "rate_rps": rate,
            "seconds": seconds,
            "seed": seed,
            "start_ns": start_ns,
            "end_ns": start_ns + int(seconds * 1e9),
            "client_timeout_s": CLIENT_TIMEOUT_S,
            "entry_service": entry.service,
            "client_service": CLIENT_SERVICE,
        },  # fmt: skip
        "endpoints": {route: list(models) for route, models in ENDPOINTS.items()},
        "services": {p.service: _models_of(p) for p in procs},
        "instances": [i for p in procs for i in p.instances],
        "restarts": sorted(supervisor.restarts, key=lambda r: r["at_ns"]),
        "os_usage": usage,
        "requests": requests,
    }


def _models_of(proc: ServiceProcess) -> list[str]:
    if proc.role == "monolith":
        return list(MODELS)
    return [proc.role.removeprefix("model:")] if proc.role.startswith("model:") else []


def _merge(raw: Path, out: Path) -> dict[str, str]:
    """Concatenate every incarnation's JSON Lines (and the load generator's spans) into one
    gzip file per signal."""
    files = {}
    for signal_name in ("traces", "logs", "metrics"):
        parts = sorted((raw / "telemetry").glob(f"{signal_name}-*.jsonl"), key=os.path.getmtime)
        if not parts:
            continue
        target = out / f"{signal_name}.jsonl.gz"
        with open(target, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
            for part in parts:
                gz.write(part.read_bytes())
        files[signal_name] = target.name
    return files


def _write_truth(truth: dict[str, Any], path: Path) -> None:
    """Compact JSON, one request per line, so the file stays small and diffable."""
    requests = truth.pop("requests")
    head = json.dumps(truth, separators=(",", ":"))[:-1]
    lines = ",\n".join(json.dumps(r, separators=(",", ":")) for r in requests)
    path.write_text(f'{head},"requests":[\n{lines}\n]}}\n')
    truth["requests"] = requests


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_scenario(
    name: str,
    *,
    layout: str,
    seconds: float = 40.0,
    out: str | os.PathLike[str],
    rate: float = 12.0,
    seed: int = 7,
    otlp_endpoint: str | None = None,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """Run scenario ``name`` in ``layout``; write traces, logs, metrics and truth.json into
    ``out``.

    Returns the truth. With ``otlp_endpoint`` the services export over OTLP/HTTP
    there (e.g. ``faultlens collect``) instead of writing files.
    """
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not 4 <= seconds <= 600:
        raise ValueError(f"seconds must be between 4 and 600, got {seconds}")
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target / "raw", ignore_errors=True)
    for stale in ("traces.jsonl.gz", "logs.jsonl.gz", "metrics.jsonl.gz", "truth.json"):
        (target / stale).unlink(missing_ok=True)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # A SIGTERM to the runner still runs the finally below, which stops the services.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        truth = asyncio.run(
            _run(
                SCENARIOS[name],
                layout,
                seconds=seconds,
                out=target,
                rate=rate,
                seed=seed,
                otlp_endpoint=otlp_endpoint,
            )  # fmt: skip
        )
    finally:
        stop_all()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    truth["files"] = _merge(target / "raw", target)
    _write_truth(truth, target / "truth.json")
    if not keep_raw:
        shutil.rmtree(target / "raw", ignore_errors=True)
    return truth
