"""Splits as data: one SplitSpec (classes, sides, seen/unseen partitions) -> one Split per partition.

The published splits (registry.py), the synthetic benchmark and a user's split file
(split_file.py) all end here, in `build_spec`: the same checks, the same partition naming, the
same Split objects for training and evaluation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from math import comb

import numpy as np

from posebridge.cache.errors import UserError


@dataclass(frozen=True)
class ClassInfo:
    """One class: its name and, from a split file, the texts given for it (else the dataset's)."""
    name: str
    descriptions: tuple[str, ...] = ()
    # (slot, text) pairs, kept as tuples so a Split stays hashable
    parts: tuple[tuple[str, str], ...] = ()     # head / hands / torso / legs
    temporal: tuple[tuple[str, str], ...] = ()  # start / middle / end


@dataclass(frozen=True)
class SideRule:
    """Which clips form a train or test side.

    kind  names:    meta["pyskl_split"] keys (PYSKL), meta["side"] (feature folder) or meta["split"]
                    values (Kinetics CSV, the synthetic store) equal to one of `values`
          subjects: meta["subject"] in `values`
          clips:    clip id in `values`
    """
    kind: str
    values: tuple
    field: str  # the split file's field ("train" / "test"), for messages


@dataclass(frozen=True)
class Split:
    name: str                       # canonical, e.g. "ntu60_55_5"; a split file's partition: "<name>/p<k>-<digest>"
    dataset: str                    # ntu60 | ntu120 | pkummd | kinetics200 | kinetics400 | synthetic | a split file's
    class_names: tuple[str, ...]    # all classes, dataset label order
    seen: tuple[int, ...]           # sorted, 0-based into class_names
    unseen: tuple[int, ...]
    # ntu_xsub / pku_xsub: train on the seen classes of the cross-subject train set, test on the
    # unseen classes of its test set; kinetics: the Kinetics train/val sets; "sides": train_side /
    # test_side below say which clips.
    protocol: str
    source: str                     # file(s) it comes from
    assumption: str | None = None   # what is believed but not confirmed upstream
    classes: tuple[ClassInfo, ...] = ()  # per class texts given with the split; () = the dataset's own
    train_side: SideRule | None = None
    test_side: SideRule | None = None
    skeleton: str | None = None     # a split file's "skeleton" (layout name or path); None = by joint count
    family: str = ""                # the spec's name (all partitions of one split file share it)
    get_data: str | None = None     # how to make the data it reads, told when no cache has it


SIDES_PROTOCOL = "sides"


@dataclass(frozen=True)
class SplitSpec:
    name: str
    dataset: str
    classes: tuple[ClassInfo, ...]
    partitions: tuple[tuple[int, ...], ...]  # sorted unseen class indices, one tuple per partition
    protocol: str
    source: str
    assumption: str | None = None
    train_side: SideRule | None = None
    test_side: SideRule | None = None
    skeleton: str | None = None
    get_data: str | None = None
    # One fixed partition (a published split, a split file's "unseen") keeps the plain name;
    # several get "<name>/p<k>-<digest>" so each has its own run folder.
    single: bool = True

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def partition_name(self, k: int) -> str:
        if self.single:
            return self.name
        unseen = [self.classes[i].name for i in self.partitions[k]]
        return f"{self.name}/p{k}-{hashlib.sha256(repr(unseen).encode()).hexdigest()[:8]}"

    def split(self, k: int = 0) -> Split:
        unseen = self.partitions[k]
        seen = tuple(i for i in range(len(self.classes)) if i not in set(unseen))
        with_texts = any(c.descriptions or c.parts or c.temporal for c in self.classes)
        return Split(name=self.partition_name(k), dataset=self.dataset, class_names=self.class_names, seen=seen,
                     unseen=unseen, protocol=self.protocol, source=self.source, assumption=self.assumption,
                     classes=self.classes if with_texts else (), train_side=self.train_side,
                     test_side=self.test_side, skeleton=self.skeleton, family=self.name,
                     get_data=self.get_data)

    def splits(self) -> list[Split]:
        return [self.split(k) for k in range(len(self.partitions))]


def build_spec(*, name: str, dataset: str, classes: list[ClassInfo] | tuple[ClassInfo, ...],
               partitions: list[tuple[int, ...]], protocol: str, source: str, assumption: str | None = None,
               train_side: SideRule | None = None, test_side: SideRule | None = None,
               skeleton: str | None = None, single: bool = True, where: str = "",
               get_data: str | None = None) -> SplitSpec:
    """The one constructor of SplitSpec: checks what every split must satisfy. `where` prefixes
    messages (a split file's path); index errors in shipped data mean a broken install."""
    where = where or source
    names = [c.name for c in classes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"{where}: field 'classes' lists {duplicates[0]!r} more than once; class names must be unique")
    if not partitions:
        raise UserError(f"{where}: no seen/unseen partition; give 'unseen', 'partitions' or 'random_partitions'")
    clean = []
    for unseen in partitions:
        unseen = tuple(sorted(int(i) for i in unseen))
        if not unseen or len(set(unseen)) != len(unseen) or unseen[0] < 0 or unseen[-1] >= len(names):
            raise UserError(f"{where}: a partition's unseen classes {list(unseen)} are not distinct classes of the "
                            f"{len(names)} listed")
        if len(unseen) >= len(names):
            raise UserError(f"{where}: a partition makes all {len(names)} classes unseen; leave some seen")
        clean.append(unseen)
    return SplitSpec(name=name, dataset=dataset, classes=tuple(classes), partitions=tuple(clean), protocol=protocol,
                     source=source, assumption=assumption, train_side=train_side, test_side=test_side,
                     skeleton=skeleton, single=single, get_data=get_data)


def draw_partitions(num_classes: int, unseen: int, count: int, seed: int, where: str) -> list[tuple[int, ...]]:
    """`count` distinct partitions of `unseen` classes each, reproducibly: rng = numpy
    default_rng(seed); each draw is sorted(rng.choice(num_classes, unseen, replace=False)); a draw
    equal to an earlier one is dropped and drawn again. Same (classes, unseen, count, seed) -> same list."""
    if not 1 <= unseen < num_classes:
        raise UserError(f"{where}: field 'random_partitions.unseen' is {unseen}, but it must be at least 1 and "
                        f"below the {num_classes} classes; lower it")
    if count < 1 or count > comb(num_classes, unseen):
        raise UserError(f"{where}: field 'random_partitions.count' is {count}; {num_classes} classes give at most "
                        f"{comb(num_classes, unseen)} distinct partitions of {unseen} unseen (and at least 1)")
    rng = np.random.default_rng(seed)
    drawn: list[tuple[int, ...]] = []
    while len(drawn) < count:
        draw = tuple(sorted(int(i) for i in rng.choice(num_classes, size=unseen, replace=False)))
        if draw not in drawn:
            drawn.append(draw)
    return drawn
