"""Run a drawn :class:`~scenario_topology.Scenario`: every request's spans and log records as
plain records (in true time), and whether the fault touched it.

The records mimic what instrumented services write: a load generator's client span (or
an ingress's server and client span), the entry service's server span, a client span per
remote call (``server.address``/``server.port``/``url.full`` as the caller dialled it), the
callee's server span, an internal span per model run with ``ml.model.*``, and dependency
calls. A dead process records nothing: its callers' client spans fail without a child.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from opentelemetry.trace import SpanKind
from scenario_topology import MS, Fault, S, Scenario

SLO_MS = 300.0  # the latency objective of analysis and truth alike
CALL_TIMEOUT_MS = 1000.0  # a caller (gateway, or the monolith in-process) gives up on a model
DEP_TIMEOUT_MS = 800.0  # a model gives up on a dependency
FRONT_TIMEOUT_MS = 5000.0
ERROR, FATAL = 17, 21


@dataclass
class Rec:
    """One span to write (times in true ns; the writer adds the service's clock skew)."""

    service: str
    instance: int
    name: str
    kind: SpanKind
    start: int
    end: int = 0
    attrs: dict = field(default_factory=dict)
    error: str | None = None
    children: list[Rec] = field(default_factory=list)
    logs: list[tuple] = field(default_factory=list)  # (ts, severity, body, model, version)
    bad_out: bool = False  # a model's output the next model cannot take


@dataclass
class Request:
    route: str
    start: int
    root: Rec
    faulted: bool  # a fault effect reached one of its calls

    @property
    def latency_ms(self) -> float:
        return (self.root.end - self.root.start) / MS

    @property
    def bad(self) -> bool:
        return self.root.error is not None or self.latency_ms > SLO_MS


class Sim:
    """Requests in arrival order; the fault's state (down windows, restarts, versions,
    CPU bursts) read at each call's time."""

    def __init__(self, sc: Scenario) -> None:
        self.sc, self.topo, self.fault = sc, sc.topology, sc.fault
        self.rng = random.Random(sc.seed * 7919 + 1)
        self.hog: dict[str, list[tuple[int, int]]] = {}
        self.loose_logs: list[tuple] = []  # (service, instance, ts, severity, body, model, version)
        self._faulted = False
        f = self.fault
        self.restarts: dict[str, list[int]] = {}
        self.down: dict[str, list[tuple[int, int]]] = {}
        if f is not None and f.kind == "crash":
            self.restarts[f.service] = [f.end_ns]
            self.down[f.service] = [(f.onset_ns, f.end_ns)]
            if not f.silent:
                self.loose_logs.append(
                    (f.service, 0, f.onset_ns, FATAL, "process crashed: fatal error", f.model, None)
                )
        elif f is not None and f.kind == "bad_release":
            gap = int(f.restart_gap_ms * MS)
            self.restarts[f.service] = [f.onset_ns, f.end_ns]
            self.down[f.service] = [(f.onset_ns, f.onset_ns + gap), (f.end_ns, f.end_ns + gap)]

    # -- state at a time --------------------------------------------------------------
    def instance(self, service: str, t: int) -> int:
        return sum(1 for r in self.restarts.get(service, ()) if r <= t)

    def is_down(self, service: str, t: int) -> bool:
        return any(a <= t < b for a, b in self.down.get(service, ()))

    def crashed_during(self, service: str, t: int, end: int) -> int | None:
        f = self.fault
        if f is not None and f.kind == "crash" and f.service == service and t < f.onset_ns <= end:
            return f.onset_ns
        return None

    def version(self, model: str, t: int) -> str:
        f = self.fault
        if f is not None and f.model == model and f.bad_version and f.onset_ns <= t < f.end_ns:
            return f.bad_version
        return self.topo.versions[model]

    def active(self, t: int) -> Fault | None:
        f = self.fault
        return f if f is not None and f.onset_ns <= t < f.end_ns else None

    def _ms(self, median: float) -> int:
        x = median * self.rng.lognormvariate(0.0, 0.35)
        if self.rng.random() < 0.005:
            x *= 2
        return int(x * MS)

    # -- requests ---------------------------------------------------------------------
    def requests(self) -> list[Request]:
        sc, out = self.sc, []
        routes = list(self.topo.endpoints)
        weights = [self.topo.weights[r] for r in routes]
        t = sc.start_ns
        while True:
            t += int(self.rng.expovariate(sc.rate) * S)
            if t >= sc.end_ns:
                return out
            out.append(self.request(self.rng.choices(routes, weights)[0], t))

    def request(self, route: str, t: int) -> Request:
        topo = self.topo
        self._faulted = False
        serve = lambda t0: self.serve_entry(route, t0)  # noqa: E731
        if topo.front == "loadgen":
            root = self.client(topo.front, topo.entry, t, route, FRONT_TIMEOUT_MS, serve)
            root.attrs["url.template"] = route
        else:
            root = Rec(topo.front, 0, f"POST {route}", SpanKind.SERVER, t)
            root.attrs = {"http.route": route, "http.request.method": "POST"}
            call = self.client(topo.front, topo.entry, t + MS // 5, route, FRONT_TIMEOUT_MS, serve)
            root.children = [call]
            root.end = call.end + MS // 5
            root.error = "upstream failed" if call.error else None
        return Request(route, t, root, self._faulted)

    def addr(self, callee: str, path: str) -> dict:
        svc = self.topo.services[callee]
        style = self.topo.attrs
        url = f"http://{svc.host}:{svc.port}{path}"
        if style == "semconv":
            return {"server.address": svc.host, "server.port": svc.port, "url.full": url}
        if style == "url":
            return {"url.full": url}
        return {"http.url": url, "net.peer.name": svc.host, "net.peer.port": svc.port}

    def client(self, caller: str, callee: str, t: int, path: str, timeout_ms: float, serve) -> Rec:
        """A remote call: refused while the callee is down, reset when it dies mid-call,
        failed at the deadline when the callee is too slow (its server span ends later)."""
        rec = Rec(caller, self.instance(caller, t), f"POST {path}", SpanKind.CLIENT, t)
        rec.attrs = {"http.request.method": "POST", **self.addr(callee, path)}
        if self.is_down(callee, t):
            self._faulted = True
            rec.end, rec.error = t + int(self.rng.uniform(0.5, 2.0) * MS), "connection refused"
            return rec
        server = serve(t + MS // 2)
        died = self.crashed_during(callee, t, server.end)
        if died is not None:  # the process died with the call in it: it wrote nothing
            self._faulted = True
            rec.end, rec.error = died + MS, "connection reset by peer"
            return rec
        rec.children = [server]
        deadline = t + int(timeout_ms * MS)
        if server.end + MS // 2 > deadline:
            rec.end, rec.error = deadline, "timed out"
        else:
            rec.end = server.end + MS // 2
            rec.error = "HTTP 500" if server.error else None
        rec.bad_out = server.bad_out
        return rec

    def serve_entry(self, route: str, t: int) -> Rec:
        entry = self.topo.entry
        rec = Rec(entry, self.instance(entry, t), f"POST {route}", SpanKind.SERVER, t)
        rec.attrs = {"http.route": route, "http.request.method": "POST"}
        end, err, kids, _ = self.run_plan(self.topo.endpoints[route], t + MS // 5, entry, False)
        rec.children, rec.end = kids, end + MS // 5
        if err:
            rec.error = err
            rec.logs.append((rec.end, ERROR, f"{route} failed: {err}", None, None))
        return rec

    def run_plan(self, plan: tuple, t: int, caller: str, bad_in: bool) -> tuple:
        """(end, error, records, bad output) of one plan step run by ``caller`` from ``t``."""
        if plan[0] == "model":
            return self.call_model(plan[1], t, caller, bad_in)
        kids: list[Rec] = []
        if plan[0] == "seq":
            cur, err, bad = t, None, bad_in
            for step in plan[1]:
                cur, err, recs, bad = self.run_plan(step, cur, caller, bad)
                kids += recs
                cur += MS // 10
                if err:
                    break
            return cur, err, kids, bad
        ends, errs, bads = [], [], []
        for k, step in enumerate(plan[1]):
            end, err, recs, bad = self.run_plan(step, t + k * MS // 20, caller, bad_in)
            ends.append(end)
            errs.append(err)
            bads.append(bad)
            kids += recs
        return max(ends), next((e for e in errs if e), None), kids, any(bads)

    def call_model(self, m: str, t: int, caller: str, bad_in: bool) -> tuple:
        home = self.topo.home[m]
        if home == caller:  # in-process: the caller waits up to its deadline, the run goes on
            rec = self.model_span(m, t, bad_in)
            deadline = t + int(CALL_TIMEOUT_MS * MS)
            if rec.end > deadline:
                return deadline, f"{m} timed out", [rec], False
            return rec.end, rec.error, [rec], rec.bad_out
        shared = len(self.topo.services[home].models) > 1
        path = f"/v1/models/{m}:predict" if shared else "/predict"

        def serve(t0: int) -> Rec:
            srv = Rec(home, self.instance(home, t0), f"POST {path}", SpanKind.SERVER, t0)
            srv.attrs = {"http.route": "/v1/models/{model}:predict" if shared else "/predict"}
            if not shared and self.rng.random() < 0.5:  # a default model set for the service
                srv.attrs["ml.model.name"] = m
            run = self.model_span(m, t0 + MS // 5, bad_in)
            srv.children, srv.end = [run], run.end + MS // 5
            srv.error, srv.bad_out = run.error, run.bad_out
            return srv

        rec = self.client(caller, home, t, path, CALL_TIMEOUT_MS, serve)
        return rec.end, rec.error, [rec], rec.bad_out

    def stall(self, service: str, t: int) -> int:
        """How long a call in ``service`` waits behind a CPU burst running there at ``t``."""
        return max((b - t for a, b in self.hog.get(service, [])[-8:] if a <= t < b), default=0)

    def model_span(self, m: str, t: int, bad_in: bool) -> Rec:
        home, f = self.topo.home[m], self.active(t)
        version = self.version(m, t)
        rec = Rec(home, self.instance(home, t), f"predict {m}", SpanKind.INTERNAL, t)
        rec.attrs = {"ml.model.name": m, "ml.model.version": version}
        cur = t + MS // 10
        for d in self.topo.deps_of[m]:
            path = "/features/lookup" if d == "feature-store" else "/query"
            call = self.client(home, d, cur, path, DEP_TIMEOUT_MS, lambda t0, d=d: self.dep(d, t0))
            call.attrs.update(rec.attrs)  # the call runs inside the model's scope
            rec.children.append(call)
            cur = call.end
            if call.error:
                rec.error = f"{d} failed: {call.error}"
                break
        busy = self._ms(self.topo.base_ms[m])
        wait = self.stall(home, cur)
        if wait:
            self._faulted = True
            busy += wait
        hit = (
            f is not None
            and f.model == m
            and not self.is_down(home, t)
            and self.rng.random() < f.fraction
        )
        if hit:
            self._faulted = True
            if f.kind in ("error_burst", "bad_release"):
                rec.error = f"{m}: ValueError: inference failed"
            elif f.kind in ("latency", "caller_timeouts", "cpu_hog"):
                busy += int(f.delay_ms * MS)
                if f.kind == "cpu_hog":
                    self.hog.setdefault(home, []).append((cur, cur + int(f.delay_ms * MS)))
            elif f.kind == "bad_output":
                rec.bad_out = True
        if bad_in and rec.error is None:
            rec.error = f"{m}: ValueError: input contains NaN"
        if rec.error is None and self.rng.random() < self.sc.noise:
            rec.error = f"{m}: RuntimeError: transient"
        rec.end = cur + busy
        if rec.error:
            rec.logs.append((rec.end, ERROR, rec.error, m, version))
        return rec

    def dep(self, d: str, t: int) -> Rec:
        rec = Rec(d, self.instance(d, t), f"GET {d}", SpanKind.SERVER, t)
        rec.attrs = {"http.route": "/features/lookup" if d == "feature-store" else "/query"}
        busy = self._ms(self.topo.base_ms[d])
        f = self.active(t)
        slow = f is not None and f.kind == "slow_dependency" and f.service == d
        if slow and self.rng.random() < f.fraction:
            self._faulted = True
            busy += int(f.delay_ms * MS)
        rec.end = t + busy
        return rec


def truth(sc: Scenario, requests: list[Request]) -> dict:
    """What the fault did: the culprit, the requests it broke (failed or over the objective
    because of it) and those of them that never touched the culprit (its model when it has
    one, else its service)."""
    topo, f = sc.topology, sc.fault
    rows = []
    for r in requests:
        models = sorted(set(topo.models_of(topo.endpoints[r.route])))
        services = {topo.front, topo.entry, *(topo.home[m] for m in models)}
        services |= {d for m in models for d in topo.deps_of[m]}
        touched = f is not None and (
            f.model in models if f.model is not None else f.service in services
        )
        rows.append(
            {
                "endpoint": r.route,
                "start_ns": r.start,
                "latency_ms": round(r.latency_ms, 3),
                "error": r.root.error,
                "affected": bool(r.bad and r.faulted),
                "touched_culprit": bool(touched),
                "models": models,
            }
        )
    affected = [x for x in rows if x["affected"]]
    culprit = None
    if f is not None:
        version = topo.versions[f.model] if f.model else None
        culprit = {"service": f.service, "model": f.model, "version": f.bad_version or version}
    return {
        "schema_version": 1,
        "run": sc.run,
        "layout": topo.layout,
        "fault": None if f is None else {k: v for k, v in vars(f).items()},
        "culprit": culprit,
        "suspects": sorted(topo.services[f.service].models) if f else [],
        "rate_rps": sc.rate,
        "blast_radius": len(affected),
        "collateral": sum(1 for x in affected if not x["touched_culprit"]),
        "requests": rows,
    }
