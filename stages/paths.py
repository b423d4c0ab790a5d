"""Where things live, from any working directory.

Models (the two pinned BlazePose TFLite files), in this order:
  1. --models-dir
  2. $POSEBRIDGE_MODELS
  3. the clone's assets/models, when posebridge runs from a clone (an editable install: found
     next to the package source, not the current directory); used when it exists
  4. the per-user folder $XDG_CACHE_HOME/posebridge/models (default ~/.cache/posebridge/models),
     filled by `posebridge setup` (or `make setup`)
An explicit choice (1, 2) is used as given; otherwise the first of 3, 4 that exists.

Cache and runs (data a run writes):
  --cache-dir / --runs-dir, else $POSEBRIDGE_CACHE / $POSEBRIDGE_RUNS, else in a clone its
  outputs/cache and outputs/runs (whatever the current directory), else ./outputs/cache and
  ./outputs/runs under the current directory (an installed wheel has no clone to write into).
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE = Path("outputs/cache")  # relative to the clone, else to the current directory
DEFAULT_RUNS = Path("outputs/runs")
DEFAULT_MODELS = Path("assets/models")  # relative to the clone


def source_checkout() -> Path | None:
    """The clone the package is imported from (editable install), None for an installed wheel."""
    root = Path(__file__).resolve().parents[1]  # <clone>/stages/paths.py
    if (root / "pyproject.toml").is_file() and (root / "stages" / "paths.py").is_file():
        return root
    return None


def user_dir() -> Path:
    """$XDG_CACHE_HOME/posebridge, default ~/.cache/posebridge."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "posebridge"


def user_models_dir() -> Path:
    return user_dir() / "models"


def _data_default(relative: Path) -> Path:
    clone = source_checkout()
    return clone / relative if clone is not None else relative


def _root(option: str | os.PathLike | None, env: str, default: Path) -> Path:
    if option:
        return Path(option).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return default


def cache_root(option: str | os.PathLike | None = None) -> Path:
    """--cache-dir, else $POSEBRIDGE_CACHE, else the clone's outputs/cache, else ./outputs/cache."""
    return _root(option, "POSEBRIDGE_CACHE", _data_default(DEFAULT_CACHE))


def runs_root(option: str | os.PathLike | None = None) -> Path:
    """--runs-dir, else $POSEBRIDGE_RUNS, else the clone's outputs/runs, else ./outputs/runs."""
    return _root(option, "POSEBRIDGE_RUNS", _data_default(DEFAULT_RUNS))


def models_candidates(option: str | os.PathLike | None = None) -> list[tuple[str, Path | None]]:
    """Every place models are looked for, in order, as (what it is, path or None when not set)."""
    clone = source_checkout()
    return [
        ("--models-dir", Path(option).expanduser() if option else None),
        ("$POSEBRIDGE_MODELS", Path(os.environ["POSEBRIDGE_MODELS"]).expanduser()
         if os.environ.get("POSEBRIDGE_MODELS") else None),
        ("the clone's assets/models", clone / DEFAULT_MODELS if clone is not None else None),
        ("the per-user folder", user_models_dir()),
    ]


def models_root(option: str | os.PathLike | None = None) -> Path:
    """--models-dir, else $POSEBRIDGE_MODELS, else the clone's assets/models if it exists, else the
    per-user folder (filled by `posebridge setup`)."""
    candidates = models_candidates(option)
    for _, path in candidates[:2]:
        if path is not None:
            return path
    for _, path in candidates[2:]:
        if path is not None and path.is_dir():
            return path
    return candidates[-1][1]


def models_search_text(chosen: str | os.PathLike | None = None) -> str:
    """Every place models are looked for, for a missing-model error; `chosen` is the folder used
    (a folder none of the defaults name came from --models-dir)."""
    candidates = models_candidates(None)
    known = [path for _, path in candidates if path is not None]
    if chosen is not None and Path(chosen).expanduser() not in known:
        candidates[0] = ("--models-dir", Path(chosen).expanduser())
    unset = {"--models-dir": "not given", "$POSEBRIDGE_MODELS": "not set", "the clone's assets/models": "not a clone"}
    return "; ".join(f"{what} ({path if path is not None else unset[what]})" for what, path in candidates)
