"""The `posebridge` command line: a thin typer layer over plain functions."""
from __future__ import annotations

import sys

import typer

from posebridge.pipeline.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="PoseBridge: pose-anchored cue caching (stage 1) and zero-shot heads (stage 2).")


def main() -> None:
    try:
        app()
    except UserError as err:  # user mistakes: one line, exit 1, no traceback
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
