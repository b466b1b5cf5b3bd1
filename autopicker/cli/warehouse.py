"""``autopicker build``, ``dbt``, ``show`` and ``bi-role``: the warehouse's own commands.

``build`` creates or upgrades ``langfuse_raw`` and runs ``dbt build``; ``dbt`` runs any dbt command against
the warehouse; ``show`` prints the five fallback views (:mod:`ingest.warehouse.views` reads them) as tables,
at most ``--limit`` rows each in the view's own order, saying how many more there are; ``bi-role`` creates
the read-only BI login (:mod:`ingest.warehouse.bi_role`) and says how a BI tool connects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from autopicker.cli.console import output_console
from autopicker.errors import UsageError
from ingest import db
from ingest.db import Database
from ingest.warehouse.bi_role import PASSWORD_ENV, BiRole
from ingest.warehouse.views import SCHEMA, ViewRows

if TYPE_CHECKING:  # dbt is imported when a command runs it
    from ingest.warehouse.dbt import DbtOutcome

TARGETS = ("default", "spark")
TargetOption = Annotated[
    str,
    typer.Option(
        "--target",
        help="default (PostgreSQL) or spark (a Spark Thrift server, docs/spark.md).",
        show_default=True,
    ),
]


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise UsageError(f"--target must be default or spark, not {target!r}.")


def build(
    select: Annotated[str | None, typer.Option("--select", "-s", help="dbt node selection.")] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh", help="Rebuild incremental models from scratch, and run the unit tests too."
        ),
    ] = False,
    target: TargetOption = "default",
    export_uri: Annotated[
        str | None,
        typer.Option(
            "--export-uri",
            help="spark: the Langfuse export to read in place (a folder, file:// or s3a:// URI). "
            "Default: the one of the last build.",
        ),
    ] = None,
) -> None:
    """Run `dbt build` (models and data tests) against the warehouse; exits with dbt's exit code. A data test
    that warns (a value the warehouse does not know yet) is named on stderr and does not fail the build."""
    check_target(target)
    from ingest.warehouse.dbt import build_args

    args = build_args(full_refresh=full_refresh, select=select)
    if target == "spark":
        from ingest.warehouse import spark

        raise typer.Exit(spark.build(export_uri, args))
    if export_uri is not None:
        raise UsageError(
            "--export-uri is for --target spark; on PostgreSQL, load an export with `autopicker ingest`."
        )
    from ingest.raw import ensure_raw_schema
    from ingest.warehouse.dbt import run_dbt_outcome

    database = db.resolve()
    ensure_raw_schema(database)
    raise typer.Exit(_said_warnings(run_dbt_outcome(args, database)))


def _said_warnings(outcome: DbtOutcome) -> int:
    """One stderr line per node that warned (dbt's log says it too, among hundreds of lines, under a
    generated name); returns the outcome's exit code."""
    err = output_console(stderr=True)
    for warned in outcome.warned:
        err.print(f"warning: {warned} warned", highlight=False, markup=False, soft_wrap=True)
    return outcome.code


def dbt_passthrough(ctx: typer.Context) -> None:
    """Run any dbt command against the warehouse, e.g. `autopicker dbt docs generate`."""
    from ingest.warehouse.dbt import run_dbt_outcome

    if not ctx.args:
        raise UsageError("Give a dbt command, e.g. `autopicker dbt test`.")
    raise typer.Exit(_said_warnings(run_dbt_outcome(ctx.args, db.resolve())))


def show(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many rows per view (tables only).")
    ] = 20,
    target: TargetOption = "default",
    output_format: Annotated[
        str,
        typer.Option("--format", help="table, or json: one object, each view's rows as a list of objects."),
    ] = "table",
) -> None:
    """Print the five fallback views (schema analytics) as tables, or as JSON."""
    from ingest.warehouse import views

    check_target(target)
    if output_format not in ("table", "json"):
        raise UsageError(f"--format must be table or json, not {output_format!r}.")
    if target == "spark":
        from ingest.warehouse import spark

        server = spark.target_server()
        if output_format == "json":
            typer.echo(views.views_json(spark.read_views(server, views.FALLBACK_VIEWS)))
        else:
            render_views(spark.fetch_views(server, limit), output_console())
    elif output_format == "json":
        typer.echo(views.views_json(views.read_views(db.resolve(), views.FALLBACK_VIEWS)))
    else:
        render_views(views.fetch_views(db.resolve(), limit), output_console())


def bi_role(
    name: Annotated[str, typer.Argument(help="The login role to create or update.")] = "autopicker_bi",
) -> None:
    """Create or update a login role that reads the views of schema analytics and nothing else (password
    from AUTOPICKER_BI_PASSWORD)."""
    from ingest.warehouse.bi_role import check_role_name, ensure_bi_role, password_from_env

    password = password_from_env()
    database = db.resolve()
    report(
        ensure_bi_role(database, check_role_name(name), password),
        database,
        output_console(),
        output_console(stderr=True),
    )


def report(result: BiRole, database: Database, console: Console, err_console: Console) -> None:
    """Say what was done and how a BI tool connects (never the password)."""
    params = database.params
    host = params.get("host", "localhost")
    where = f"socket {host}" if host.startswith("/") else f"{host}:{params.get('port', '5432')}"
    verb = "created" if result.created else "updated (new password)"
    console.print(
        f"BI role {result.name} {verb}: it reads the {result.views} views of schema {SCHEMA} in database"
        f" {result.database}, and the views later builds create; nothing else.\n"
        f"Connect a BI tool to {where}, database {result.database}, user {result.name}, with the password"
        f" from {PASSWORD_ENV}.",
        highlight=False,
        soft_wrap=True,
    )
    if result.public_create:
        err_console.print(
            "note: every role may create tables in schema public on this server (PostgreSQL before 15);"
            " `REVOKE CREATE ON SCHEMA public FROM PUBLIC` stops that for the BI role too.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _is_number(rows: Sequence[tuple[object, ...]], index: int) -> bool:
    return any(isinstance(row[index], int | float | Decimal) for row in rows)


def render_views(results: Sequence[ViewRows], console: Console) -> None:
    """Print each view as a table, with a line for the rows left out."""
    for result in results:
        table = Table(title=f"{result.title}\n[dim]{SCHEMA}.{result.name}[/dim]", title_justify="left")
        for index, column in enumerate(result.columns):
            table.add_column(column, justify="right" if _is_number(result.rows, index) else "left")
        for row in result.rows:
            table.add_row(*(_cell(value) for value in row))
        console.print(table)
        if result.hidden > 0:
            console.print(f"… {result.hidden} more rows", style="dim", highlight=False)
        elif result.total == 0:
            console.print("(no rows)", style="dim", highlight=False)
    if results and all(result.total == 0 for result in results):
        console.print("The warehouse has no fallbacks in the reporting window: the five views are empty.")


def register(app: typer.Typer) -> None:
    app.command("build")(build)
    app.command("dbt", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        dbt_passthrough
    )
    app.command("show")(show)
    app.command("bi-role")(bi_role)
