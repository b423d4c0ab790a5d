"""A split file's train / test sides on loaded data: which clips each SideRule selects.

A side name matches what the data carries: a PYSKL pickle's split-list keys (meta["pyskl_split"]),
a feature folder's files (meta["side"]: train / val / test), or meta["split"] (Kinetics CSV, the
synthetic store). Subject rules read meta["subject"] (NTU-style names); clip lists, clip ids.
"""
from __future__ import annotations

import numpy as np

from posebridge.cache.errors import UserError
from posebridge.stages.splits.spec import SideRule, Split


def side_names(meta: dict) -> set[str]:
    """Every side name one clip answers to."""
    names = set(meta.get("pyskl_split", ()))
    names.update(str(meta[key]) for key in ("side", "split") if meta.get(key) is not None)
    return names


def rule_mask(meta: list[dict], clip_ids: list[str], rule: SideRule, where: str) -> np.ndarray:
    """[N] bool: the clips `rule` selects. Fails when the data cannot answer it at all."""
    if rule.kind == "names":
        per_clip = [side_names(m) for m in meta]
        known = set().union(*per_clip) if per_clip else set()
        for name in rule.values:
            if name not in known:
                have = ", ".join(sorted(known)) or "none"
                raise UserError(f"{where}: field '{rule.field}' names side {name!r}, which the data does not have "
                                f"(it has: {have}); use one of those, or a subject rule or clip list")
        wanted = set(rule.values)
        return np.array([bool(names & wanted) for names in per_clip], dtype=bool)
    if rule.kind == "subjects":
        if not any("subject" in m for m in meta):
            raise UserError(f"{where}: field '{rule.field}' selects subjects, but the data carries no subject ids "
                            f"(meta['subject']); use a side name or a clip list instead")
        wanted = set(rule.values)
        return np.array([m.get("subject") in wanted for m in meta], dtype=bool)
    if rule.kind == "clips":
        wanted = set(rule.values)
        mask = np.array([c in wanted for c in clip_ids], dtype=bool)
        if not mask.any():
            raise UserError(f"{where}: field '{rule.field}.clips' matches none of the data's {len(clip_ids)} clip ids "
                            f"(e.g. {rule.values[0]!r}); list ids as the data spells them (PYSKL frame_dir)")
        return mask
    raise ValueError(f"unknown side rule kind {rule.kind!r}")


def split_sides(meta: list[dict], clip_ids: list[str], split: Split) -> tuple[np.ndarray, np.ndarray]:
    """([N] train, [N] test) of a split with explicit sides; a clip may be on neither, not on both."""
    where = split.source
    train = rule_mask(meta, clip_ids, split.train_side, where)
    test = rule_mask(meta, clip_ids, split.test_side, where)
    both = np.flatnonzero(train & test)
    if len(both):
        raise UserError(f"{where}: fields 'train' and 'test' both select {len(both)} clips (e.g. "
                        f"{clip_ids[both[0]]!r}); give sides that do not overlap")
    return train, test
