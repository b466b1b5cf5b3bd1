"""The ``autopicker`` command line.

Sub-commands are grouped by concern: ``db`` (the warehouse database), ``ingest`` (loading Langfuse data),
``build``/``dbt`` (the dbt project), ``show`` (the five fallback views) and ``demo``; the router package adds
its own (``simulate``, ``chat``). Every error a user can cause ends in one sentence on stderr and a non-zero
exit code: 1 for a failure, 2 for a usage error.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from . import db
from .api_command import ingest_api_command
from .errors import UsageError, UserError
from .fallbacks import fallbacks_command
from .nightly import nightly_command
from .terminal import output_console

app = typer.Typer(
    name="autopicker",
    help="AutoPicker: LLM fallback analytics over Langfuse data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The warehouse database (embedded unless DATABASE_URL is set).", no_args_is_help=True
)
ingest_app = typer.Typer(help="Load Langfuse observations into schema langfuse_raw.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ingest_app, name="ingest")

# Reading Langfuse's API, the nightly job and the seed's examples: bodies in their own modules.
ingest_app.command("api")(ingest_api_command)
app.command("nightly")(nightly_command)
app.command("fallbacks")(fallbacks_command)

console = output_console()
err_console = output_console(stderr=True)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (password masked), starting the embedded server if needed."""
    console.print(db.resolve().redacted(), highlight=False, soft_wrap=True)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server."""
    if db.configured_url():
        raise UserError("DATABASE_URL is set, so there is no embedded server to stop.")
    stopped = db.stop_embedded()
    console.print("stopped the embedded PostgreSQL" if stopped else "the embedded PostgreSQL was not running")


@ingest_app.command("files")
def ingest_files_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH...",
            help="Export files, folders or blob-storage export prefixes (local, or s3://bucket/prefix/).",
            show_default=False,
        ),
    ],
    with_io: Annotated[
        bool, typer.Option("--with-io", help="Also copy input and output (prompts and answers).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Load files even if the same content was loaded before.")
    ] = False,
    latency_unit: Annotated[
        str, typer.Option("--latency-unit", help="Unit of latency in the files: auto (per row), s or ms.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Load Langfuse export files (JSONL, JSON, CSV, Parquet; gzipped or not) into schema langfuse_raw.

    Exit code 0 when every row loaded, 1 when a row was rejected or a file failed, 2 for a usage error.
    """
    from .progress import make_reporter
    from .s3_export import ingest_paths  # local PATHs as ingest.files does, s3:// locations from S3

    if latency_unit not in ("auto", "s", "ms"):
        raise UsageError(f"--latency-unit must be auto, s or ms, not {latency_unit!r}.")
    reporter = make_reporter(as_json=as_json)
    result = ingest_paths(
        db.resolve, paths, reporter=reporter, with_io=with_io, force=force, latency_unit=latency_unit
    )
    reporter.summary(result)
    raise typer.Exit(result.exit_code)


@app.command("build")
def build(
    select: Annotated[str | None, typer.Option("--select", "-s", help="dbt node selection.")] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild incremental models from scratch.")
    ] = False,
) -> None:
    """Run `dbt build` (models and tests) against the warehouse; exits with dbt's exit code."""
    from .dbt_runner import run_dbt
    from .raw import ensure_raw_schema

    database = db.resolve()
    ensure_raw_schema(database)
    args = ["build"]
    if select:
        args += ["--select", select]
    if full_refresh:
        args.append("--full-refresh")
    raise typer.Exit(run_dbt(args, database))


@app.command(
    "dbt",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def dbt_passthrough(ctx: typer.Context) -> None:
    """Run any dbt command against the warehouse, e.g. `autopicker dbt docs generate`."""
    from .dbt_runner import run_dbt

    if not ctx.args:
        raise UsageError("Give a dbt command, e.g. `autopicker dbt test`.")
    raise typer.Exit(run_dbt(ctx.args, db.resolve()))


@app.command("show")
def show(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many rows per view.")] = 20,
) -> None:
    """Print the five fallback views (schema analytics) as tables."""
    from .show import fetch_views, render_views

    render_views(fetch_views(db.resolve(), limit), console)


@app.command("bi-role")
def bi_role(
    name: Annotated[str, typer.Argument(help="The login role to create or update.")] = "autopicker_bi",
) -> None:
    """Create or update a login role that reads the views of schema analytics and nothing else (password
    from AUTOPICKER_BI_PASSWORD)."""
    from .bi_role import check_role_name, ensure_bi_role, password_from_env, report

    password = password_from_env()
    database = db.resolve()
    report(ensure_bi_role(database, check_role_name(name), password), database, console, err_console)


@app.command("demo")
def demo(
    requests: Annotated[int, typer.Option("--requests", "-n", min=1, help="Requests to simulate.")] = 2_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated workload.")] = 42,
    days: Annotated[float, typer.Option("--days", min=0.01, help="Spread over the last D days.")] = 7.0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows per view.")] = 10,
) -> None:
    """The main job end to end: simulate router traffic, ingest its export, `dbt build`, print the views."""
    from .demo import DemoOptions, run_demo

    raise typer.Exit(run_demo(console, DemoOptions(requests=requests, seed=seed, days=days, limit=limit)))


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one sentence and an exit code."""
    from router.cli import register

    register(app)
    try:
        app(prog_name="autopicker")
    except UserError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
