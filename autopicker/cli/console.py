"""Where commands print: a rich console the width of the terminal, or wide lines in pipes and logs.

Rich assumes 80 columns when output is not a terminal, which cuts model names and file keys in tables;
a cron mail or a journal has no width to respect, so there lines are as long as the table needs. Messages
on stderr are never wrapped.

A reader that goes away (``autopicker show | head -1``) is not an error: the rest of the output is
discarded, the command finishes its work and exits with the code that work earned (docs/cli.md).
"""

from __future__ import annotations

import os

from rich.console import Console

LOG_WIDTH = 200


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich's default exits with 1 and no message; a closed pipe only means nobody reads the rest.
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.file.fileno())
        os.close(devnull)


def output_console(stderr: bool = False) -> Console:
    """A console for a command's output (``stderr`` for messages: sentences, never cut into lines, so an
    error naming a long path stays one line in a log and whole for whoever searches it)."""
    console = _Console(stderr=stderr, soft_wrap=stderr)
    return console if console.is_terminal else _Console(stderr=stderr, width=LOG_WIDTH, soft_wrap=stderr)
