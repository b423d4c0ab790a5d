"""Files appear whole or not at all: write to a unique temporary sibling, then rename over the target."""
from __future__ import annotations

import contextlib
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
    tmp = out_path.with_name(f".{out_path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
