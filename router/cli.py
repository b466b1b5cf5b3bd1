"""The router's commands for the ``autopicker`` command line (``simulate``, ``chat``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the router's commands to the main ``autopicker`` app."""
