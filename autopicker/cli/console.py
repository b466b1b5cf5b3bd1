"""Where commands print: a rich console the width of the terminal, or wide lines in pipes and logs.

Rich assumes 80 columns when output is not a terminal, which cuts model names and file keys in tables;
a cron mail or a journal has no width to respect, so there lines are as long as the table needs.
"""

from __future__ import annotations

from rich.console import Console

LOG_WIDTH = 200


def output_console(stderr: bool = False) -> Console:
    """A console for a command's output (``stderr`` for messages)."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=LOG_WIDTH)
