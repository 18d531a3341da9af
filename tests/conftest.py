"""Where the shared conformance data lives: ``../shared`` beside the repository.

Every developer and CI run has it there (../shared/README.md); FAULTLENS_SHARED
points elsewhere. Tests read ``SHARED`` from the environment this sets.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_default = Path(__file__).resolve().parents[1].parent / "shared"
SHARED = Path(os.environ.setdefault("FAULTLENS_SHARED", str(_default)))


def pytest_configure(config: pytest.Config) -> None:
    if not (SHARED / "contracts" / "incidents.schema.json").is_file():
        raise pytest.UsageError(
            f"shared data not found at {SHARED}: the tests need ../shared beside the "
            "repository (or FAULTLENS_SHARED pointing at it)"
        )
