"""Seen/unseen class splits of published zero-shot skeleton action recognition work.

Each split names its dataset, the class list in the dataset's label order, sorted 0-based seen and
unseen indices, the evaluation protocol, and the upstream files it was read from. The index
lists ship with the package under data/; data/SOURCES.md attributes each file and says which
upstream sources agree on which list. Splits that are not upstream data (the synthetic benchmark's)
ship as ordinary split files under data/split_files/, one per name, read like a user's.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.stages.splits import kinetics200
from posebridge.stages.splits.data_files import (
    K400_CLASSES,
    NTU60_CLASSES,
    NTU120_CLASSES,
    PKUMMD_CLASSES,
    PURLS_SPLITS,
    data_path,
    read_code_splits,
    read_index_array,
    read_lines,
)
from posebridge.stages.splits.spec import ClassInfo, Split, SplitSpec, build_spec
from posebridge.stages.splits.split_file import parse_split

__all__ = ["PUBLISHED_DATASETS", "SHIPPED_SPLIT_FILES", "SPLIT_NAMES", "Split", "get_split", "get_split_spec", "list_splits"]


# Published as PURLS ru<unseen>.npy / rs<seen>.npy files: name -> (dataset, number unseen).
_PURLS = {
    "ntu60_55_5": ("ntu60", 5),
    "ntu60_48_12": ("ntu60", 12),
    "ntu60_40_20": ("ntu60", 20),
    "ntu60_30_30": ("ntu60", 30),
    "ntu120_110_10": ("ntu120", 10),
    "ntu120_96_24": ("ntu120", 24),
    "ntu120_80_40": ("ntu120", 40),
    "ntu120_60_60": ("ntu120", 60),
    "kinetics200_180_20": ("kinetics200", 20),
    "kinetics200_160_40": ("kinetics200", 40),
    "kinetics200_140_60": ("kinetics200", 60),
    "kinetics200_120_80": ("kinetics200", 80),
    "kinetics400_360_40": ("kinetics400", 40),
    "kinetics400_320_80": ("kinetics400", 80),
    "kinetics400_300_100": ("kinetics400", 100),
    "kinetics400_280_120": ("kinetics400", 120),
}
# Written only in upstream code (STAR/STAR++, SMIE); index lists in data/code_splits.json.
_CODE = (
    "pkummd_46_5",
    "pkummd_39_12",
    "ntu60_55_5_smie_split1",
    "ntu60_55_5_smie_split2",
    "ntu60_55_5_smie_split3",
    "ntu120_110_10_smie_split4",
    "ntu120_110_10_smie_split5",
    "ntu120_110_10_smie_split6",
    "pkummd_46_5_smie_split8",
    "pkummd_46_5_smie_split9",
    "pkummd_46_5_star_ablation3",
)
# Split files shipped with the package (data/split_files/<name>.json): the synthetic benchmark's,
# written by stages/extract/synthetic.py. A file's "name" field must equal its stem (tested).
SPLIT_FILES_DIR = "split_files"
SHIPPED_SPLIT_FILES: tuple[str, ...] = ("synthetic_zsl",)
SPLIT_NAMES: tuple[str, ...] = (*_PURLS, *_CODE, *SHIPPED_SPLIT_FILES)

_N_CLASSES = {"ntu60": 60, "ntu120": 120, "pkummd": 51, "kinetics200": 200, "kinetics400": 400}
PUBLISHED_DATASETS: tuple[str, ...] = tuple(_N_CLASSES)  # the data sets of the published splits
_PROTOCOL = {"ntu60": "ntu_xsub", "ntu120": "ntu_xsub", "pkummd": "pku_xsub",
             "kinetics200": "kinetics", "kinetics400": "kinetics"}
_PURLS_FOLDER = {"ntu60": "ntu60", "ntu120": "ntu120", "kinetics200": "kinetic200", "kinetics400": "kinetic400"}
_CLASS_FILES = {"ntu60": NTU60_CLASSES, "ntu120": NTU120_CLASSES, "pkummd": PKUMMD_CLASSES,
                "kinetics400": K400_CLASSES}
K400_ASSUMPTION = (
    "Kinetics-400 indices are assumed to follow the alphabetical Kinetics-400 order of "
    "label_map_k400.txt (PURLS publishes no Kinetics code; likely but unconfirmed)."
)


@dataclass(frozen=True)
class _Indices:
    dataset: str
    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    source: str


def _purls_indices(name: str) -> _Indices:
    dataset, n_unseen = _PURLS[name]
    n_seen = _N_CLASSES[dataset] - n_unseen
    folder = f"{PURLS_SPLITS}/{_PURLS_FOLDER[dataset]}"
    unseen = read_index_array(f"{folder}/ru{n_unseen}.npy")
    seen = read_index_array(f"{folder}/rs{n_seen}.npy")
    if set(seen) & set(unseen) or set(seen) | set(unseen) != set(range(_N_CLASSES[dataset])):
        raise ValueError(f"packaged split files for {name} do not partition the classes; reinstall posebridge")
    return _Indices(dataset, seen, unseen, f"{folder}/ru{n_unseen}.npy + rs{n_seen}.npy (azzh1/PURLS)")


def _code_indices(name: str) -> _Indices:
    entry = read_code_splits()[name]
    unseen = tuple(sorted(entry["unseen"]))
    seen = tuple(sorted(set(range(entry["num_classes"])) - set(unseen)))
    return _Indices(entry["dataset"], seen, unseen, f"code_splits.json: {entry['source']}")


def _indices(name: str) -> _Indices:
    return _purls_indices(name) if name in _PURLS else _code_indices(name)


def _canonical_name(name: str) -> str:
    key = name.strip().lower()
    if key in SPLIT_NAMES:
        return key
    close = difflib.get_close_matches(key, SPLIT_NAMES, n=4, cutoff=0.6)
    if close:
        raise UserError(f"unknown split '{name}'; did you mean: {', '.join(close)}? (`posebridge splits` lists them)")
    raise UserError(f"unknown split '{name}'; `posebridge splits` lists the known names")


def _shipped_spec(name: str) -> SplitSpec:
    """A split file shipped with the package, read by the code that reads a user's."""
    path = data_path(f"{SPLIT_FILES_DIR}/{name}.json")
    return parse_split(json.loads(path.read_text(encoding="utf-8")), where=str(path), base_dir=path.parent,
                       source=f"{path.name} (shipped split file)")


