"""``autopicker report``: the guide's three dashboards, the five fallback views and the alerts as a page.

The work is :mod:`autopicker.report`; this module picks the folder, says where the report is and, with
``--open``, hands it to the default browser when there is one.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from autopicker.cli.console import output_console
from autopicker.cli.warehouse import TargetOption, check_target
from ingest import db


def default_out() -> Path:
    """``report/`` in the local state folder (``.autopicker/`` or ``$AUTOPICKER_HOME``)."""
    return db.home_dir() / "report"


def write(out: Path | None = None, database: db.Database | None = None, target: str = "default") -> Path:
    """Write the report of the warehouse as it stands (on PostgreSQL, or with ``target`` spark on the Spark
    warehouse of ``autopicker build --target spark``); returns the path of its ``index.html``."""
    from autopicker.report.data import collect, collect_spark
    from autopicker.report.page import write_report

    if target == "spark":
        from ingest.warehouse import spark

        data = collect_spark(spark.target_server(), spark.target_schema())
    else:
        data = collect(database or db.resolve())
    written = write_report(data, out or default_out())
    return written.index


def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write index.html and charts/ into.", show_default=False),
    ] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the report in the default browser, where there is one.")
    ] = False,
    target: TargetOption = "default",
) -> None:
    """Write the dashboards, the five fallback views and the alerts as an HTML report (default folder:
    report/ in the local state folder)."""
    check_target(target)
    index = write(out, target=target)
    console = output_console()
    console.print(f"report: {index}", highlight=False, soft_wrap=True)
    if open_:
        try:
            opened = webbrowser.get().open(index.as_uri())
        except webbrowser.Error:
            opened = False
        if not opened:
            output_console(stderr=True).print(
                f"note: no browser found here; open {index} on a machine with one.", highlight=False
            )


def register(app: typer.Typer) -> None:
    app.command("report")(report)
