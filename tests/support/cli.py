"""Running the ``autopicker`` command line in a child process, as a user or cron would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The command line, started the way the console script starts it (with this interpreter).
AUTOPICKER = [sys.executable, "-m", "autopicker"]


#: How long a child process may take before a test calls it hung. Generous on purpose: a command that needs
#: ten seconds of CPU takes minutes while other jobs keep both cores busy, and the suite must pass there too.
HANG_TIMEOUT = 600.0


def run_cli(
    *args: str, env: dict[str, str], timeout: float = HANG_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``autopicker ARGS`` from the repository root and wait for it."""
    return subprocess.run(
        [*AUTOPICKER, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout
    )
