"""The screenshots of docs/report.md: each dashboard of a written report, as Chromium draws it.

``make docs-images`` runs ``autopicker demo`` (which writes the report of the demo's warehouse) and then this
module, so the pictures in the docs always come from the page the project writes today::

    python -m tests.support.screenshots .autopicker/report/index.html docs/images
"""

from __future__ import annotations

import sys
from pathlib import Path

from autopicker.report.page import DASHBOARDS
from tests.support.browser import chromium, open_file


def shoot(index: Path, out: Path) -> list[Path]:
    """One PNG per dashboard of the report at ``index``, written into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium() as browser, open_file(browser, index) as page:
        assert not page.outside and not page.errors, (page.outside, page.errors)
        for key, title, _ in DASHBOARDS:
            path = out / f"report-{title.lower().replace(' ', '-')}.png"
            page.page.locator(f"section[data-dashboard={key}]").screenshot(path=str(path))
            written.append(path)
    return written


if __name__ == "__main__":
    for path in shoot(Path(sys.argv[1]).resolve(), Path(sys.argv[2])):
        print(path)
