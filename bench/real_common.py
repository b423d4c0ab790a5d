"""What the real-data converters share: the files they write (PYSKL pickle, layout JSON, split JSON)
and the seen/unseen partitions.

A converted set is three files in a work folder: <name>.pkl (PYSKL: split lists + annotations),
<name>_layout.json (the skeleton layout: joints in data order, bones, parts, centre, torso) and
<name>_split.json (classes with descriptions, the PYSKL split keys for train and test, and the
unseen partitions), as `posebridge train --split-file` reads them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posebridge.cache.atomic import atomic_path
from posebridge.cache.pyskl import write_pyskl


@dataclass
class RealSet:
    name: str
    pyskl: Path
    layout: Path
    split_file: Path
    classes: list[dict]            # [{"name", "descriptions"}], label order
    train_key: str
    test_key: str
    partitions: list[list[str]]    # unseen class names per partition


def random_partitions(names: list[str], unseen: int, count: int, seed: int) -> list[list[str]]:
    """`count` unseen sets of `unseen` class names, drawn once from one seeded generator (label order
    kept inside each set); the same for every row of the bench."""
    rng = np.random.default_rng(seed)
    return [[names[i] for i in sorted(rng.choice(len(names), size=unseen, replace=False))] for _ in range(count)]


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def write_set(work: Path, name: str, annotations: list[dict], split: dict[str, list[str]], layout: dict,
              classes: list[dict], train_key: str, test_key: str, unseen: int, count: int, seed: int) -> RealSet:
    """Write the three files of a converted set into `work` (replacing earlier ones)."""
    work.mkdir(parents=True, exist_ok=True)
    pyskl, layout_path, split_path = work / f"{name}.pkl", work / f"{name}_layout.json", work / f"{name}_split.json"
    write_pyskl(pyskl, annotations, split, replace=True)
    write_json(layout_path, layout)
    partitions = random_partitions([c["name"] for c in classes], unseen, count, seed)
    write_json(split_path, {"name": name, "skeleton": layout_path.name, "classes": classes, "train": train_key,
                            "test": test_key, "partitions": partitions})
    return RealSet(name, pyskl, layout_path, split_path, classes, train_key, test_key, partitions)
