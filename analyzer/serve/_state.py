"""Finding the server that holds a store: a small state file beside it.

``faultlens serve --db live.duckdb`` writes ``live.duckdb.serve.json`` (its API URL, PID,
whether a token is required, the dashboard URL) when it starts listening and removes it
at exit. A file whose PID is no longer running was left by a killed server: readers
ignore it and the next server replaces it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ServerInfo", "find_server", "remove_state", "state_path", "write_state"]


@dataclass(frozen=True)
class ServerInfo:
    url: str  # the read API and OTLP/HTTP base URL
    pid: int
    token_required: bool
    db: str
    dashboard: str | None = None
    otlp_grpc: str | None = None


def state_path(db: str | Path) -> Path:
    path = Path(db).resolve()
    return path.with_name(path.name + ".serve.json")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    with contextlib.suppress(OSError):  # a killed child its parent has not reaped yet
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    return True


def find_server(db: str | Path) -> ServerInfo | None:
    """The running server holding ``db``, from its state file; None when there is no file,
    it does not parse, or its server is gone (a stale file from a killed server)."""
    text = str(db)
    if text == ":memory:" or text.startswith(("chdb:", "clickhouse://")):
        return None
    try:
        doc = json.loads(state_path(db).read_text())
        info = ServerInfo(**doc)
    except (OSError, ValueError, TypeError):
        return None
    return info if _running(info.pid) else None


def write_state(info: ServerInfo) -> Path:
    """Write the state file atomically (a reader never sees half of it)."""
    path = state_path(info.db)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
    tmp.replace(path)
    return path


def remove_state(db: str | Path) -> None:
    """Remove the state file if it is this process's."""
    path = state_path(db)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
