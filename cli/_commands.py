"""Imports every command module so that each registers itself on the app."""

from . import (
    _clickhouse,  # noqa: F401
    _collect,  # noqa: F401
    _dashboard,  # noqa: F401
    _demo,  # noqa: F401
    _incidents,  # noqa: F401
    _ingest,  # noqa: F401
    _report,  # noqa: F401
    _scenarios,  # noqa: F401
    _serve,  # noqa: F401
)
