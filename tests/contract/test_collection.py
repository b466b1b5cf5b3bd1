"""Test ids are the same in every collection.

pytest-xdist collects the suite once per worker and refuses to run when the workers disagree ("Different tests
were collected between gw0 and gw1"), so an id built from a time, random bytes or a set's hash order (a
gzip header's mtime in a parametrize value, once) fails `make test` at random. Two collections, one after the
other and with different hash seeds, must list the same ids in the same order.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.cli import REPO


def _collected_ids(hash_seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_two_collections_give_the_same_ids_in_the_same_order() -> None:
    first = _collected_ids("1")
    second = _collected_ids("2")
    assert len(first) > 400
    assert first == second
