"""Backends by name. Each is imported only when asked for, so a missing optional extra costs nothing."""
from __future__ import annotations

from pathlib import Path

from posebridge.stages.extract.config import ExtractConfig
from posebridge.cache.errors import UserError
from posebridge.stages.paths import models_root

from .base import PoseBackend

KNOWN_BACKENDS = ("embedded", "mmpose")


def make_backend(name: str, config: ExtractConfig, models_dir: Path | None = None,
                 num_threads: int = 2, **options) -> PoseBackend:
    """The backend called `name`, reading its model files from models_dir (default: models_root()).

    options go to backends that take them (mmpose: checkpoint=, model_config=, device=, batch_size=).
    """
    if name == "embedded":
        from .blazepose import BlazePoseBackend  # imports the TFLite runtime only when needed

        return BlazePoseBackend(config, Path(models_dir) if models_dir else models_root(), num_threads)
    if name == "mmpose":  # optional: only where the `mmpose` extra is installed (.venv-mmpose)
        try:
            from .mmpose_backend import MMPoseBackend
        except ImportError as err:
            raise UserError(f"the mmpose backend needs the `mmpose` extra ({err.name or err} is not installed "
                            f"here): run `make test-mmpose` (builds .venv-mmpose) or "
                            f"`pip install -e '.[mmpose]'` in a separate venv") from None

        return MMPoseBackend(config, Path(models_dir) if models_dir else models_root(), num_threads, **options)
    raise UserError(f"unknown pose backend {name!r}; known backends: {', '.join(KNOWN_BACKENDS)}")
