"""Where things live. Everything a run writes goes under git-ignored folders.

Precedence for each root: the command-line option, then the environment variable, then the
default under the current directory.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE = Path("outputs/cache")
DEFAULT_RUNS = Path("outputs/runs")
DEFAULT_MODELS = Path("assets/models")


def _root(option: str | os.PathLike | None, env: str, default: Path) -> Path:
    if option:
        return Path(option).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return default


def cache_root(option: str | os.PathLike | None = None) -> Path:
    """--cache-dir, else $POSEBRIDGE_CACHE, else ./outputs/cache."""
    return _root(option, "POSEBRIDGE_CACHE", DEFAULT_CACHE)


def runs_root(option: str | os.PathLike | None = None) -> Path:
    """--runs-dir, else $POSEBRIDGE_RUNS, else ./outputs/runs."""
    return _root(option, "POSEBRIDGE_RUNS", DEFAULT_RUNS)


def models_root(option: str | os.PathLike | None = None) -> Path:
    """--models-dir, else $POSEBRIDGE_MODELS, else ./assets/models (filled by `make models`)."""
    return _root(option, "POSEBRIDGE_MODELS", DEFAULT_MODELS)
