"""``make fuzz``: the property tests with many examples and the crash test with many kills, then one summary.

Runs pytest on the tests marked ``property`` or ``crash`` with hypothesis profile ``fuzz`` (tests/conftest.py)
and ``--hypothesis-show-statistics``, shows its output as it comes, and prints the figures last: the examples
hypothesis ran (passing, failing, invalid) over how many property tests, the crash test's kills, and
pytest's result. Exits with pytest's exit code. Extra arguments go to pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

_CASES = re.compile(r"- (\d+) passing, (\d+) failing, and (\d+) invalid test cases")
_TEST = re.compile(r"^(tests/\S+::\S+):$")
_RESULT = re.compile(r"=+ (.*\d+ (?:passed|failed|error).*) in [\d.]+s")


def main() -> int:
    env = {**os.environ, "HYPOTHESIS_PROFILE": "fuzz"}
    env.setdefault("FUZZ_EXAMPLES", "500")
    env.setdefault("CRASH_ITERATIONS", "20")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "-p",
        "no:cacheprovider",
        "-m",
        "property or crash",
        "--hypothesis-show-statistics",
        *sys.argv[1:],
    ]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line.rstrip("\n"))
    code = process.wait()
    tests, passing, failing, invalid = set(), 0, 0, 0
    current = None
    result = "no result"
    for line in lines:
        if match := _TEST.match(line):
            current = match.group(1)
        elif (match := _CASES.search(line)) and current:
            tests.add(current)
            passing += int(match.group(1))
            failing += int(match.group(2))
            invalid += int(match.group(3))
        elif match := _RESULT.search(line):
            result = match.group(1)
    minutes = (time.monotonic() - started) / 60
    print(
        f"make fuzz {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {passing + failing:,} examples over {len(tests)} "
        f"property tests ({passing:,} passing, {failing:,} failing, {invalid:,} invalid), crash test "
        f"{env['CRASH_ITERATIONS']} kills; pytest: {result}; {minutes:.1f} min"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
