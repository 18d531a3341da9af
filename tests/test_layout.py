"""The repository's shape a newcomer relies on: rooms that import one way, modules of a
readable size, nothing read from outside the repository, and imports an editor can follow."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import jedi
import pytest

ROOT = Path(__file__).resolve().parents[1]
ANALYZER = ROOT / "analyzer"
# The data's path: a room imports only from the rooms before it.
ROOMS = ("decode", "store", "facts", "analysis", "present", "serve")
MAX_LINES = 420  # "about 400"
PACKAGE_DIRS = ("analyzer", "cli", "dashboards", "instrumentation", "sample_traces")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(level, dotted module) of every ``from X import`` in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(n.level, n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]


def _room_of_import(path: Path, level: int, module: str) -> str | None:
    """The analyzer room an import reaches, or None when it reaches no room."""
    if level == 0:
        parts = module.split(".")
        if parts[:2] != ["faultlens", "analyzer"] or len(parts) < 3:
            return None
        return parts[2] if parts[2] in ROOMS else None
    base = path.parent
    for _ in range(level - 1):
        base = base.parent
    target = (base / module.replace(".", "/")).resolve() if module else base.resolve()
    try:
        rel = target.relative_to(ANALYZER)
    except ValueError:
        return None
    return rel.parts[0] if rel.parts and rel.parts[0] in ROOMS else None


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_only_from_the_rooms_before_it(room: str) -> None:
    allowed = set(ROOMS[: ROOMS.index(room) + 1])
    wrong = []
    for path in sorted((ANALYZER / room).glob("*.py")):
        for level, module in _imports(path):
            reached = _room_of_import(path, level, module)
            if reached is not None and reached not in allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {'.' * level}{module}")
    assert not wrong, wrong


def test_modules_stay_readable_or_say_why_they_are_one_piece() -> None:
    long = []
    for d in PACKAGE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            text = path.read_text()
            doc = ast.get_docstring(ast.parse(text)) or ""
            if text.count("\n") > MAX_LINES and "one piece" not in doc:
                long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert not long, long


def test_nothing_reads_outside_the_repository() -> None:
    readers = []
    for path in sorted(ROOT.rglob("*.py")):
        if {".venv", "build"} & set(path.relative_to(ROOT).parts):
            continue
        if "../shared" in path.read_text() or "FAULTLENS_SHARED" in path.read_text():
            readers.append(str(path.relative_to(ROOT)))
    readers.remove("tests/test_layout.py")  # this test names what it looks for
    assert not readers, readers


def _definition(rel: str, needle: str, name: str) -> set[Path]:
    """Where a static tool (jedi) says ``name``, inside the first line holding ``needle``
    of ``rel``, is defined: the files, links resolved."""
    path = ROOT / rel
    source = path.read_text()
    number = column = 0
    for number, line in enumerate(source.splitlines(), 1):  # noqa: B007 - used below
        if needle in line:
            column = line.index(needle) + needle.index(name)
            break
    else:
        raise AssertionError(f"{rel}: no line holds {needle!r}")
    env = jedi.create_environment(sys.executable, safe=False)
    script = jedi.Script(code=source, path=path, project=jedi.Project(ROOT), environment=env)
    found = script.goto(number, column, follow_imports=True)
    return {Path(d.module_path).resolve() for d in found if d.module_path}


def test_go_to_definition_follows_an_import_across_packages() -> None:
    got = _definition("cli/_incidents.py", "_client import incidents_doc", "incidents_doc")
    assert got == {ANALYZER / "serve" / "_client.py"}


def test_go_to_definition_follows_an_import_from_the_tests() -> None:
    got = _definition("tests/analyzer/test_pinned_outputs.py", "fa.ingest(", "ingest")
    assert got == {ANALYZER / "serve" / "_ingest.py"}
