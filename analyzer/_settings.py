"""Settings every room reads: the thresholds of incident detection, and the tuning knobs
of ingest and the stored facts.

The tuning knobs are read once, from their environment variables, into ``TUNING``; code
reads ``TUNING.<knob>`` when it runs (not at import), so a test or a benchmark may set an
attribute for the length of a call. Defaults suit a 2-core machine with a few GB free.

========================  ==========================  ==========================================
attribute                 environment variable        what it bounds
========================  ==========================  ==========================================
``chunk_bytes``           FAULTLENS_CHUNK_BYTES       bytes of a file decoded as one chunk (8 MiB)
``batch_rows``            FAULTLENS_BATCH_ROWS        rows merged into one store commit (200,000)
``insert_threads``        FAULTLENS_INSERT_THREADS    DuckDB threads of ingest's writes (1)
``window_bytes``          FAULTLENS_WINDOW_BYTES      bytes of chunks read ahead of the decoders
``facts_part_spans``      FAULTLENS_FACTS_PART_SPANS  spans a run's facts derive at once (1M)
``facts_memory``          FAULTLENS_FACTS_MEMORY      DuckDB memory limit while facts derive
========================  ==========================  ==========================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["S", "TUNING", "DetectionSettings", "TimeWindow", "Tuning"]

S = 1_000_000_000  # nanoseconds per second


@dataclass(frozen=True)
class TimeWindow:
    """[since_ns, until_ns) in ns since the epoch; None leaves that side open. The analysis
    reads only the spans and logs whose ``Timestamp`` is inside (``facts._tables``)."""

    since_ns: int | None = None
    until_ns: int | None = None

    def __bool__(self) -> bool:
        return self.since_ns is not None or self.until_ns is not None

    def query(self) -> dict[str, str]:
        """The window as the read API's query parameters."""
        out = {}
        if self.since_ns is not None:
            out["since"] = str(self.since_ns)
        if self.until_ns is not None:
            out["until"] = str(self.until_ns)
        return out


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds of incident detection; the defaults suit 5 s buckets."""

    bucket_s: float = 5.0
    min_baseline_buckets: int = 3
    min_errors: int = 3
    error_margin: float = 0.05  # absolute rise of the error ratio over the baseline
    latency_factor: float = 2.0  # p95 over the baseline's p95
    latency_margin_ms: float = 50.0
    traffic_drop: float = 0.25  # requests below this share of the baseline rate ...
    traffic_p: float = 1e-5  # ... and as few or fewer this unlikely beside its baseline
    min_requests: int = 3
    merge_gap_buckets: int = 1
    # A scope that departs again after a quiet gap up to this long is the same fault: a
    # low-rate fault leaves some buckets clean (DESIGN.md: "One fault is one incident").
    same_scope_gap_buckets: int = 12

    @property
    def bucket_ns(self) -> int:
        return int(self.bucket_s * S)


@dataclass
class Tuning:
    """Ingest and facts knobs (the table in this module's docstring)."""

    chunk_bytes: int = 8 << 20
    batch_rows: int = 200_000
    insert_threads: int = 1
    window_bytes: int = 96 << 20
    facts_part_spans: int = 1_000_000
    facts_memory: str = "700MB"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Tuning:
        d = cls()
        return cls(
            chunk_bytes=int(env.get("FAULTLENS_CHUNK_BYTES", d.chunk_bytes)),
            batch_rows=int(env.get("FAULTLENS_BATCH_ROWS", d.batch_rows)),
            insert_threads=int(env.get("FAULTLENS_INSERT_THREADS", d.insert_threads)),
            window_bytes=int(env.get("FAULTLENS_WINDOW_BYTES", d.window_bytes)),
            facts_part_spans=int(env.get("FAULTLENS_FACTS_PART_SPANS", d.facts_part_spans)),
            facts_memory=env.get("FAULTLENS_FACTS_MEMORY", d.facts_memory),
        )


TUNING = Tuning.from_env()
