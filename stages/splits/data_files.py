"""Readers for the upstream data files copied into stages/splits/data (see data/SOURCES.md).

Every path below is the file's path in its upstream repository, under data/<repo>/, so a file
can be checked against its source by eye.
"""
from __future__ import annotations

import csv
import json
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

NTU60_CLASSES = "mmaction2/tools/data/skeleton/label_map_ntu60.txt"
NTU120_CLASSES = "pyskl/tools/data/label_map/nturgbd_120.txt"
PKUMMD_CLASSES = "pgfa/descriptions/pku_labelmap.txt"
K400_CLASSES = "mmaction2/tools/data/kinetics/label_map_k400.txt"
PURLS_SPLITS = "purls/supplements/label_splits"
CODE_SPLITS = "code_splits.json"


def data_path(relative: str) -> Path:
    """Absolute path of a packaged data file; works from a checkout and from an installed wheel."""
    path = Path(str(resources.files("posebridge.stages.splits") / "data" / relative))
    if not path.is_file():
        raise FileNotFoundError(f"packaged data file missing: {path} (reinstall posebridge)")
    return path


@cache
def read_lines(relative: str) -> tuple[str, ...]:
    """One entry per line; CRLF files (SMIE, PGFA) and a missing final newline both read cleanly."""
    text = data_path(relative).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@cache
def read_index_array(relative: str) -> tuple[int, ...]:
    """A PURLS ru*/rs*.npy class-index list, sorted (the files are stored unsorted)."""
    return tuple(sorted(int(i) for i in np.load(data_path(relative))))


@cache
def read_code_splits() -> dict[str, dict]:
    return json.loads(data_path(CODE_SPLITS).read_text(encoding="utf-8"))["splits"]


@cache
def read_purls_sheet(relative: str) -> tuple[dict[str, str], ...]:
    """Rows of a PURLS gpt3_desc sheet (saved as CSV): keys are the header, e.g. 'Head', 'Global Desc'."""
    with data_path(relative).open(encoding="utf-8", newline="") as f:
        return tuple(dict(row) for row in csv.DictReader(f))
