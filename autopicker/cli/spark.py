"""``autopicker spark ...``: the local Spark (a Thrift server dbt's ``spark`` target reaches) and the proof
that the project builds on a standalone Spark cluster. The work is done in :mod:`ingest.warehouse.spark`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autopicker.cli.console import output_console

spark_app = typer.Typer(
    help="A local Apache Spark for the warehouse's `spark` target (docs/spark.md).", no_args_is_help=True
)
console = output_console()


@spark_app.command("start")
def spark_start(
    master: Annotated[
        str, typer.Option("--master", help="local[N], or a standalone master's spark://HOST:PORT.")
    ] = "local[2]",
) -> None:
    """Start the local Spark Thrift server (or find it running) and print where it listens."""
    from ingest.warehouse import spark

    server = spark.start_thrift_server(master=master)
    console.print(
        f"Spark Thrift server on {server.host}:{server.port} ({server.master}, pid {server.pid}); "
        f"state in {spark.state_dir()}",
        highlight=False,
        soft_wrap=True,
    )


@spark_app.command("stop")
def spark_stop() -> None:
    """Stop the local Spark Thrift server and any standalone cluster left by `autopicker spark cluster`."""
    from ingest.warehouse import spark

    standalone = spark.state_dir() / "standalone"
    stopped = spark.stop_thrift_server()
    stopped = spark.stop_thrift_server(standalone / "thrift") or stopped
    stopped = spark.stop_standalone_cluster(standalone / "cluster") or stopped
    console.print("stopped" if stopped else "no local Spark was running", highlight=False)


@spark_app.command("status")
def spark_status() -> None:
    """Say whether the local Spark Thrift server runs, and where."""
    from ingest.warehouse import spark

    server = spark.running_thrift_server()
    if server is None:
        console.print("no local Spark Thrift server is running", highlight=False)
        raise typer.Exit(1)
    console.print(
        f"Spark Thrift server on {server.host}:{server.port} ({server.master}, pid {server.pid})",
        highlight=False,
    )


@spark_app.command("cluster")
def spark_cluster(
    export: Annotated[str, typer.Argument(help="A Langfuse export folder, or a file:// or s3a:// URI.")],
    workers: Annotated[int, typer.Option("--workers", min=1, help="Workers to start.")] = 2,
) -> None:
    """Start a standalone Spark cluster on 127.0.0.1 (a master and WORKERS workers), build the whole project
    on it over EXPORT through a Thrift server, print what it took, and stop everything it started."""
    from ingest.warehouse import spark

    location = spark.export_location(export)
    folder: Path = spark.state_dir() / "standalone"
    console.print(f"starting a Spark master and {workers} workers on 127.0.0.1 ...", highlight=False)
    result = spark.build_on_standalone_cluster(location, folder, workers=workers)
    console.print(
        f"cluster {result.master_url} with {result.workers} workers and the Thrift server: "
        f"{result.start_seconds:.1f} s to start",
        highlight=False,
    )
    counts = ", ".join(f"{n:,} {status}" for status, n in sorted(result.statuses.items()))
    console.print(
        f"dbt build --full-refresh of every model and test over {location}: {result.build_seconds:.1f} s, "
        f"exit code {result.exit_code} ({counts or 'nothing ran'})",
        highlight=False,
        soft_wrap=True,
    )
    for relation, rows in result.rows.items():
        console.print(f"  {relation}: {rows:,} rows", highlight=False)
    console.print("stopped the Thrift server, the workers and the master", highlight=False)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.add_typer(spark_app, name="spark")
