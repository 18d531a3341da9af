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
