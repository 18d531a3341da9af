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


@pytest.mark.parametrize(
    "name",
    [
        "faultlens.instrumentation",
        "faultlens.analyzer",
        "faultlens.dashboards",
        "faultlens.sample_traces",
    ],
)
def test_import_names_are_namespaced_and_export_what_they_have(name: str) -> None:
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list)
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ names missing {exported}"
