"""Seeded random systems and faults for the generated scenario suite.

:func:`draw` turns a seed into a :class:`Scenario`: a topology (3-12 models in a monolith,
one service per model, or a mix; endpoints that call models one after another, in
parallel, or both; dependencies that run no model; callers that dial by service name, DNS
name, IP or port) and a fault (kind, culprit, share of the culprit's calls, duration) or
none (a control case). :mod:`scenario_sim` runs it, :mod:`scenario_gen` writes its spans.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

S = 10**9
MS = 10**6
KINDS = (
    "error_burst",
    "latency",
    "cpu_hog",
    "crash",
    "bad_release",
    "bad_output",
    "slow_dependency",
    "caller_timeouts",
)
# The generator's definition of a fault worth an incident: it breaks at least this many
# entry requests per second of its duration, and this many in all. A fault below it breaks
# too little for any tool to tell from noise; the draw raises the share of the culprit's
# calls, then the request rate, until the expected breakage reaches it.
FLOOR_PER_S = 0.4
FLOOR_TOTAL = 12
BASELINE_S = 45.0  # healthy traffic before the fault ...
AFTER_S = 25.0  # ... and after it
REQUEST_BUDGET = 600  # requests per case the rate is capped to, unless the floor needs more


@dataclass
class Service:
    """A process kind: its models ([] for a gateway or a dependency) and how callers dial it."""

    name: str
    models: list[str]
    host: str
    port: int
    role: str  # front | entry | models | dependency


@dataclass
class Topology:
    layout: str  # monolith | per-model | mixed
    versions: dict[str, str]  # model -> version
    home: dict[str, str]  # model -> service running it
    services: dict[str, Service]
    deps_of: dict[str, list[str]]  # model -> dependency services it calls
    endpoints: dict[str, tuple]  # route -> plan: ("model", m) | ("seq", [...]) | ("par", [...])
    weights: dict[str, float]  # route -> share of traffic
    front: str  # loadgen (records only client spans) | ingress (server and client spans)
    entry: str  # the service that serves the endpoints
    dial: str  # name | dns | ip | port
    attrs: str  # semconv (server.address, server.port, url.full) | url (url.full) | legacy
    base_ms: dict[str, float]  # model or dependency -> median self-time (ms)

    def models_of(self, plan: tuple) -> list[str]:
        if plan[0] == "model":
            return [plan[1]]
        return [m for p in plan[1] for m in self.models_of(p)]

    def successors(self, plan: tuple) -> dict[str, set[str]]:
        """Model -> models that run right after it on its output (in a sequence)."""
        out: dict[str, set[str]] = {}
        if plan[0] == "seq":
            steps = plan[1]
            for a, b in zip(steps[:-1], steps[1:], strict=True):
                for m in self.models_of(a):
                    out.setdefault(m, set()).update(_heads(b))
            for p in steps:
                for m, nxt in self.successors(p).items():
                    out.setdefault(m, set()).update(nxt)
        elif plan[0] == "par":
            for p in plan[1]:
                for m, nxt in self.successors(p).items():
                    out.setdefault(m, set()).update(nxt)
        return out


def _heads(plan: tuple) -> list[str]:
    if plan[0] == "model":
        return [plan[1]]
    if plan[0] == "seq":
        return _heads(plan[1][0])
    return [m for p in plan[1] for m in _heads(p)]


@dataclass
class Fault:
    kind: str
    service: str  # the culprit service
    model: str | None  # the culprit model (None: a dependency that runs no model)
    onset_ns: int
    end_ns: int
    fraction: float  # share of the culprit's calls the fault hits
    delay_ms: float = 0.0  # latency, CPU burst, slow dependency, timeouts
    silent: bool = False  # a crash that leaves no fatal log
    restart_gap_ms: float = 0.0  # a release's restarts refuse calls this long
    bad_version: str | None = None


@dataclass
class Scenario:
    seed: int
    run: str
    topology: Topology
    fault: Fault | None
    rate: float  # entry requests per second
    start_ns: int
    end_ns: int
    noise: float  # share of model calls that fail for no reason, everywhere
    skew_ns: dict[str, int] = field(default_factory=dict)  # service -> clock offset
    # Services that record nothing (no OTel in them): only their callers' spans are left.
    uninstrumented: frozenset[str] = frozenset()


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def draw_topology(rng: random.Random, *, need: str | None = None, **fixed: str) -> Topology:
    """A random system; ``need`` asks for what a fault kind requires: ``shared`` (a process
    running several models), ``chain`` (a model feeding another), ``dependency``.
    ``fixed`` pins ``layout``, ``dial``, ``attrs`` or ``front`` (the draws still happen,
    so the rest of the system stays what the seed gives)."""
    n = rng.randint(3, 12)
    models = [f"m{i}" for i in range(n)]
    layout = rng.choice(["monolith", "per-model", "mixed"])
    if need == "shared" and layout == "per-model":
        layout = rng.choice(["monolith", "mixed"])
    dial = rng.choice(["name", "dns", "ip", "port"])
    attrs = rng.choice(["semconv", "semconv", "url", "legacy"])
    layout, dial = fixed.get("layout", layout), fixed.get("dial", dial)
    attrs = fixed.get("attrs", attrs)
    services: dict[str, Service] = {}
    ips = [f"10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}" for _ in range(rng.randint(1, 3))]

    def add(name: str, ms: list[str], role: str) -> None:
        k = len(services)
        if dial == "name":
            host, port = name, 8080
        elif dial == "dns":
            host, port = f"{name}.prod.svc.cluster.local", 8080
        elif dial == "ip":  # several services on one node, told apart by port
            host, port = rng.choice(ips), 8000 + k
        else:
            host, port = "127.0.0.1", 30000 + k
        services[name] = Service(name, ms, host, port, role)

    front = fixed.get("front", rng.choice(["loadgen", "ingress"]))
    add(front, [], "front")
    home: dict[str, str] = {}
    if layout == "monolith":
        entry = rng.choice(["monolith", "model-server", "ml-serving"])
        add(entry, list(models), "entry")
        home = {m: entry for m in models}
    else:
        entry = "gateway"
        add(entry, [], "entry")
        rest = list(models)
        rng.shuffle(rest)
        k = 0
        if layout == "mixed":
            while len(rest) >= 2 and (k == 0 or rng.random() < 0.4):
                size = rng.randint(2, min(4, len(rest)))
                group, rest = rest[:size], rest[size:]
                name = f"model-server-{k}"
                add(name, group, "models")
                home.update({m: name for m in group})
                k += 1
        for m in rest:
            add(f"model-{m}", [m], "models")
            home[m] = f"model-{m}"
    deps: list[str] = []
    n_deps = rng.choice([0, 0, 1, 1, 2]) if need != "dependency" else rng.choice([1, 2])
    for name in ["feature-store", "vector-db"][:n_deps]:
        add(name, [], "dependency")
        deps.append(name)
    deps_of = {m: [] for m in models}
    for d in deps:
        for m in rng.sample(models, rng.randint(1, min(3, n))):
            deps_of[m].append(d)
    endpoints = _draw_endpoints(rng, models, chain=need == "chain")
    raw = {r: _log_uniform(rng, 0.2, 1.0) for r in endpoints}
    total = sum(raw.values())
    base = {m: _log_uniform(rng, 2.0, 25.0) for m in models}
    base.update({d: _log_uniform(rng, 1.0, 8.0) for d in deps})
    return Topology(
        layout=layout,
        versions={
            m: f"{rng.randint(0, 3)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}" for m in models
        },
        home=home,
        services=services,
        deps_of=deps_of,
        endpoints=endpoints,
        weights={r: w / total for r, w in raw.items()},
        front=front,
        entry=entry,
        dial=dial,
        attrs=attrs,
        base_ms=base,
    )


def _draw_endpoints(rng: random.Random, models: list[str], *, chain: bool) -> dict[str, tuple]:
    """2-6 routes covering every model: one model, a vertical chain, a fan-out, or a chain
    into a fan-out."""
    left = list(models)
    rng.shuffle(left)
    out: dict[str, tuple] = {}
    while left or len(out) < 2:
        size = rng.randint(1, 3)
        picked = [left.pop() for _ in range(min(size, len(left)))]
        while len(picked) < size:
            picked.append(rng.choice([m for m in models if m not in picked] or models))
        shape = rng.choice(["seq", "seq", "par", "mix"]) if len(picked) > 1 else "model"
        if chain and not out and len(picked) < 2:
            picked.append(rng.choice([m for m in models if m not in picked]))
            shape = "seq"
        if shape == "model":
            plan: tuple = ("model", picked[0])
        elif shape == "seq" or len(picked) == 2:
            plan = ("seq", [("model", m) for m in picked])
        elif shape == "par":
            plan = ("par", [("model", m) for m in picked])
        else:
            plan = ("seq", [("model", picked[0]), ("par", [("model", m) for m in picked[1:]])])
        out[f"/api/e{len(out)}"] = plan
        if len(out) >= 6 and not left:
            break
        if len(out) >= 6:  # fold the rest into the last route as a fan-out
            route = f"/api/e{len(out) - 1}"
            out[route] = ("par", [out[route], *(("model", m) for m in left)])
            left = []
    return out


def draw(
    seed: int,
    *,
    kind: str | None = "random",
    budget: int = REQUEST_BUDGET,
    silent: bool | None = None,
    target: str | None = None,
    **fixed: str,
) -> Scenario:
    """The scenario of ``seed``: ``kind`` a fault kind, "random" for any, None for a
    fault-free control case. ``fixed`` pins parts of the topology (:func:`draw_topology`);
    ``silent`` whether a crash leaves its fatal log; ``target`` the culprit model."""
    rng = random.Random(seed)
    if kind == "random":
        kind = KINDS[seed % len(KINDS)]
    need = {"cpu_hog": "shared", "bad_output": "chain", "slow_dependency": "dependency"}
    topo = draw_topology(rng, need=need.get(kind or ""), **fixed)
    duration_s = _log_uniform(rng, 20.0, 300.0)
    fault = _draw_fault(rng, topo, kind, duration_s, target) if kind else None
    if fault is not None and silent is not None:
        fault.silent = silent
    total_s = BASELINE_S + duration_s + AFTER_S
    rate = min(_log_uniform(rng, 1.0, 50.0), max(1.0, budget / total_s))
    if fault is not None:
        rate = _meet_floor(topo, fault, rate, duration_s, budget / total_s)
    start = 1_800_000_000 * S + seed * 3600 * S
    onset = start + int((BASELINE_S + rng.uniform(0, 5)) * S)
    if fault is not None:
        fault.onset_ns, fault.end_ns = onset, onset + int(duration_s * S)
    skew = {name: int(rng.uniform(-50, 50) * MS) for name in topo.services}
    return Scenario(
        seed=seed,
        run=f"gen/{seed:04d}-{kind or 'control'}",
        topology=topo,
        fault=fault,
        rate=rate,
        start_ns=start,
        end_ns=start + int(total_s * S),
        noise=rng.choice([0.0, 0.001, 0.002]),
        skew_ns=skew,
    )


def _draw_fault(
    rng: random.Random, topo: Topology, kind: str, duration_s: float, target: str | None
) -> Fault:
    models = sorted(topo.home)
    deps = [s for s, v in topo.services.items() if v.role == "dependency"]
    fraction = _log_uniform(rng, 0.05, 1.0)
    if kind == "cpu_hog":
        shared = [m for m in models if len(topo.services[topo.home[m]].models) > 1]
        model = rng.choice(shared)
    elif kind == "bad_output":
        succ: dict[str, set[str]] = {}
        for plan in topo.endpoints.values():
            for m, nxt in topo.successors(plan).items():
                succ.setdefault(m, set()).update(nxt - {m})
        model = rng.choice(sorted(m for m, n in succ.items() if n))
    elif kind == "slow_dependency" or (kind == "crash" and deps and rng.random() < 0.25):
        dep = rng.choice(deps)
        f = Fault(kind, dep, None, 0, 0, 1.0 if kind == "crash" else fraction)
        f.delay_ms = _log_uniform(rng, 400, 2000)
        f.silent = rng.random() < 0.5
        return f
    else:
        model = rng.choice(models)
    model = target or model
    f = Fault(kind, topo.home[model], model, 0, 0, fraction)
    if kind == "latency":
        f.delay_ms = _log_uniform(rng, 400, 900)  # under the callers' 1 s timeout
    elif kind == "caller_timeouts":
        f.delay_ms = _log_uniform(rng, 1200, 3000)  # beyond it
    elif kind == "cpu_hog":
        f.delay_ms = _log_uniform(rng, 300, 900)
    elif kind == "crash":
        f.fraction = 1.0
        f.silent = rng.random() < 0.5
    elif kind in ("bad_release", "bad_output"):
        major, minor, _ = topo.versions[model].split(".")
        f.bad_version = f"{major}.{int(minor) + 1}.0"
        f.restart_gap_ms = rng.uniform(200, 1500) if kind == "bad_release" else 0.0
    return f


def reach(topo: Topology, fault: Fault) -> float:
    """Share of entry requests whose route the fault can break."""
    total = 0.0
    for route, plan in topo.endpoints.items():
        ms = topo.models_of(plan)
        if fault.model is None:
            hit = any(fault.service in topo.deps_of[m] for m in ms)
        elif fault.kind == "crash":
            hit = any(topo.home[m] == fault.service for m in ms)
        elif fault.kind == "bad_output":
            hit = any(fault.model == m and nxt - {m} for m, nxt in topo.successors(plan).items())
        else:
            hit = fault.model in ms
        total += topo.weights[route] * hit
    return total


def _meet_floor(topo: Topology, fault: Fault, rate: float, duration_s: float, cap: float) -> float:
    """Raise the share of hit calls, then the rate, until the expected breakage reaches the
    floor (:data:`FLOOR_PER_S`, :data:`FLOOR_TOTAL`)."""
    want = max(FLOOR_PER_S, FLOOR_TOTAL / duration_s)
    r = max(reach(topo, fault), 1e-6)
    if rate * r * fault.fraction >= want:
        return rate
    rate = max(rate, min(cap, 50.0))
    fault.fraction = min(1.0, max(fault.fraction, want / (rate * r)))
    if rate * r * fault.fraction < want:
        rate = min(50.0, want / (r * fault.fraction))
    return rate
