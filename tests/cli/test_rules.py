"""The rules every command follows (docs/cli.md, "Exit codes and messages"): exit codes, one sentence on
stderr, help that reads as written, and output cut short by its reader."""

from __future__ import annotations

import os
import subprocess

import pytest
import typer.main
from typer.testing import CliRunner

from autopicker.cli.app import app
from ingest.db import Database
from tests.support.cli import AUTOPICKER, HANG_TIMEOUT, REPO, run_cli


def _bare_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "200", **extra}


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "autopicker")
def test_help_shows_the_text_as_written_and_no_python_types(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for python_type in ("<bool>", "<list[", "...}...", "\x1b["):
        assert python_type not in result.output


def test_brackets_in_help_are_text_not_markup() -> None:
    result = CliRunner().invoke(app, ["nightly", "--help"], env={"COLUMNS": "200"})
    assert "TOML file with sources, [api] and [files] settings" in result.output


@pytest.mark.parametrize(
    ("args", "env_var"),
    [
        (("ingest", "api"), "LANGFUSE_PUBLIC_KEY"),
        (("fallbacks", "--from", "api"), "LANGFUSE_PUBLIC_KEY"),
        (("bi-role",), "AUTOPICKER_BI_PASSWORD"),
        (("nightly",), "AUTOPICKER_SOURCES"),
    ],
    ids=["ingest-api", "fallbacks-api", "bi-role", "nightly"],
)
def test_a_missing_setting_is_a_usage_error(
    database: Database, args: tuple[str, ...], env_var: str, tmp_path: str
) -> None:
    result = run_cli(*args, env=_bare_env(DATABASE_URL=database.url, AUTOPICKER_HOME=str(tmp_path)))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and env_var in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_setting_with_a_bad_value_is_a_usage_error() -> None:
    result = run_cli("show", env=_bare_env(DATABASE_URL="mysql://root@localhost/x"))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: DATABASE_URL must be a postgresql:// URL."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dbt", "frobnicate"), "error: dbt: No such command 'frobnicate'."),
        (("dbt", "run", "--fake-flag"), "error: dbt: No such option '--fake-flag'."),
    ],
    ids=["unknown-command", "unknown-option"],
)
def test_dbt_usage_errors_are_said(database: Database, args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args, env=_bare_env(DATABASE_URL=database.url))
    assert result.returncode == 2
    assert result.stderr.strip() == message


def test_fallbacks_from_a_warehouse_never_loaded_says_so_and_creates_nothing(database: Database) -> None:
    result = run_cli("fallbacks", "--from", "warehouse", env=_bare_env(DATABASE_URL=database.url))
    assert result.returncode == 1
    assert result.stderr.startswith("error: The warehouse at ")
    assert "holds no Langfuse data yet" in result.stderr
    with database.connect() as conn:
        assert conn.execute("select to_regnamespace('langfuse_raw')").fetchone() == (None,)


def test_a_reader_that_goes_away_is_not_an_error(database: Database) -> None:
    """`autopicker db url | head -0`: the pipe is closed before the command writes a byte."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*AUTOPICKER, "db", "url"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_bare_env(DATABASE_URL=database.url),
            cwd=REPO,
            text=True,
            timeout=HANG_TIMEOUT,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert result.stderr == ""


def test_an_error_naming_a_long_path_stays_one_line(database: Database, tmp_path: str) -> None:
    long_path = "/" + "/".join(f"folder-{n:03d}" for n in range(40)) + "/export"  # over 400 characters
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": database.url}
    result = run_cli("ingest", "files", long_path, env=env | {"AUTOPICKER_HOME": str(tmp_path)})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and long_path in lines[0], result.stderr
