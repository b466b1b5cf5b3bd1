"""What a dbt run's results say, as the warehouse tests check them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The statuses of a green build, per kind of node: every model built, every test and unit test passed.
GREEN_BUILD = {
    "operation": {"success"},  # the on-run-start hook (it creates the source on Spark only)
    "model": {"success"},
    "unit_test": {"pass"},
    "test": {"pass"},
    "exposure": {"no-op"},
}


def statuses_by_kind(results: Mapping[str, tuple[Any, ...]]) -> dict[str, set[str]]:
    """The statuses of each kind of node (``model``, ``test``... from the unique id), the alerts left out:
    they are tests that warn by design when the data crosses their thresholds."""
    kinds: dict[str, set[str]] = {}
    for uid, (status, *_) in results.items():
        if not uid.startswith("test.autopicker.alert_"):
            kinds.setdefault(uid.split(".")[0], set()).add(status)
    return kinds
