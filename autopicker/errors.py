"""Errors a user can cause.

Anything raised as :class:`UserError` ends the command with its one-sentence message and a non-zero exit
code, never a traceback. Programming errors stay ordinary exceptions so that they surface in full.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, bad configuration, a server that does not answer."""

    exit_code = 1


class UsageError(UserError):
    """The command was called the wrong way; exits with 2, as a command-line usage error does."""

    exit_code = 2
