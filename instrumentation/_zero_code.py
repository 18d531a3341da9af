"""The zero-code hook: `opentelemetry-instrument` runs it through the entry point
`opentelemetry_pre_instrument: faultlens`, after any distro configured its providers and
before the library instrumentors patch anything."""

from __future__ import annotations

import logging

from ._configure import _configure

_logger = logging.getLogger("faultlens.instrumentation")


def pre_instrument() -> None:
    """Add the identity processors to the providers in place, or configure from OTEL_* env."""
    try:
        _configure(
            None,
            layout=None,
            default_model=None,
            service_version=None,
            endpoint=None,
            exporter=None,
            file_dir=None,
            log_level=None,
            implicit=True,
        )
    except Exception:  # never stop the host from starting
        _logger.warning("faultlens: zero-code setup failed", exc_info=True)
