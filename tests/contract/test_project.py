"""The project's own promises about itself: docs whose links resolve, a short README, declared imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.cli import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PACKAGES = ("autopicker", "ingest", "router")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings (outside code blocks)."""
    anchors, in_code = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_every_link_in_the_docs_resolves(page: Path) -> None:
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or (anchor and target.suffix == ".md" and anchor not in _anchors(target)):
            broken.append(link)
    assert broken == []


def test_the_readme_is_a_front_door() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text


def _third_party_imports() -> dict[str, str]:
    """Top-level names of every module the packages import that is not theirs nor the standard library's,
    with one file importing it."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in PACKAGES and top not in sys.stdlib_module_names:
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_imported_package_is_a_declared_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    # An optional extra's packages count (the code imports them only where the extra is needed), dev's not.
    extras = [r for extra, rs in project["optional-dependencies"].items() if extra != "dev" for r in rs]
    declared = {Requirement(r).name.lower().replace("_", "-") for r in [*project["dependencies"], *extras]}
    distributions = packages_distributions()
    undeclared = {
        name: where
        for name, where in _third_party_imports().items()
        if not {d.lower().replace("_", "-") for d in distributions.get(name, [name])} & declared
    }
    assert undeclared == {}


#: Packages a command imports only when it needs them: the API client's, the SDKs', Arrow's, dbt's.
LAZY_PACKAGES = (
    "httpx",
    "pydantic",
    "tenacity",
    "langfuse",
    "openai",
    "pyarrow",
    "dbt",
    "opentelemetry",
    "redis",
)


def test_the_command_line_starts_without_the_packages_few_commands_need() -> None:
    # every command, `autopicker --help` included, pays for what the command line imports at start
    check = f"import sys, autopicker.cli.app; print([m for m in {LAZY_PACKAGES!r} if m in sys.modules])"
    started = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert started.stdout.strip() == "[]", started.stdout + started.stderr
