"""Files appear whole or not at all: write to a unique temporary sibling, then rename over the target."""
from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(out_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `out_path`; on success it replaces `out_path`, on error it is removed.

    The name is unique per call, so concurrent writers never share a temporary file; readers see
    the old file or the new one, never a torn one, even after a kill -9.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(out_path)
    try:
        yield tmp
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_new_path(out_path: str | os.PathLike) -> Iterator[Path]:
    """As atomic_path, but `out_path` must be new: FileExistsError if it exists before the write or
    by the time the file is complete (another process made it meanwhile); an existing file is never touched."""
    out_path = Path(out_path)
    if out_path.exists():
        raise FileExistsError(errno.EEXIST, "already exists", str(out_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(out_path)
    try:
        yield tmp
        _publish_new(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)


def _tmp_sibling(out_path: Path) -> Path:
    return out_path.with_name(f".{out_path.name}.tmp-{uuid.uuid4().hex[:8]}")


def _publish_new(tmp: Path, out_path: Path) -> None:
    try:
        os.link(tmp, out_path)  # atomic and exclusive: fails if out_path exists; tmp is removed after
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename (a narrow race remains)
        if out_path.exists():
            raise FileExistsError(errno.EEXIST, "already exists", str(out_path)) from None
        os.replace(tmp, out_path)
