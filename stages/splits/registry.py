"""Seen/unseen class splits of published zero-shot skeleton action recognition work, read as data.

Three kinds of data make every published split, and no code branches on a data set's name:

- data/datasets.json (ours): each data set's class list, the sides of its protocol, its shipped
  class texts, the cue stores that serve it, how to make its data, and its PURLS cells;
- the upstream index lists under data/ (PURLS ru*/rs*.npy, data/code_splits.json for the lists
  written only in code); data/SOURCES.md attributes each file;
- split files under data/split_files/, one per name, read like a user's: the PURLS supplement's
  small sets (NW-UCLA, UTD-MHAD, UWA3D II) and the synthetic benchmark.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.stages.splits import kinetics200
from posebridge.stages.splits.data_files import (PURLS_SPLITS, data_path, read_code_splits, read_index_array,
                                                   read_lines)
from posebridge.stages.splits.spec import ClassInfo, SideRule, Split, SplitSpec, TextSource, Unplaced, build_spec
from posebridge.stages.splits.split_file import parse_split, side_rule

__all__ = ["SHIPPED_SPLIT_FILES", "SPLIT_NAMES", "Split", "get_split", "get_split_spec", "list_splits"]

DATASETS_FILE = "datasets.json"
SPLIT_FILES_DIR = "split_files"


@cache
def _data() -> dict:
    return json.loads(data_path(DATASETS_FILE).read_text(encoding="utf-8"))


def _datasets() -> dict[str, dict]:
    return _data()["datasets"]


# Published as PURLS ru<unseen>.npy / rs<seen>.npy files: name -> (dataset, number unseen).
_PURLS: dict[str, tuple[str, int]] = {name: (dataset, n) for dataset, entry in _datasets().items()
                                      for name, n in entry.get("cells", {}).items()}
# Written only in upstream code (STAR/STAR++, SMIE); index lists in data/code_splits.json.
_CODE: tuple[str, ...] = tuple(read_code_splits())
# Split files shipped with the package (data/split_files/<name>.json), in listing order. A file's
# "name" field must equal its stem (tested).
SHIPPED_SPLIT_FILES: tuple[str, ...] = tuple(_data()["split_files"])
SPLIT_NAMES: tuple[str, ...] = (*_PURLS, *_CODE, *SHIPPED_SPLIT_FILES)


@dataclass(frozen=True)
class _Indices:
    dataset: str
    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    source: str


def _purls_indices(name: str) -> _Indices:
    dataset, n_unseen = _PURLS[name]
    entry = _datasets()[dataset]
    n_classes = len(_class_names(entry))
    folder = f"{PURLS_SPLITS}/{entry['purls_folder']}"
    unseen = read_index_array(f"{folder}/ru{n_unseen}.npy")
    seen = read_index_array(f"{folder}/rs{n_classes - n_unseen}.npy")
    if set(seen) & set(unseen) or set(seen) | set(unseen) != set(range(n_classes)):
        raise ValueError(f"packaged split files for {name} do not partition the classes; reinstall posebridge")
    return _Indices(dataset, seen, unseen, f"{folder}/ru{n_unseen}.npy + rs{n_classes - n_unseen}.npy (azzh1/PURLS)")


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


# --- a data set's fields ----------------------------------------------------------------------

def _class_names(entry: dict) -> tuple[str, ...]:
    """"classes": a class-list file, or {"file": ..., "first": n}: its first n lines."""
    classes = entry["classes"]
    if isinstance(classes, str):
        return read_lines(classes)
    return read_lines(classes["file"])[: classes["first"]]


def _class_list_name(entry: dict) -> str:
    classes = entry["classes"]
    return classes if isinstance(classes, str) else f"first {classes['first']} of {classes['file']}"


def _unplaced(value) -> Unplaced:
    if isinstance(value, dict):
        return Unplaced("hash", int(value["hash_train_percent"]))
    return Unplaced(value)


def _text_sources(entry: dict) -> tuple[TextSource, ...]:
    return tuple(TextSource(name=d["name"], kind="sheet" if "sheet" in d else "lines",
                            file=d.get("sheet") or d["lines"], match=d.get("match", "row"))
                 for d in entry.get("descriptions", ()))


def _protocol_fields(protocol: str) -> dict:
    """The sides of a published protocol, written in the split-file format (split_file.side_rule).
    Each is an "any" rule: a protocol reads whichever of its alternatives the data carries (subject
    ids, PYSKL lists, a CSV's split column, a feature folder's files), not all of them; its
    `unplaced` rule says what happens to a clip none of them places."""
    rules = _data()["protocols"][protocol]
    where = f"{DATASETS_FILE}: protocols.{protocol}"

    def side(field: str) -> SideRule:
        rule = side_rule(rules[field], field, data_path(DATASETS_FILE).parent, where)
        return rule if rule.kind == "any" else SideRule("any", (rule,), field)

    return {"train_side": side("train"), "test_side": side("test"),
            "unplaced": _unplaced(rules.get("unplaced", "skip"))}


def get_split(name: str, *, kinetics200_classes: Path | str | None = None) -> Split:
    """The split called `name`; Kinetics-200 takes the user's class-list file instead of its default list."""
    return get_split_spec(name, kinetics200_classes=kinetics200_classes).split(0)


