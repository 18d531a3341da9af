"""The distribution's shape: a light base install, namespaced import names, exact exports."""

from __future__ import annotations

import importlib
import re
from importlib.metadata import requires

import pytest

HEAVY = {"duckdb", "pandas", "pyarrow", "streamlit", "plotly", "numpy", "chdb"}


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~\[;(]", spec, maxsplit=1)[0].lower()


def test_base_install_pulls_only_opentelemetry() -> None:
    base = [r for r in requires("faultlens") or [] if "extra ==" not in r]
    names = {_requirement_name(r) for r in base}
    assert names, "the base install must declare its OpenTelemetry dependencies"
    assert all(n.startswith("opentelemetry-") for n in names), names
    assert not names & HEAVY


def test_extras_carry_the_heavy_parts() -> None:
    extras: dict[str, set[str]] = {}
    for r in requires("faultlens") or []:
        m = re.search(r'extra == "([^"]+)"', r)
        if m:
            extras.setdefault(m.group(1), set()).add(_requirement_name(r))
    assert {"duckdb", "pyarrow", "pandas", "typer"} <= extras["analyzer"]
    assert {"streamlit", "plotly"} <= extras["dashboard"]
    assert {"pytest", "ruff", "hypothesis", "playwright"} <= extras["dev"]


# The public surface of each package, kept exact (STYLE.md): a name added to or dropped
# from an `__all__` must be a decision, made here too.
PUBLIC = {
    "faultlens.instrumentation": {
        "ModelIdentityLogProcessor",
        "ModelIdentitySpanProcessor",
        "configure",
        "instrument_app",
        "model",
        "shutdown",
    },
    "faultlens.analyzer": {
        "Analysis",
        "Candidate",
        "Incident",
        "IngestReport",
        "StoreError",
        "collect",
        "connect",
        "incident_report",
        "incidents_json",
        "ingest",
        "open",
        "receiver_app",
        # added in 0.2 (additions only: the names above are the 0.1 surface)
        "DEFAULT_DB",
        "DbTargetError",
        "Target",
        "clickhouse_ddl",
        "incidents_schema",
        "parse_db",
        "ServedAnalysis",  # open() of a store `faultlens serve` holds
        "TimeWindow",
        "parse_window",
    },
    "faultlens.dashboards": {"ENTRYPOINT"},
    "faultlens.sample_traces": {"DATA_DIR", "LAYOUTS", "SCENARIOS", "Scenario", "run_scenario"},
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_package_exports_exactly_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(PUBLIC[name])
    assert len(set(module.__all__)) == len(module.__all__)
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ names missing {exported}"
