"""A user's Kinetics-200 class list (--kinetics200-classes FILE), which wins over the default one.

PURLS' kinetic200 split files index a 200-class subset of Kinetics-400 that PURLS never names. The
registry's default (data/datasets.json, kinetics200) is the first 200 classes of the Kinetics-400
label list, the reading the evidence supports; a user who knows better gives a text file with one
Kinetics-400 class name per line, 200 lines, in Kinetics-200 label order.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256
from posebridge.stages.splits.data_files import K400_CLASSES, read_lines

N_CLASSES = 200


def read_kinetics200_classes(path: Path) -> tuple[str, ...]:
    """Validated class names from the user's file, spelled as in label_map_k400.txt."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; pass a text file with the 200 Kinetics-200 class names")
    k400 = {name.lower(): name for name in read_lines(K400_CLASSES)}
    names: list[str] = []
    seen_at: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = raw.strip()
        if not entry:
            continue
        canonical = k400.get(entry.lower())
        if canonical is None:
            close = difflib.get_close_matches(entry.lower(), k400, n=1)
            hint = f"; did you mean '{k400[close[0]]}'?" if close else ""
            raise UserError(
                f"{path}:{lineno}: '{entry}' is not a Kinetics-400 class name "
                f"(see label_map_k400.txt){hint}"
            )
        if canonical in seen_at:
            raise UserError(f"{path}:{lineno}: '{entry}' repeats line {seen_at[canonical]}; each class once")
        seen_at[canonical] = lineno
        names.append(canonical)
    if len(names) != N_CLASSES:
        raise UserError(f"{path}: has {len(names)} class names, Kinetics-200 needs exactly {N_CLASSES}")
    return tuple(names)


def describe_user_file(path: Path) -> str:
    """Names the file by its base name and content hash, not its location, so moving it changes nothing."""
    return f"user file {path.name} (sha256 {file_sha256(path)[:12]})"