def get_split_spec(name: str, *, kinetics200_classes: Path | str | None = None) -> SplitSpec:
    """The published split `name` as a one-partition SplitSpec (what a split file also becomes)."""
    name = _canonical_name(name)
    if name in SHIPPED_SPLIT_FILES:
        return _shipped_spec(name)
    idx = _indices(name)
    entry = _datasets()[idx.dataset]
    class_names = _class_names(entry)
    source = f"{idx.source}; class names: {_class_list_name(entry)}"
    assumption, class_list_source = entry.get("assumption"), entry.get("class_list_source")
    # A data set whose labels index a larger list (Kinetics-200 in Kinetics-400) may take the user's choice of it.
    if kinetics200_classes is not None and "labels_index" in entry:
        path = Path(kinetics200_classes).expanduser()
        class_names = kinetics200.read_kinetics200_classes(path)
        class_list_source = kinetics200.describe_user_file(path)
        source, assumption = f"{idx.source}; class names: {class_list_source}", None
    if set(idx.seen) | set(idx.unseen) != set(range(len(class_names))):
        raise ValueError(f"packaged split files for {name} do not cover its {len(class_names)} classes; "
                         f"reinstall posebridge")
    return build_spec(
        name=name, dataset=idx.dataset, classes=[ClassInfo(n) for n in class_names], partitions=[idx.unseen],
        protocol=entry["protocol"], source=source, assumption=assumption, class_list_source=class_list_source,
        text_sources=_text_sources(entry), stores=tuple(entry.get("stores", ())), get_data=entry.get("get_data"),
        data_classes=read_lines(entry["labels_index"]) if "labels_index" in entry else None,
        published_text_encoder=entry.get("published_text_encoder"), **_protocol_fields(entry["protocol"]))


def list_splits() -> list[dict]:
    """One row per split for `posebridge splits`: name, dataset, n_seen, n_unseen, source, status."""
    rows = []
    for name in SPLIT_NAMES:
        if name in SHIPPED_SPLIT_FILES:
            rows.append(_shipped_row(name))
            continue
        idx = _indices(name)
        best_reading = "class_list_source" in _datasets()[idx.dataset]
        rows.append({"name": name, "dataset": idx.dataset, "n_seen": len(idx.seen), "n_unseen": len(idx.unseen),
                     "source": idx.source, "status": "ready (class list: best reading)" if best_reading else "ready"})
    return rows


def _shipped_row(name: str) -> dict:
    split = _shipped_spec(name).split(0)
    return {"name": name, "dataset": split.dataset, "n_seen": len(split.seen), "n_unseen": len(split.unseen),
            "source": split.source, "status": "no reachable data" if split.no_data else "ready"}
