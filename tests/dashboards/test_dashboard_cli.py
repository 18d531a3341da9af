"""`faultlens dashboard` refuses a missing store in one line, before starting anything."""

from __future__ import annotations

from pathlib import Path

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
