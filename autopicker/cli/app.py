"""The ``autopicker`` application: the root command, its groups, and the console-script entry point.

Every error a user can cause ends in one sentence on stderr and a non-zero exit code: 1 for a failure, 2 for
a usage error (docs/cli.md states the rule).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from autopicker.cli import db, demo, fallbacks, ingest, nightly, report, router, spark, warehouse
from autopicker.cli.console import output_console
from autopicker.errors import UserError

app = typer.Typer(
    name="autopicker",
    help="AutoPicker: LLM fallback analytics over Langfuse data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for group in (db, ingest, warehouse, spark, report, nightly, fallbacks, demo, router):
    group.register(app)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one sentence and an exit code."""
    try:
        app(prog_name="autopicker")
    except UserError as exc:
        output_console(stderr=True).print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
