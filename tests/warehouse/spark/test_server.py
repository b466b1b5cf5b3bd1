"""The local Spark: the shared Thrift server is reused, listens on loopback only, and is stopped only when it
is the process started; Java and export locations are checked with a clear message."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from autopicker.errors import UsageError, UserError
from ingest.warehouse import spark
from ingest.warehouse.dbt import DbtOutcome, run_dbt_with
from tests.support.spark import TEST_SETTINGS

pytestmark = [pytest.mark.xdist_group("spark")]


def _listening_addresses(pid: int) -> set[str]:
    """The local addresses of the TCP sockets process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing: the JVM opens and closes files all the time
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    addresses = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(fields[1].rsplit(":", 1)[0])
    return addresses


def test_a_running_server_is_reused(spark_server: spark.ThriftServer, spark_state: Path) -> None:
    assert spark.running_thrift_server(spark_state) == spark_server
    assert spark.start_thrift_server(spark_state) == spark_server
    with pytest.raises(UserError, match="already runs"):
        spark.start_thrift_server(spark_state, master="spark://127.0.0.1:7077")


def test_the_settings_given_at_start_are_the_servers(spark_server: spark.ThriftServer) -> None:
    # the session's server was started with TEST_SETTINGS; Spark's own default generates code
    for key, value in TEST_SETTINGS.items():
        assert spark.query(spark_server, f"set {key}")[1] == [(key, value)]


def test_the_server_listens_on_loopback_only(spark_server: spark.ThriftServer) -> None:
    addresses = _listening_addresses(spark_server.pid)
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, as IPv4 and as IPv4-mapped IPv6
    assert addresses and addresses <= loopback, addresses


def test_a_stale_state_stops_nothing(tmp_path: Path) -> None:
    # A state file whose pid is some other process (here: this one) is not a server of ours.
    (tmp_path / "thrift.json").write_text(
        json.dumps({"port": spark.free_port(), "pid": os.getpid(), "master": "local[2]"})
    )
    assert spark.running_thrift_server(tmp_path) is None
    assert spark.stop_thrift_server(tmp_path) is False
    assert not (tmp_path / "thrift.json").exists()
    assert spark.stop_thrift_server(tmp_path / "never-started") is False


def _fake_java(folder: Path, shown: str) -> None:
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{shown}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("shown", "version"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
    ],
)
def test_java_versions_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shown: str, version: int
) -> None:
    _fake_java(tmp_path, shown)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert spark.java_major_version() == version


def test_an_old_or_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15')
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"Java 17 or newer, but `java` is Java 11: run `make spark-install`"):
        spark.check_java()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="Java is not installed: run `make spark-install`"):
        spark.check_java()


def test_export_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "export").mkdir()
    assert spark.export_location("export") == str(tmp_path / "export")
    assert spark.export_location("s3a://bucket/langfuse/") == "s3a://bucket/langfuse"
    assert spark.export_location("file:///data/export") == "file:///data/export"
    with pytest.raises(UsageError, match="missing is not a folder"):
        spark.export_location("missing")


#: The error dbt stopped with when the server failed to close a session (a test build, 2026-12-07), shortened.
FAILED_CLOSE_ERROR = (
    "TCloseSessionResp(status=TStatus(statusCode=3, infoMessages=['*java.lang.RuntimeException:"
    "java.lang.NoClassDefFoundError: org/apache/hadoop/hive/llap/security/LlapSigner$Signable:21:20', "
    "'org.apache.hive.service.cli.session.HiveSessionProxy:invoke:HiveSessionProxy.java:76'], sqlState=None, "
    "errorCode=None, errorMessage='java.lang.NoClassDefFoundError: "
    "org/apache/hadoop/hive/llap/security/LlapSigner$Signable'))"
)


def _runs(*outcomes: DbtOutcome) -> tuple[list[DbtOutcome], Callable[[], DbtOutcome]]:
    """A dbt command as Spark answered it, one outcome a run; and the list of the runs made."""
    made: list[DbtOutcome] = []

    def run() -> DbtOutcome:
        made.append(outcomes[len(made)])
        return made[-1]

    return made, run


def test_a_command_stopped_by_a_failed_session_close_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    made, run = _runs(DbtOutcome(2, error=FAILED_CLOSE_ERROR), DbtOutcome(0, Counter(success=26)))
    assert spark.again_after_failed_close(run) == DbtOutcome(0, Counter(success=26))
    assert len(made) == 2
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "The Spark Thrift server failed to close a session (a jar its distribution lacks); "
        "running the dbt command again."
    ]
    # Not for ever: after the retries, the error is the command's.
    made, run = _runs(*[DbtOutcome(2, error=FAILED_CLOSE_ERROR)] * (spark.FAILED_CLOSE_RETRIES + 1))
    assert spark.again_after_failed_close(run).error == FAILED_CLOSE_ERROR
    assert len(made) == spark.FAILED_CLOSE_RETRIES + 1


@pytest.mark.parametrize(
    "outcome",
    [
        DbtOutcome(1, Counter(success=25, error=1)),  # a model failed: its error is the build's answer
        DbtOutcome(2, error="Runtime Error\n  Could not find profile named 'nowhere'"),
        DbtOutcome(0, Counter(success=26)),
    ],
    ids=["a-failed-model", "another-error", "success"],
)
def test_any_other_outcome_is_the_commands_own(outcome: DbtOutcome) -> None:
    made, run = _runs(outcome, DbtOutcome(0))
    assert spark.again_after_failed_close(run) == outcome
    assert len(made) == 1


def test_dbt_says_why_it_stopped(tmp_path: Path) -> None:
    (tmp_path / "dbt_project.yml").write_text('name: p\nversion: "1"\nconfig-version: 2\nprofile: nowhere\n')
    outcome = run_dbt_with(["run", "--profiles-dir", str(tmp_path)], {}, tmp_path)
    assert (outcome.code, outcome.error) == (2, "Runtime Error\n  Could not find profile named 'nowhere'")
