"""Public skeleton releases -> one PYSKL pickle each: `posebridge import FORMAT SRC --out FILE.pkl`.

One module per format, each ending in FORMAT = SkeletonFormat(...) (what it owes: importer.py),
and one driver (importer.import_skeletons) that reads, skips and reports bad files, picks the sides
and writes through cache/pyskl.py. Adding a format is a module and a line in FORMATS.
"""
from __future__ import annotations

from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.stages.datasets.skeleton_formats import kinetics_skeleton, ntu, nwucla, pkummd, utdmhad
from posebridge.stages.datasets.skeleton_formats.importer import ImportReport, SkeletonFormat, import_skeletons

FORMATS: dict[str, SkeletonFormat] = {
    fmt.name: fmt for fmt in (ntu.FORMAT, nwucla.FORMAT, utdmhad.FORMAT, pkummd.FORMAT, kinetics_skeleton.FORMAT)}


def skeleton_format(name: str) -> SkeletonFormat:
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[name]


def import_release(name: str, src: str | Path, out: str | Path, **options) -> ImportReport:
    """import_skeletons with the format named `name`; options as the command line gives them (None: not given)."""
    return import_skeletons(skeleton_format(name), src, out, **options)
