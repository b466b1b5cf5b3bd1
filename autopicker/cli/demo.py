"""``autopicker demo``: the whole pipeline on simulated traffic, on a fresh machine, in one command.

Simulated router traffic (AutoPickerLLM over seeded simulated providers, traced through the Langfuse SDK into
the offline sink) -> a Langfuse blob-storage export folder -> ``ingest files`` -> ``dbt build`` -> the five
fallback views printed as tables -> the report (``autopicker report``), whose path it prints last. The
export lands in ``.autopicker/demo-export`` (emptied first, so repeated demos do not pile up files); its
timestamps are spread over the days before now so the 7-day views are full.

``--target spark`` runs the same demo on Spark (docs/spark.md): the export is read in place by ``dbt build
--target spark`` on the local Spark Thrift server (started when it does not run), with no ingest step.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.rule import Rule

from autopicker.cli.console import output_console
from autopicker.cli.warehouse import TargetOption, check_target
from autopicker.errors import UserError
from ingest import db
from ingest.warehouse.dbt import run_dbt_outcome

logger = logging.getLogger(__name__)

DEMO_PROJECT = "autopicker-demo"


@dataclass(frozen=True)
class DemoOptions:
    requests: int = 2_000
    seed: int = 42
    days: float = 7.0
    limit: int = 10


def run_demo(console: Console, options: DemoOptions) -> int:
    """Run the five steps and return the exit code: the worst of the ingest's and dbt's."""
    from autopicker.cli.progress import make_reporter
    from autopicker.cli.warehouse import render_views
    from ingest.raw import delete_project
    from ingest.sources.files import ingest_files
    from ingest.warehouse.views import fetch_views

    database = db.resolve()
    where = "embedded PostgreSQL" if database.embedded else database.redacted()
    console.print(f"warehouse: {where}", highlight=False)
    if not database.embedded:
        output_console(stderr=True).print(
            f"note: DATABASE_URL is set, so the demo writes simulated rows (Langfuse project {DEMO_PROJECT})"
            f" into {database.redacted()}, replacing the ones an earlier demo wrote there, and rebuilds its"
            " models from scratch; other projects' rows stay. Unset DATABASE_URL to use the embedded server.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    out = simulate_export(console, options)

    console.print(Rule("2/5 ingest the export into langfuse_raw"))
    replaced = delete_project(database, DEMO_PROJECT)
    if replaced:
        console.print(f"replacing the {replaced:,} observations of the previous demo", highlight=False)
    reporter = make_reporter()
    result = ingest_files(database, [str(out)], reporter=reporter, force=True)
    reporter.summary(result)

    # from scratch: the incremental models would keep what the previous demo's rows made of them
    console.print(Rule("3/5 dbt build --full-refresh"))
    outcome = run_dbt_outcome(["build", "--full-refresh"], database, quiet=True)
    counts = ", ".join(f"{n:,} {status}" for status, n in sorted(outcome.statuses.items()))
    console.print(f"dbt build: {counts or 'nothing ran'}", highlight=False)
    dbt_code = outcome.code

    console.print(Rule("4/5 the five fallback views (schema analytics)"))
    render_views(fetch_views(database, options.limit), console)

    console.print(Rule("5/5 the report: the three dashboards, the views and the alerts"))
    from autopicker.cli.report import write

    index = write(database=database)
    console.print(
        "Next: `autopicker show` prints the views again, `autopicker db url` gives the connection for a "
        "BI tool, `autopicker db stop` stops the embedded server.",
        highlight=False,
    )
    console.print(f"report: {index}", highlight=False, soft_wrap=True)
    return max(result.exit_code, dbt_code)


def simulate_export(console: Console, options: DemoOptions) -> Path:
    """Step 1: the simulated traffic's export, written afresh into ``demo-export`` of the state folder."""
    from router.simulate import simulate

    out = db.home_dir() / "demo-export"
    console.print(Rule("1/5 simulate router traffic"))
    shutil.rmtree(out, ignore_errors=True)
    try:
        out.mkdir(parents=True)
        summary = simulate(
            out, requests=options.requests, seed=options.seed, days=options.days, project_id=DEMO_PROJECT
        )
    except OSError as exc:
        raise UserError(f"Cannot write the demo export to {out}: {exc.strerror or exc}.") from None
    stats = summary.stats
    console.print(
        f"{stats['total_requests']:,} requests, {stats['fallback_requests']:,} fell back "
        f"({stats['rate_limit_fallbacks']:,} rate-limit and {stats['context_length_fallbacks']:,} "
        f"context-length fallback events), {stats['failed_requests']:,} failed; "
        f"{summary.rows:,} observations in {len(summary.runs)} export runs",
        highlight=False,
    )
    return out


def run_spark_demo(console: Console, options: DemoOptions) -> int:
    """The demo on Spark: the export built where it lies, then the views and the report read from Spark;
    returns dbt's exit code."""
    from autopicker.cli.report import write
    from autopicker.cli.warehouse import render_views
    from ingest.warehouse import spark

    external = bool(os.environ.get(spark.HOST_ENV, "").strip())
    out = simulate_export(console, options)

    console.print(Rule("2/5 Spark: the local Thrift server"))
    server = spark.target_server()
    schema = spark.target_schema()
    where = f"{server.host}:{server.port}"
    console.print(
        f"Spark Thrift server at {where} ({'named by ' + spark.HOST_ENV if external else server.master})",
        highlight=False,
    )
    if external:
        output_console(stderr=True).print(
            f"note: {spark.HOST_ENV} is set, so the demo builds in schema {schema} of the server at {where},"
            f" replacing what an earlier build made there, over {out}, which that server must be able to"
            " read.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    # from scratch: the export was written anew, the incremental models would keep the old one's rows
    console.print(Rule("3/5 dbt build --target spark --full-refresh, over the export in place"))
    outcome = spark.run_dbt_spark(
        ["build", "--full-refresh"], server, export=spark.export_location(str(out)), quiet=True
    )
    counts = ", ".join(f"{n:,} {status}" for status, n in sorted(outcome.statuses.items()))
    console.print(f"dbt build: {counts or 'nothing ran'}", highlight=False)

    console.print(Rule(f"4/5 the five fallback views (schema {schema} on Spark)"))
    render_views(spark.fetch_views(server, options.limit, schema), console)

    console.print(Rule("5/5 the report: the three dashboards, the views and the alerts"))
    index = write(target="spark")
    console.print(
        "Next: `autopicker show --target spark` prints the views again, `autopicker spark stop` stops the "
        "local Spark.",
        highlight=False,
    )
    console.print(f"report: {index}", highlight=False, soft_wrap=True)
    return outcome.code


def demo(
    requests: Annotated[int, typer.Option("--requests", "-n", min=1, help="Requests to simulate.")] = 2_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated workload.")] = 42,
    days: Annotated[float, typer.Option("--days", min=0.01, help="Spread over the last D days.")] = 7.0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows per view.")] = 10,
    target: TargetOption = "default",
) -> None:
    """The main job end to end: simulate router traffic, ingest its export, `dbt build`, print the views,
    write the report (on Spark: the export built in place, no ingest)."""
    check_target(target)
    options = DemoOptions(requests=requests, seed=seed, days=days, limit=limit)
    run = run_spark_demo if target == "spark" else run_demo
    raise typer.Exit(run(output_console(), options))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
