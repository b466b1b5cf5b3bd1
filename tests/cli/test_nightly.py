"""`autopicker nightly`: ingest, dbt build, source freshness, one job at a time per warehouse."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autopicker.errors import UsageError, UserError
from ingest.db import Database
from ingest.warehouse.nightly import NIGHTLY_LOCK, ApiSettings, FilesSettings, load_config, nightly_lock
from tests.support.api import REPO, observation, subprocess_env, wait_until
from tests.support.cli import AUTOPICKER, HANG_TIMEOUT
from tests.support.clock import reporting_now
from tests.support.export_files import write_jsonl
from tests.support.langfuse_api import Fault, LangfuseAPIServer, LangfuseState


@pytest.fixture
def server() -> Iterator[LangfuseAPIServer]:
    now = datetime.now(UTC)
    state = LangfuseState()
    for i in range(6):
        start = now - timedelta(hours=i + 1)
        state.observations.append(observation(f"gen-{i}", "GENERATION", start))
        if i % 2 == 0:
            state.observations.append(observation(f"ev-{i}", "EVENT", start + timedelta(milliseconds=5)))
    with LangfuseAPIServer(state) as running:
        yield running


def test_nightly_ingests_builds_checks_freshness_and_refuses_a_second_job_at_once(
    database: Database, server: LangfuseAPIServer, tmp_path: Path
) -> None:
    env = subprocess_env(database, server, tmp_path) | {"AUTOPICKER_SOURCES": "api"}
    server.state.faults.append(Fault("hold"))  # the first job stays in its ingest until released
    first = subprocess.Popen(
        [*AUTOPICKER, "nightly"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(server.state.observation_requests, alive=lambda: first.poll() is None), (
            first.communicate()
        )

        second = subprocess.run(
            [*AUTOPICKER, "nightly"], env=env, cwd=REPO, capture_output=True, text=True, timeout=HANG_TIMEOUT
        )

        assert second.returncode == 1
        assert second.stderr.startswith("error: Another `autopicker nightly` is running on this warehouse")
        assert "--wait" in second.stderr and "Traceback" not in second.stderr
        server.state.release.set()
        out, err = first.communicate(timeout=HANG_TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, out + err
    summary = out[out.index("autopicker nightly") :]
    for step in ("ingest api", "dbt build", "dbt source freshness", "report"):
        assert any(
            line.split()[: len(step.split()) + 1] == [*step.split(), "ok"]
            for line in summary.splitlines()
            if line.strip()
        ), summary
    with database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM langfuse_raw.observations").fetchone() == (9,)
        daily = conn.execute("SELECT sum(total_fallbacks) FROM analytics.fallback_all_daily").fetchone()
    assert daily == (3,)  # the three fallback events, through the freshly built views
    report = tmp_path / "report" / "index.html"  # the last step: the report, in the local state folder
    assert str(report) in summary.replace("\n", "") and "Fallback Monitoring" in report.read_text()


def test_no_report_leaves_the_report_out(database: Database, tmp_path: Path) -> None:
    export = REPO / "tests" / "fixtures" / "ingest" / "export"
    done = _nightly_from(export, database, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout[done.stdout.index("autopicker nightly") :].splitlines()[1:]
    steps = [line.split()[0] for line in table if line.strip()]
    assert "dbt" in steps and "report" not in steps
    assert not (tmp_path / "report").exists()


def test_a_job_right_after_the_last_one_finds_the_lock_free(database: Database) -> None:
    """The lock is released when the block ends, not when the server gets round to ending the session: a
    job started at once after the last one (a retry, a test) never reads "Another ... is running"."""
    for _ in range(30):
        with nightly_lock(database, wait=False):
            pass
        with database.connect(autocommit=True) as other:
            free = other.execute("SELECT pg_try_advisory_lock(%s)", (NIGHTLY_LOCK,)).fetchone()
            other.execute("SELECT pg_advisory_unlock_all()")
        assert free == (True,)


def test_a_second_job_with_wait_waits_for_the_first(database: Database) -> None:
    acquired = threading.Event()
    messages: list[str] = []

    def second_job() -> None:
        with nightly_lock(database, wait=True, on_wait=messages.append):
            acquired.set()

    with nightly_lock(database, wait=False):
        waiter = threading.Thread(target=second_job)
        waiter.start()
        assert wait_until(lambda: _waiting_for_lock(database)), "the second job never queued for the lock"
        assert not acquired.is_set()
        with (
            pytest.raises(UserError, match="Another `autopicker nightly` is running on this warehouse"),
            nightly_lock(database, wait=False),
        ):
            pass
    waiter.join(timeout=HANG_TIMEOUT)
    assert acquired.is_set()
    assert messages and messages[0].startswith("waiting for the `autopicker nightly` running")


def _waiting_for_lock(database: Database) -> bool:
    with database.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
            (NIGHTLY_LOCK,),
        ).fetchone()
    return bool(row and row[0])


def test_sources_come_from_the_command_line_then_env_then_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "nightly.toml"
    config.write_text(
        'sources = ["s3://bucket/from-file/"]\n[api]\nrequests_per_minute = 100\n'
        '[files]\nlatency_unit = "ms"\n'
    )
    keys = {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk"}

    from_file = load_config(config, environ={})
    assert from_file.sources == ["s3://bucket/from-file/"]
    assert from_file.api == ApiSettings(requests_per_minute=100)
    assert from_file.files == FilesSettings(latency_unit="ms")
    assert load_config(config, environ={"AUTOPICKER_SOURCES": "api s3://b/env/"}).sources == [
        "api",
        "s3://b/env/",
    ]
    from_cli = load_config(config, environ={"AUTOPICKER_SOURCES": "api"}, cli_sources=["s3://b/cli/"])
    assert from_cli.sources == ["s3://b/cli/"]
    assert load_config(None, environ={"AUTOPICKER_CONFIG": str(config)}).sources == ["s3://bucket/from-file/"]
    assert load_config(None, environ=keys).sources == ["api"]  # nothing said: the API when its keys are set
    with pytest.raises(UsageError, match="Nothing to ingest"):
        load_config(None, environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source = 'api'\n", "unknown key 'source'"),
        ("[api]\nrequests_per_minute = 'many'\n", r"\[api\] requests_per_minute has the wrong type"),
        ("[files]\nforce = true\n", r"\[files\] has an unknown key 'force' \(known: with_io, latency_unit\)"),
        ("[api]\npage_size = true\n", r"\[api\] page_size has the wrong type: expected int, got bool"),
        ("api = 3\n", r"\[api\] must be a table"),
        ("sources = ['']\n", "sources must be a list of strings that are not empty"),
        ("sources = [\n", "is not valid TOML"),
        ("sources = ['/no/such/folder']\n", "neither api, an s3:// location nor an existing folder"),
    ],
)
def test_a_bad_config_file_is_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "nightly.toml"
    config.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(config, environ={})


def test_a_firing_alert_shows_as_warn_a_skipped_file_as_skipped_and_the_log_has_no_colour_codes(
    database: Database, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    rows = [observation(f"gen-{i}", "GENERATION", now - timedelta(minutes=i + 1)) for i in range(2)]
    rows[0]["level"] = "INFO"  # a level the warehouse does not know yet: the raw-value test warns
    # twelve context-length fallbacks in the last few minutes: more than the alert's 10 in 10 minutes
    rows += [
        observation(
            f"ctx-{i:02d}", "EVENT", now - timedelta(seconds=10 * i + 5), name="context_length_fallback"
        )
        for i in range(12)
    ]
    export = tmp_path / "export"
    export.mkdir()
    write_jsonl(export / "observations.jsonl", rows)
    # The alert counts the last 10 minutes before now, and a loaded machine can take that long to reach it:
    # the build takes the rows' now for its own (var reporting_now), as a team sets it in its dbt_project.yml.
    project = project_with_clock(tmp_path / "project", now)

    def nightly() -> tuple[int, str, dict[str, str]]:
        done = _nightly_from(export, database, tmp_path / "home", project)
        assert "\x1b[" not in done.stdout + done.stderr  # a cron log is not a terminal
        table = done.stdout[done.stdout.index("autopicker nightly") :].splitlines()
        steps = {
            step: line.split(step, 1)[1].strip()
            for line in table
            for step in (f"ingest {export}", "dbt build", "dbt source freshness")
            if line.strip().startswith(step)
        }
        return done.returncode, done.stdout + done.stderr, steps

    code, output, steps = nightly()
    assert code == 0, output  # an alert warns, it does not fail the job
    assert steps[f"ingest {export}"].split()[0] == "ok"
    assert "1 file loaded, 14 rows loaded" in steps[f"ingest {export}"]
    result, detail = steps["dbt build"].split(maxsplit=1)
    assert result == "warn", output
    assert "warned: " in detail
    # which test, on which model or source (dbt's generated node name once): the whole cell, however wrapped
    table = output[output.index("autopicker nightly") :]
    cell = "".join(table[table.index("dbt build") : table.index("dbt source freshness")].split())
    assert "alert_context_limit_frequently_hit" in cell
    assert "accepted_values of level in source langfuse.observations (1 row)".replace(" ", "") in cell

    code, output, steps = nightly()
    assert code == 0, output
    assert "0 files loaded, 1 skipped (already loaded), 0 rows loaded" in steps[f"ingest {export}"]


def project_with_clock(folder: Path, now: datetime) -> Path:
    """A copy of the dbt project whose dbt_project.yml fixes the instant the views take for now."""
    for part in ("models", "macros", "tests/dbt"):
        shutil.copytree(REPO / part, folder / part)
    shutil.copy(REPO / "profiles.yml", folder)
    settings = (REPO / "dbt_project.yml").read_text()
    pinned = settings.replace("  reporting_now: null\n", f"  reporting_now: '{reporting_now(now)}'\n")
    assert pinned != settings, "dbt_project.yml no longer sets reporting_now: null"
    (folder / "dbt_project.yml").write_text(pinned)
    return folder


def _nightly_from(
    export: Path, database: Database, home: Path, project: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """`autopicker nightly --source EXPORT --no-report` into ``database``, as cron runs it."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database.url,
        "AUTOPICKER_HOME": str(home),
        "AUTOPICKER_PROJECT_DIR": str(project),
    }
    return subprocess.run(
        [*AUTOPICKER, "nightly", "--source", str(export), "--no-report"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
    )
