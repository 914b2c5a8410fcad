"""``npc-voice persona ...``: tools for designers who write persona files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from npc_voice.persona.loader import PersonaError, load_persona


@click.group()
def persona() -> None:
    """Check, hear and try out persona files."""


@persona.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate persona files; every problem is reported as file:line: problem."""
    failed = 0
    for path in paths:
        try:
            p = load_persona(path)
        except PersonaError as exc:
            failed += 1
            click.echo(str(exc), err=True)
            continue
        click.echo(f"{path}: ok ({p.name}, {len(p.topics)} topics)")
    sys.exit(1 if failed else 0)