def get_split(name: str, *, kinetics200_classes: Path | str | None = None,
              guess_kinetics200: bool = False) -> Split:
    """The split called `name`. Kinetics-200 needs the user's class-list file (or the opt-in guess)."""
    return get_split_spec(name, kinetics200_classes=kinetics200_classes, guess_kinetics200=guess_kinetics200).split(0)


def get_split_spec(name: str, *, kinetics200_classes: Path | str | None = None,
                   guess_kinetics200: bool = False) -> SplitSpec:
    """The published split `name` as a one-partition SplitSpec (what a split file also becomes)."""
    name = _canonical_name(name)
    if name in SHIPPED_SPLIT_FILES:
        return _shipped_spec(name)
    idx = _indices(name)
    source, assumption = idx.source, None
    if idx.dataset == "kinetics200":
        if kinetics200_classes is not None and guess_kinetics200:
            raise UserError("pass either --kinetics200-classes FILE or --guess-kinetics200, not both")
        if kinetics200_classes is not None:
            path = Path(kinetics200_classes).expanduser()
            class_names = kinetics200.read_kinetics200_classes(path)
            source = f"{source}; {kinetics200.describe_user_file(path)}"
        elif guess_kinetics200:
            class_names = kinetics200.guessed_kinetics200_classes()
            source = f"{source}; class names: first 200 of {K400_CLASSES} (guess)"
            assumption = kinetics200.GUESS_ASSUMPTION
        else:
            raise UserError(kinetics200.MISSING_LIST.format(split=name))
    else:
        class_names = read_lines(_CLASS_FILES[idx.dataset])
        source = f"{source}; class names: {_CLASS_FILES[idx.dataset]}"
        if idx.dataset == "kinetics400":
            assumption = K400_ASSUMPTION
    if set(idx.seen) | set(idx.unseen) != set(range(len(class_names))):
        raise ValueError(f"packaged split files for {name} do not cover its {len(class_names)} classes; reinstall posebridge")
    return build_spec(name=name, dataset=idx.dataset, classes=[ClassInfo(n) for n in class_names],
                      partitions=[idx.unseen], protocol=_PROTOCOL[idx.dataset], source=source, assumption=assumption)


def list_splits() -> list[dict]:
    """One row per split for `posebridge splits`: name, dataset, n_seen, n_unseen, source, status."""
    rows = []
    for name in SPLIT_NAMES:
        if name in SHIPPED_SPLIT_FILES:
            rows.append(_shipped_row(name))
            continue
        idx = _indices(name)
        status = "needs --kinetics200-classes" if idx.dataset == "kinetics200" else "ready"
        rows.append({"name": name, "dataset": idx.dataset, "n_seen": len(idx.seen),
                     "n_unseen": len(idx.unseen), "source": idx.source, "status": status})
    return rows


def _shipped_row(name: str) -> dict:
    split = _shipped_spec(name).split(0)
    return {"name": name, "dataset": split.dataset, "n_seen": len(split.seen),
            "n_unseen": len(split.unseen), "source": split.source, "status": "ready"}
