"""Which clips are on which side of a split: the one place that applies a split's SideRules.

Every split states its sides as data (stages/splits/spec.py): a split file's "train" / "test", and
the published protocols' sides in the registry's data (stages/splits/data/datasets.json). A side
name matches what the data carries: a PYSKL pickle's split-list keys (meta["pyskl_split"]), a
feature folder's files (meta["side"]: train / val / test), or meta["split"] (Kinetics CSV, the
synthetic store). Subject rules read meta["subject"] (NTU-style names); clip lists, clip ids.
"""
from __future__ import annotations

import hashlib
import warnings

import numpy as np

from posebridge.cache.errors import UserError
from posebridge.stages.splits.spec import SideRule, Split


def side_names(meta: dict) -> set[str]:
    """Every side name one clip answers to."""
    names = set(meta.get("pyskl_split", ()))
    names.update(str(meta[key]) for key in ("side", "split") if meta.get(key) is not None)
    return names


def describe(rule: SideRule) -> str:
    """What a rule reads, for messages: 'side names xsub_train, train or subject ids (meta['subject'])'."""
    if rule.kind == "names":
        return "side names " + ", ".join(map(str, rule.values))
    if rule.kind == "subjects":
        return "subject ids (meta['subject'])"
    if rule.kind == "clips":
        return "clip ids"
    return " or ".join(describe(r) for r in rule.values)


def _reads(rule: SideRule, meta: dict) -> bool:
    """Whether the clip carries what `rule` decides by (for the alternatives of an "any" rule)."""
    if rule.kind == "names":
        return bool(side_names(meta))
    if rule.kind == "subjects":
        return "subject" in meta
    if rule.kind == "any":
        return any(_reads(r, meta) for r in rule.values)
    return True


def _takes(rule: SideRule, meta: dict, clip_id: str) -> bool:
    if rule.kind == "names":
        return bool(side_names(meta) & set(rule.values))
    if rule.kind == "subjects":
        return meta.get("subject") in set(rule.values)
    if rule.kind == "clips":
        return clip_id in set(rule.values)
    if rule.kind == "any":  # the first alternative that can read the clip decides it
        return next((_takes(r, meta, clip_id) for r in rule.values if _reads(r, meta)), False)
    raise ValueError(f"unknown side rule kind {rule.kind!r}")


def rule_mask(meta: list[dict], clip_ids: list[str], rule: SideRule, where: str) -> np.ndarray:
    """[N] bool: the clips `rule` selects. A plain rule fails when the data cannot answer it at all;
    an "any" rule's alternatives each read only the clips they can (the split's `unplaced` policy
    says what happens to clips none reads)."""
    if rule.kind == "names":
        known = set().union(*(side_names(m) for m in meta)) if meta else set()
        for name in rule.values:
            if name not in known:
                have = ", ".join(sorted(known)) or "none"
                raise UserError(f"{where}: field '{rule.field}' names side {name!r}, which the data does not have "
                                f"(it has: {have}); use one of those, or a subject rule or clip list")
    elif rule.kind == "subjects" and not any("subject" in m for m in meta):
        raise UserError(f"{where}: field '{rule.field}' selects subjects, but the data carries no subject ids "
                        f"(meta['subject']); use a side name or a clip list instead")
    mask = np.array([_takes(rule, m, c) for m, c in zip(meta, clip_ids)], dtype=bool)
    if rule.kind == "clips" and not mask.any():
        raise UserError(f"{where}: field '{rule.field}.clips' matches none of the data's {len(clip_ids)} clip ids "
                        f"(e.g. {rule.values[0]!r}); list ids as the data spells them (PYSKL frame_dir)")
    return mask


def _hash_train(clip_id: str, percent: int) -> bool:
    """Deterministic `percent` / rest split from the clip id alone."""
    bucket = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big") % 100
    return bucket < percent


def split_sides(meta: list[dict], clip_ids: list[str], split: Split) -> tuple[np.ndarray, np.ndarray]:
    """([N] train, [N] test) of a split. A clip may be on neither side (what happens to it is the
    split's `unplaced` rule) or on both (a ZSL-only reading: partition() then reports no GZSL)."""
    if split.train_side is None or split.test_side is None:
        raise ValueError(f"split {split.name} states no train / test sides")
    where = split.source
    train = rule_mask(meta, clip_ids, split.train_side, where)
    test = rule_mask(meta, clip_ids, split.test_side, where)
    # a feature folder's val rows are its own validation rows, which partition() places
    own_val = np.array([m.get("side") == "val" for m in meta], dtype=bool)
    neither = np.flatnonzero(~train & ~test & ~own_val)
    if len(neither) == 0 or split.unplaced.rule == "skip":
        return train, test
    reads = f"the train side reads {describe(split.train_side)}, the test side {describe(split.test_side)}"
    if split.unplaced.rule == "refuse":
        raise UserError(f"clip {clip_ids[neither[0]]!r} (and {len(neither) - 1} more) is on neither side of split "
                        f"{split.name}: {reads}; give the data what they read (PYSKL split lists, NTU-style "
                        f"file names, a Kinetics CSV's split column)")
    percent = split.unplaced.train_percent
    warnings.warn(f"{len(neither)} clips (e.g. {clip_ids[neither[0]]!r}) are on neither side of {split.name} "
                  f"({reads}); they are split {percent}/{100 - percent} by a hash of the clip id, which is not the "
                  f"official split", stacklevel=3)
    for i in neither:
        if _hash_train(clip_ids[i], percent):
            train[i] = True
        else:
            test[i] = True
    return train, test


def overlap_reason(train: np.ndarray, test: np.ndarray, clip_ids: list[str], split: Split) -> str | None:
    """Why GZSL cannot be scored when the sides share clips (None when they do not): the seen
    classes' test clips would be training clips. ZSL stays sound: unseen classes never train."""
    both = np.flatnonzero(train & test)
    if len(both) == 0:
        return None
    return (f"GZSL not available: the train and test sides of {split.name} share {len(both)} clips (e.g. "
            f"{clip_ids[both[0]]!r}), so the seen classes' test clips are training clips; this reading is ZSL-only")
