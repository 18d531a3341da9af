"""The `faultlens` command.

Each command lives in its own module under ``faultlens.cli`` and registers
itself on ``app``; a command parses, calls one analyzer function, renders.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Console entry point; explains the missing extra instead of a traceback."""
    try:
        from ._app import app
    except ModuleNotFoundError as exc:  # base install: OpenTelemetry only
        sys.stderr.write(
            f"faultlens: the command line needs the analyzer extra ({exc.name} is missing); "
            "install it with: pip install 'faultlens[analyzer]'\n"
        )
        raise SystemExit(2) from None
    app()
