"""The `faultlens` command: version, help, and an example in every command's help."""

from __future__ import annotations

from importlib.metadata import version

import typer
from typer.testing import CliRunner

from faultlens.cli._app import app

runner = CliRunner()


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for info in group.registered_commands:
        found.append((*prefix, info.name or info.callback.__name__.replace("_", "-")))
    for sub in group.registered_groups:
        found.extend(_commands(sub.typer_instance, (*prefix, sub.name)))
    return found


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"faultlens {version('faultlens')}"


def test_every_command_help_has_an_example() -> None:
    commands = _commands(app)
    assert ("demo",) in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, f"`faultlens {' '.join(path)} --help` has no example"
