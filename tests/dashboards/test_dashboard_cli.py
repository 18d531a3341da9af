"""`faultlens dashboard`: a missing store refused in one line before starting anything; what
it hands the app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faultlens.cli._app import app


def test_dashboard_names_a_missing_store(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.duckdb"
    result = CliRunner().invoke(app, ["dashboard", "--db", str(missing)])
    assert result.exit_code == 2
    assert result.output == (
        f"faultlens dashboard: {missing}: no such store; run `faultlens ingest` first.\n"
    )


def test_dashboard_names_a_missing_chdb_directory(tmp_path: Path) -> None:
    missing = f"chdb:{tmp_path / 'nothing'}"
    result = CliRunner().invoke(app, ["dashboard", "--db", missing])
    assert result.exit_code == 2
    assert result.output == f"faultlens dashboard: {missing}: no such chDB directory.\n"


def test_dashboard_names_a_malformed_target() -> None:
    result = CliRunner().invoke(app, ["dashboard", "--db", "clickhouse://:8123"])
    assert result.exit_code == 2
    assert result.output.startswith("faultlens dashboard: --db 'clickhouse://:8123': no host")
    assert len(result.output.splitlines()) == 1


def test_dashboard_hands_a_server_url_to_the_app_and_never_prints_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The app gets the whole URL (it connects with it); the terminal sees no password."""
    url = "clickhouse://faultlens:secret@127.0.0.1:8123/otel"
    started: dict[str, object] = {}

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        started.update(argv=argv, env=env)
        raise SystemExit(0)  # in place of the process streamlit would become

    monkeypatch.setattr(os, "execve", execve)
    result = CliRunner().invoke(app, ["dashboard", "--db", url])
    assert result.exit_code == 0, result.output
    assert started["env"]["FAULTLENS_DB"] == url
    assert "secret" not in result.output
    assert "store clickhouse://faultlens@127.0.0.1:8123/otel;" in result.output
