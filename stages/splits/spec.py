"""Splits as data: one SplitSpec (classes, sides, seen/unseen partitions) -> one Split per partition.

The published splits (registry.py), the shipped split files and a user's split file
(split_file.py) all end here, in `build_spec`: the same checks, the same partition naming, the
same Split objects for training and evaluation. What a data set needs (its sides, where its class
texts come from, which cue stores serve it) is a field here, filled from data files, never a
branch on a data set's name.
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
    """Which clips form a train or test side (stages/train/sides.py applies it).

    kind  names:    clips that answer to one of `values` as a side name: meta["pyskl_split"] keys
                    (PYSKL), meta["side"] (feature folder) or meta["split"] (Kinetics CSV, the
                    synthetic store)
          subjects: meta["subject"] in `values`
          clips:    clip id in `values`
          any:      `values` are SideRules; a clip is decided by the first of them that can read it
                    (a subject rule reads clips with a subject, a names rule clips with side names),
                    so one protocol serves stores, PYSKL pickles and feature folders alike
    """
    kind: str
    values: tuple
    field: str  # the split file's field ("train" / "test"), for messages


@dataclass(frozen=True)
class Unplaced:
    """What happens to a clip that neither side takes: "skip" it (a split file's clips may be on
    neither side), "refuse" the data (a published protocol must place every clip), or "hash" it:
    `train_percent` of such clips go to the train side, the rest to the test side, by a hash of the
    clip id (Kinetics clips extracted without the official train/val column)."""
    rule: str = "skip"
    train_percent: int = 0


@dataclass(frozen=True)
class TextSource:
    """A shipped class-text file (data/SOURCES.md): a PURLS GPT-3 sheet (`kind` "sheet": a
    description plus body-part and phase texts per row) or a file of one description per line
    ("lines"). `match` "row": row i is class i; "name": rows are looked up by class name (a
    Kinetics-200 list picks its rows out of the Kinetics-400 sheet)."""
    name: str   # what --descriptions-from style choices call it: purls, smie, pgfa
    kind: str   # sheet | lines
    file: str   # path under stages/splits/data
    match: str = "row"


@dataclass(frozen=True)
class Split:
    name: str                       # canonical, e.g. "ntu60_55_5"; a split file's partition: "<name>/p<k>-<digest>"
    dataset: str                    # ntu60 | ntu120 | pkummd | kinetics200 | nwucla | ... | a split file's
    class_names: tuple[str, ...]    # all classes, dataset label order
    seen: tuple[int, ...]           # sorted, 0-based into class_names
    unseen: tuple[int, ...]
    # A name for how the sides are drawn (ntu_xsub, pku_xsub, kinetics, or "sides" for a split
    # file); train_side / test_side below say which clips, `unplaced` what happens to the others.
    protocol: str
    source: str                     # file(s) it comes from
    assumption: str | None = None   # what is believed but not confirmed upstream
    classes: tuple[ClassInfo, ...] = ()  # per class texts given with the split; () = text_sources'
    train_side: SideRule | None = None
    test_side: SideRule | None = None
    skeleton: str | None = None     # a split file's "skeleton" (layout name or path); None = by joint count
    family: str = ""                # the spec's name (all partitions of one split file share it)
    get_data: str | None = None     # how to make the data it reads, told when no cache has it
    unplaced: Unplaced = Unplaced()
    text_sources: tuple[TextSource, ...] = ()  # shipped class texts, the default first
    stores: tuple[str, ...] = ()    # the --dataset names of the cue stores that serve it; () = (dataset,)
    # The class names the data's labels index, where they are not class_names (Kinetics-200 inside
    # Kinetics-400 data): clips are relabelled to class_names by name, others are left out.
    data_classes: tuple[str, ...] | None = None
    class_list_source: str | None = None  # where the class names come from, where that is not upstream-stated
    published_text_encoder: str | None = None  # the text encoder of the published numbers on it
    no_data: str | None = None      # why no data for it can be had (training refuses, saying so)
    about: str | None = None        # a shipped split file's own account of itself

    @property
    def store_datasets(self) -> tuple[str, ...]:
        return self.stores or (self.dataset,)


SIDES_PROTOCOL = "sides"
# Fields every partition of a spec shares with its spec (the rest are the partition's own).
_SHARED = ("dataset", "protocol", "source", "assumption", "train_side", "test_side", "skeleton", "get_data",
           "unplaced", "text_sources", "stores", "data_classes", "class_list_source", "published_text_encoder",
           "no_data", "about")


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
    unplaced: Unplaced = Unplaced()
    text_sources: tuple[TextSource, ...] = ()
    stores: tuple[str, ...] = ()
    data_classes: tuple[str, ...] | None = None
    class_list_source: str | None = None
    published_text_encoder: str | None = None
    no_data: str | None = None
    about: str | None = None

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
        return Split(name=self.partition_name(k), class_names=self.class_names, seen=seen, unseen=unseen,
                     classes=self.classes if with_texts else (), family=self.name,
                     **{field: getattr(self, field) for field in _SHARED})

    def splits(self) -> list[Split]:
        return [self.split(k) for k in range(len(self.partitions))]


def build_spec(*, name: str, dataset: str, classes: list[ClassInfo] | tuple[ClassInfo, ...],
               partitions: list[tuple[int, ...]], protocol: str, source: str, single: bool = True, where: str = "",
               **fields) -> SplitSpec:
    """The one constructor of SplitSpec: checks what every split must satisfy. `where` prefixes
    messages (a split file's path); index errors in shipped data mean a broken install. `fields`:
    SplitSpec's optional fields (assumption, sides, skeleton, get_data, text_sources, ...)."""
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
                     source=source, single=single, **fields)


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
