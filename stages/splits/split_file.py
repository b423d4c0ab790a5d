"""A split file (JSON) -> SplitSpec. The format is documented in docs/own-data.md:

{"name": "myset_7_3", "skeleton": "coco17" | "my_layout.json",
 "classes": [{"name": "walk", "descriptions": ["..."]}, "run", ...],
 "train": "xsub_train", "test": "xsub_val",
 "unseen": ["throw", "push", "pull"]}          # or "partitions" / "random_partitions"

Paths in it (a layout file, a clip-list file) are relative to the split file. Every error is one
line that names the file and the field.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.stages.splits.spec import (SIDES_PROTOCOL, ClassInfo, SideRule, SplitSpec, build_spec,
                                             draw_partitions)

REQUIRED = ("name", "classes", "train", "test")
OPTIONAL = ("skeleton", "dataset", "unseen", "partitions", "random_partitions", "assumption", "get_data", "about",
            "no_data", "published_text_encoder")
TEXT_FIELDS = ("assumption", "get_data", "about", "no_data", "published_text_encoder")  # free text, one string each
PARTITION_FIELDS = ("unseen", "partitions", "random_partitions")
CLASS_FIELDS = ("name", "descriptions", "parts", "temporal")
PART_SLOTS = ("head", "hands", "torso", "legs")  # as stages/train/text.py PART_NAMES
PHASE_SLOTS = ("start", "middle", "end")         # as TEMPORAL_NAMES
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # it names a run folder


class _Fields:
    """Field readers that fail with '<file>: field '<f>' ...; <fix>'."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, problem: str, fix: str) -> UserError:
        return UserError(f"{self.where}: field '{field}' {problem}; {fix}")

    def string(self, obj: dict, field: str) -> str:
        value = obj.get(field)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"is {value!r}", "give a non-empty string")
        return value.strip()

    def strings(self, value, field: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(field, f"is {value!r}", "give a list of strings")
        return [v.strip() for v in value]

    def integer(self, obj: dict, field: str, key: str) -> int:
        value = obj.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(f"{field}.{key}", f"is {value!r}", "give an integer")
        return value


def read_split_file(path: str | Path) -> SplitSpec:
    """Read and check a split file; nothing about the data is checked here (see stages/train/sides.py)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"split file {path} not found; pass the path of a JSON split file (docs/own-data.md)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); fix the file (docs/own-data.md shows the format)") from None
    return parse_split(obj, where=str(path), base_dir=path.parent, source=f"split file {path}")


def parse_split(obj, *, where: str, base_dir: Path, source: str) -> SplitSpec:
    f = _Fields(where)
    if not isinstance(obj, dict):
        raise UserError(f"{where}: the file must hold one JSON object with {', '.join(REQUIRED)}; see docs/own-data.md")
    unknown = sorted(set(obj) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise f.fail(unknown[0], "is not a split-file field", f"use only {', '.join(REQUIRED + OPTIONAL)}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise f.fail(missing[0], "is missing", "every split file needs " + ", ".join(REQUIRED))
    name = f.string(obj, "name")
    if not _NAME.match(name):
        raise f.fail("name", f"is {name!r}", "use letters, digits, '_', '-' or '.' (it names the run folder)")
    classes = _classes(obj["classes"], f)
    partitions, single = _partitions(obj, [c.name for c in classes], f)
    skeleton = f.string(obj, "skeleton") if "skeleton" in obj else None
    if skeleton is not None and skeleton.endswith(".json"):
        skeleton = str((base_dir / skeleton).resolve())
    texts = {key: f.string(obj, key) for key in TEXT_FIELDS if key in obj}
    return build_spec(
        name=name, dataset=f.string(obj, "dataset") if "dataset" in obj else name, classes=classes,
        partitions=partitions, protocol=SIDES_PROTOCOL, source=source,
        train_side=_side(obj["train"], "train", base_dir, f), test_side=_side(obj["test"], "test", base_dir, f),
        skeleton=skeleton, single=single, where=where, **texts)


def _classes(value, f: _Fields) -> list[ClassInfo]:
    if not isinstance(value, list) or len(value) < 2:
        raise f.fail("classes", f"is {value!r:.60}", "list at least two classes, label 0 first")
    out = []
    for i, entry in enumerate(value):
        field = f"classes[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise f.fail(field, f"is {entry!r:.60}", 'give a name or {"name": ..., "descriptions": [...]}')
        unknown = sorted(set(entry) - set(CLASS_FIELDS))
        if unknown:
            raise f.fail(f"{field}.{unknown[0]}", "is not a class field", f"use only {', '.join(CLASS_FIELDS)}")
        out.append(ClassInfo(
            name=f.string(entry, "name") if "name" in entry else _missing_name(f, field),
            descriptions=tuple(f.strings(entry.get("descriptions", []), f"{field}.descriptions")),
            parts=_slots(entry.get("parts", {}), PART_SLOTS, f"{field}.parts", f),
            temporal=_slots(entry.get("temporal", {}), PHASE_SLOTS, f"{field}.temporal", f)))
    names = [c.name for c in out]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:  # before the partitions, which look classes up by name
        raise f.fail("classes", f"lists {twice!r} more than once", "class names must be unique")
    return out


def _missing_name(f: _Fields, field: str):
    raise f.fail(f"{field}.name", "is missing", "give every class a name")


def _slots(value, slots: tuple[str, ...], field: str, f: _Fields) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise f.fail(field, f"is {value!r:.60}", f"give an object of texts keyed by {', '.join(slots)}")
    unknown = sorted(set(value) - set(slots))
    if unknown:
        raise f.fail(f"{field}.{unknown[0]}", "is not a slot", f"use only {', '.join(slots)}")
    return tuple((slot, value[slot].strip()) for slot in slots if value.get(slot, "").strip())


def _indices(names: list[str], all_names: list[str], field: str, f: _Fields) -> tuple[int, ...]:
    index = {n: i for i, n in enumerate(all_names)}
    for n in names:
        if n not in index:
            raise f.fail(field, f"names {n!r}, which is not in 'classes'", "use a class name exactly as 'classes' spells it")
    if len(set(names)) != len(names):
        raise f.fail(field, "names a class twice", "list each unseen class once")
    if len(names) >= len(all_names):
        raise f.fail(field, f"makes all {len(all_names)} classes unseen", "leave at least one class seen")
    return tuple(sorted(index[n] for n in names))


def _partitions(obj: dict, names: list[str], f: _Fields) -> tuple[list[tuple[int, ...]], bool]:
    given = [k for k in PARTITION_FIELDS if k in obj]
    if len(given) != 1:
        raise f.fail(given[1] if given else "unseen", "is missing" if not given else f"comes with '{given[0]}'",
                     "give exactly one of " + ", ".join(PARTITION_FIELDS))
    key = given[0]
    if key == "unseen":
        return [_indices(f.strings(obj["unseen"], "unseen"), names, "unseen", f)], True
    if key == "partitions":
        value = obj["partitions"]
        if not isinstance(value, list) or not value:
            raise f.fail("partitions", f"is {value!r:.60}", "give a list of unseen-class lists")
        parts = [_indices(f.strings(p, f"partitions[{i}]"), names, f"partitions[{i}]", f) for i, p in enumerate(value)]
        if len(set(parts)) != len(parts):
            raise f.fail("partitions", "repeats a partition", "list each seen/unseen partition once")
        return parts, False
    rule = obj["random_partitions"]
    if not isinstance(rule, dict) or set(rule) - {"unseen", "count", "seed"}:
        raise f.fail("random_partitions", f"is {rule!r:.60}", 'give {"unseen": k, "count": n, "seed": s}')
    k, count = f.integer(rule, "random_partitions", "unseen"), f.integer(rule, "random_partitions", "count")
    seed = f.integer(rule, "random_partitions", "seed") if "seed" in rule else 0
    return draw_partitions(len(names), k, count, seed, f.where), False


def side_rule(value, field: str, base_dir: Path, where: str) -> SideRule:
    """A side as the split-file format writes it (also how the registry's data writes the published
    protocols' sides)."""
    return _side(value, field, base_dir, _Fields(where))


def _side(value, field: str, base_dir: Path, f: _Fields) -> SideRule:
    """"name" or ["name", ...] | {"subjects": [ids]} | {"clips": [ids] or "ids.txt"} | a list mixing
    names and such objects: its objects in order, then its names as one rule, and the first of these
    that can read a clip decides it (SideRule "any"; the published protocols' sides are written so)."""
    if isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
        names = [v for v in value if isinstance(v, str)]  # one names rule: a clip's names answer all of them
        rules = [_side(v, field, base_dir, f) for v in value if not isinstance(v, str)]
        return SideRule("any", tuple(rules + ([_side(names, field, base_dir, f)] if names else [])), field)
    if isinstance(value, str) or (isinstance(value, list) and value):
        return SideRule("names", tuple(f.strings([value] if isinstance(value, str) else value, field)), field)
    if isinstance(value, dict) and len(value) == 1 and "subjects" in value:
        subjects = value["subjects"]
        if not isinstance(subjects, list) or not subjects or not all(isinstance(s, int) for s in subjects):
            raise f.fail(f"{field}.subjects", f"is {subjects!r:.60}", "give a list of integer subject ids")
        return SideRule("subjects", tuple(subjects), field)
    if isinstance(value, dict) and len(value) == 1 and "clips" in value:
        clips = value["clips"]
        if isinstance(clips, str):  # a text file of clip ids, one per line
            path = base_dir / clips
            if not path.is_file():
                raise f.fail(f"{field}.clips", f"names {path}, which does not exist", "give a list or an existing file")
            clips = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not clips:
            raise f.fail(f"{field}.clips", "is empty", "list the clip ids of this side")
        return SideRule("clips", tuple(f.strings(clips, f"{field}.clips")), field)
    raise f.fail(field, f"is {value!r:.60}", 'give a side name ("xsub_train"), {"subjects": [...]}, {"clips": [...]} '
                 'or a list of these')
