"""Walking folders that other processes write while we look.

A store is written by many processes at once: parts are built in `.tmp-*` folders and renamed in,
`cache compact` renames parts away and deletes them, claims come and go. Any entry listed by one
call may be gone (or renamed) by the next. Every walk over a store goes through these helpers:
an entry that vanishes between listing and looking is skipped, a folder that vanishes is empty,
and each file's size is read from the file at the moment it is counted (never from a listing made
earlier), so nothing here raises FileNotFoundError / NotADirectoryError because of a concurrent writer.
"""
from __future__ import annotations

import os
from pathlib import Path

# What a concurrent rename or delete makes os calls raise for a path that was there a moment ago.
VANISHED = (FileNotFoundError, NotADirectoryError)


def list_entries(folder: str | os.PathLike) -> list[os.DirEntry]:
    """The folder's entries now; [] if the folder is gone (or was replaced by a file)."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except VANISHED:
        return []


def _is_dir(entry: os.DirEntry) -> bool | None:
    """True/False (a link to a folder is a folder: a dataset folder may be linked in), or None when
    the entry vanished meanwhile."""
    try:
        return entry.is_dir()
    except VANISHED:
        return None


def subdirs(folder: str | os.PathLike, prefix: str = "", hidden: bool = True) -> list[Path]:
    """Sub-folders of `folder` whose names start with `prefix`, sorted; vanished ones left out.
    hidden=False leaves out names starting with '.' (tmp folders)."""
    out = []
    for entry in list_entries(folder):
        if not entry.name.startswith(prefix) or (not hidden and entry.name.startswith(".")):
            continue
        if _is_dir(entry):
            out.append(Path(entry.path))
    return sorted(out)


def file_size(path: str | os.PathLike) -> int:
    """The size of a file now; 0 if it vanished."""
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except VANISHED:
        return 0


def mtime(path: str | os.PathLike) -> float | None:
    """The modification time now; None if it vanished."""
    try:
        return os.stat(path, follow_symlinks=False).st_mtime
    except VANISHED:
        return None


def dir_bytes(path: str | os.PathLike) -> int:
    """Bytes of the regular files under `path` (0 if it is gone); entries that vanish during the
    walk are skipped, folders renamed in during the walk are counted if listed in time."""
    total, stack = 0, [os.fspath(path)]
    while stack:
        for entry in list_entries(stack.pop()):
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += os.stat(entry.path, follow_symlinks=False).st_size  # read now, not from the listing
            except VANISHED:
                continue
    return total
