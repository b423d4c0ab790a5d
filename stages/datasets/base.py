"""What every dataset adapter returns (`ClipSpec`) and how media files are found under a root."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from posebridge.cache.errors import UserError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES


@dataclass
class ClipSpec:
    path: Path
    clip_id: str  # stable: the path relative to the videos root, POSIX style
    label: int = -1
    label_name: str | None = None
    meta: dict = field(default_factory=dict)


def require_videos_dir(videos_dir: Path) -> Path:
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise UserError(f"videos directory {videos_dir} does not exist; pass the folder that holds the videos")
    return videos_dir


def media_files(videos_dir: Path) -> list[Path]:
    """Media files under `videos_dir` by extension (not content: the extractor reports unreadable
    ones), sorted; hidden files and folders are skipped, symlinked folders followed."""
    found = []
    for folder, subdirs, names in os.walk(videos_dir, followlinks=True):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        found.extend(Path(folder, n) for n in names
                     if not n.startswith(".") and Path(n).suffix.lower() in MEDIA_SUFFIXES)
    return sorted(found, key=lambda p: clip_id_of(p, videos_dir))


def require_media_files(videos_dir: Path) -> list[Path]:
    files = media_files(videos_dir)
    if not files:
        raise UserError(f"no video or image files under {videos_dir}; expected e.g. .mp4/.avi/.mkv/.jpg "
                        f"files (hidden files are ignored)")
    return files


def clip_id_of(path: Path, videos_dir: Path) -> str:
    return path.relative_to(videos_dir).as_posix()


def class_folders(videos_dir: Path) -> list[Path] | None:
    """The visible entries of `videos_dir` if every one of them is a folder, else None."""
    entries = [e for e in videos_dir.iterdir() if not e.name.startswith(".")]
    if entries and all(e.is_dir() for e in entries):
        return sorted(entries, key=lambda e: e.name)
    return None
