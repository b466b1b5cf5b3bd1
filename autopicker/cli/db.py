"""``autopicker db``: the warehouse database (embedded unless ``DATABASE_URL`` is set)."""

from __future__ import annotations

import shlex

import typer

from autopicker.cli.console import output_console
from autopicker.errors import UserError
from ingest import db

db_app = typer.Typer(
    help="The warehouse database (embedded unless DATABASE_URL is set).", no_args_is_help=True
)


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (password masked), starting the embedded server if needed; exit 1 when
    the server does not answer."""
    database = db.resolve()
    database.ping()
    output_console().print(database.redacted(), highlight=False, soft_wrap=True)


@db_app.command("env")
def db_env() -> None:
    """Print PGHOST, PGPORT, PGUSER and PGDATABASE as shell exports, for plain psql and dbt.

    Set them with: eval "$(.venv/bin/autopicker db env)"

    The password is never printed; for a DATABASE_URL with one, export PGPASSWORD yourself.
    """
    env = db.resolve().libpq_env()
    password = env.pop("PGPASSWORD", "")
    for name, value in env.items():
        typer.echo(f"export {name}={shlex.quote(value)}")
    if password:
        typer.echo("# PGPASSWORD is not printed: export it yourself (or use a ~/.pgpass file).", err=True)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server."""
    if db.configured_url():
        raise UserError("DATABASE_URL is set, so there is no embedded server to stop.")
    stopped = db.stop_embedded()
    output_console().print(
        "stopped the embedded PostgreSQL" if stopped else "the embedded PostgreSQL was not running"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
