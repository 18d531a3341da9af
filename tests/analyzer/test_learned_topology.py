"""The topology learned from the data (issue 18, part 1), on generated systems: which
service a caller's address reaches, learned where the callee answered.

- A callee never seen alive (it records nothing: no OTel in it) that then fails: the
  culprit is named by the address its callers dial, and the evidence says why.
- Several services behind one host, told apart by port: a crashed one is named, not its
  neighbour on the same host.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from scenario_gen import SLO_MS, draw, ingest, write

import faultlens.analyzer as fa


@pytest.mark.parametrize(("seed", "dial"), [(1, "dns"), (2, "ip"), (3, "port")])
def test_a_callee_never_seen_alive_is_named_by_its_address(
    seed: int, dial: str, tmp_path: Path
) -> None:
    sc = draw(seed, kind="slow_dependency", dial=dial)
    f = sc.fault
    # The dependency runs without OTel and dies: its callers' calls are all there is.
    f.kind, f.fraction, f.silent = "crash", 1.0, True
    sc = dataclasses.replace(sc, uninstrumented=frozenset({f.service}))
    truth = write(sc, tmp_path)
    incidents = fa.open(ingest(tmp_path, tmp_path / "store.duckdb")).incidents(slo_ms=SLO_MS)
    svc = sc.topology.services[f.service]
    address = f"{svc.host}:{svc.port}"
    assert len(incidents) == 1, [i.scopes for i in incidents]
    inc = incidents[0]
    assert (inc.culprit.service, inc.culprit.model) == (address, None), inc.candidates[:3]
    assert inc.culprit.evidence[0] == (
        f"never seen alive in the window; named by its address {address}"
    )
    # Every candidate that recorded spans of its own says nothing of the kind.
    assert not any(e.startswith("never seen alive") for c in inc.candidates[1:] for e in c.evidence)
    want = truth["blast_radius"]
    assert abs(inc.blast.requests - want) <= max(3, 0.05 * want)


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_services_sharing_one_host_are_told_apart_by_port(seed: int, tmp_path: Path) -> None:
    sc = draw(seed, kind="crash", layout="per-model", dial="ip")
    for s in sc.topology.services.values():
        s.host = "10.0.0.7"  # one node; each service its own port
    truth = write(sc, tmp_path)
    incidents = fa.open(ingest(tmp_path, tmp_path / "store.duckdb")).incidents(slo_ms=SLO_MS)
    f = sc.fault
    assert len({(s.host, s.port) for s in sc.topology.services.values()}) == len(
        sc.topology.services
    )
    assert len(incidents) == 1, [i.scopes for i in incidents]
    inc = incidents[0]
    assert (inc.culprit.service, inc.culprit.model) == (f.service, f.model), inc.candidates[:3]
    assert not any(e.startswith("never seen alive") for e in inc.culprit.evidence)
    want = truth["blast_radius"]
    assert abs(inc.blast.requests - want) <= max(3, 0.05 * want)
