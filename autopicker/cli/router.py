"""The router's commands for the ``autopicker`` command line: ``simulate`` and ``chat``.

``simulate`` replays days of simulated traffic through the router and the real Langfuse SDK into an offline
export folder (what ``make demo`` ingests). ``chat`` sends one real request through the OpenAI-compatible
provider and says which model served it and why. Errors a user can cause end in one sentence and exit
code 1.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from autopicker.cli.console import output_console
from autopicker.errors import UserError

logger = logging.getLogger(__name__)

console = output_console()
KEY_ENVS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "ANTHROPIC_API_KEY")


def _default_out() -> Path:
    from ingest.db import home_dir

    return home_dir() / "simulated-export"


def simulate_command(
    requests: Annotated[
        int, typer.Option("--requests", "-n", min=1, help="How many requests to simulate.")
    ] = 2_000,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the workload and the simulated providers.")
    ] = 42,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Export folder (default: simulated-export in the local state folder)."),
    ] = None,
    days: Annotated[
        float, typer.Option("--days", min=0.01, help="Spread the requests over the last D days.")
    ] = 7.0,
    project: Annotated[
        str, typer.Option("--project", help="Langfuse project id written in the export.")
    ] = "autopicker",
) -> None:
    """Simulate router traffic (both kinds of fallback, some failures) into a Langfuse export folder."""
    from router.simulate import simulate

    target = out or _default_out()
    if "/" in project or not project:
        raise UserError(f"--project must be a name without '/', not {project!r}.")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {str(target)!r}: {exc.strerror or exc}.") from None
    with console.status(f"simulating {requests} requests over {days:g} days..."):
        try:
            summary = simulate(target, requests=requests, seed=seed, days=days, project_id=project)
        except OSError as exc:
            raise UserError(f"cannot write the export to {str(target)!r}: {exc.strerror or exc}.") from None
    stats = summary.stats
    table = Table(title="Simulated router traffic", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in (
        ("requests", stats["total_requests"]),
        ("served", stats["successful_requests"]),
        ("failed (every model exhausted)", stats["failed_requests"]),
        ("requests that fell back", f"{stats['fallback_requests']} ({stats['fallback_rate']:.2f}%)"),
        ("rate_limit_fallback events", stats["rate_limit_fallbacks"]),
        ("context_length_fallback events", stats["context_length_fallbacks"]),
        ("waits for the primary", stats["waits_for_primary"]),
        ("export runs (file + manifest)", len(summary.runs)),
        ("observation rows", summary.rows),
    ):
        table.add_row(label, str(value))
    console.print(table)
    console.print(
        f"export written to {summary.out_dir / summary.project_id}", highlight=False, soft_wrap=True
    )


def chat_command(
    message: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Candidate model, in fallback order (repeat the option); default: configured ones.",
        ),
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Most tokens to generate.")] = 512,
    system: Annotated[str | None, typer.Option("--system", help="A system prompt.")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each model.")
    ] = 60.0,
) -> None:
    """Send one request through the router to real providers and show which model served it and why."""
    from router import AllModelsFailed, AutoPickerLLM, CatalogError
    from router.catalog import Catalog
    from router.llm import DEFAULT_MODELS
    from router.openai_provider import OpenAICompatibleProvider

    try:
        catalog = Catalog.load()
    except CatalogError as exc:
        raise UserError(f"{exc}.") from None
    provider = OpenAICompatibleProvider(timeout=timeout)
    if model:
        try:
            specs = catalog.resolve(model)
        except CatalogError as exc:
            raise UserError(f"{exc}.") from None
        missing = [spec for spec in specs if not provider.configured(spec)]
        if missing:
            spec = missing[0]
            raise UserError(
                f"{spec.name} is not configured: set {spec.api_key_env or 'its api_key_env'} "
                "(or give it api_base and api_key_env in the catalog file named by AUTOPICKER_CATALOG)."
            )
        candidates = [spec.name for spec in specs]
    else:
        defaults = [name for name in DEFAULT_MODELS if name in catalog]
        others = [name for name in catalog.names if name not in defaults]
        candidates = [name for name in defaults + others if provider.configured(catalog.get(name))]
        if not candidates:
            raise UserError(
                f"no model is configured for chat: set {', '.join(KEY_ENVS[:-1])} or {KEY_ENVS[-1]} "
                "(or point AUTOPICKER_CATALOG at a catalog file whose models have api_base and "
                "api_key_env)."
            )
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": message})
    llm = AutoPickerLLM(candidates, catalog=catalog, provider=provider)
    try:
        try:
            result = llm.complete(messages, max_tokens=max_tokens)
        except AllModelsFailed as exc:
            _print_attempts(exc.attempts)
            raise UserError(
                f"no model could answer: {len(exc.attempts)} attempts failed (see above)."
            ) from None
        console.print(result.answer, highlight=False, markup=False, soft_wrap=True)
        console.print()
        why = "" if not result.fell_back else f" (fell back from {result.requested_model})"
        console.print(
            f"served by [bold]{result.model}[/bold]{why}: {result.usage.input_tokens} input + "
            f"{result.usage.output_tokens} output tokens, ${result.cost.total:.6f}, "
            f"{result.latency:.2f} s",
            highlight=False,
        )
        _print_attempts(result.attempts)
    finally:
        llm.close()


def _print_attempts(attempts: tuple) -> None:  # type: ignore[type-arg]
    table = Table(title="attempts", title_justify="left")
    for column in ("#", "model", "outcome", "reason", "detail"):
        table.add_column(column)
    for number, attempt in enumerate(attempts, 1):
        table.add_row(str(number), attempt.model, attempt.outcome, attempt.reason or "", attempt.error or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the router's commands to the main ``autopicker`` app."""
    app.command("simulate")(simulate_command)
    app.command("chat")(chat_command)
