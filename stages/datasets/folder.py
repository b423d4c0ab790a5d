"""Plain folders: unlabelled media files ("folder") or one sub-folder per class ("classfolders")."""
from __future__ import annotations

from pathlib import Path

from posebridge.stages.datasets.base import (ClipSpec, class_folders, clip_id_of, media_files,
                                               require_media_files)
from posebridge.cache.errors import UserError


def scan_folder(videos_dir: Path) -> list[ClipSpec]:
    return [ClipSpec(path=p, clip_id=clip_id_of(p, videos_dir)) for p in require_media_files(videos_dir)]


def scan_classfolders(videos_dir: Path) -> list[ClipSpec]:
    """<dir>/<class name>/**/<video>: label = index of the class folder in sorted name order."""
    folders = class_folders(videos_dir)
    if folders is None:
        raise UserError(f"{videos_dir} is not a class-folder dataset: it holds files next to folders; "
                        f"put every video in a <class name>/ sub-folder")
    specs = []
    for label, folder in enumerate(folders):
        for path in media_files(folder):
            specs.append(ClipSpec(path=path, clip_id=clip_id_of(path, videos_dir), label=label,
                                  label_name=folder.name))
    if not specs:
        raise UserError(f"no video or image files in the class folders of {videos_dir}")
    return sorted(specs, key=lambda s: s.clip_id)
