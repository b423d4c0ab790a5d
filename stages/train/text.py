"""The texts that stand for each class: prompts with its name, a description, and where the
sources have them, body-part and temporal-phase descriptions.

Like open_clip's zero-shot data module, the prompt templates are plain data here; which
description file feeds which dataset is decided in one table (DESCRIPTION_SOURCES).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from posebridge.cache.errors import UserError
from posebridge.stages.splits import descriptions
from posebridge.stages.splits.spec import ClassInfo, Split

PART_NAMES = ("head", "hands", "torso", "legs")
TEMPORAL_NAMES = ("start", "middle", "end")

TEMPLATES = (
    "a person {}.",
    "a video of a person {}.",
    "a skeleton of a person {}.",
    "human action of {}.",
    "{}.",
)

# description source -> datasets it covers. "auto" takes the first source covering the dataset:
# PURLS' GPT-3 sheets where they exist (they also carry part and phase texts), else SMIE.
DESCRIPTION_SOURCES = {
    "purls": ("ntu60", "ntu120", "kinetics200", "kinetics400"),
    "smie": ("ntu60", "ntu120", "pkummd"),
    "pgfa": ("pkummd",),
}


@dataclass
class ClassTexts:
    name: str
    templates: list[str]              # TEMPLATES filled with the name
    description: str | None
    parts: dict[str, str] = field(default_factory=dict)     # subset of PART_NAMES
    temporal: dict[str, str] = field(default_factory=dict)  # subset of TEMPORAL_NAMES


def prompts(name: str) -> list[str]:
    # PKU-MMD names are capitalised ("Brushing hair"); mid-sentence they read lower-case.
    phrase = name[:1].lower() + name[1:]
    return [template.format(phrase) for template in TEMPLATES]


def _source_for(dataset: str, requested: str) -> str:
    if requested == "auto":
        return next(src for src, covered in DESCRIPTION_SOURCES.items() if dataset in covered)
    if dataset not in DESCRIPTION_SOURCES.get(requested, ()):
        usable = [src for src, covered in DESCRIPTION_SOURCES.items() if dataset in covered]
        raise UserError(f"descriptions '{requested}' do not cover dataset {dataset}; use one of: auto, {', '.join(usable)}")
    return requested


def class_texts(split: Split, descriptions_from: str = "auto") -> list[ClassTexts]:
    """Texts for every class of split.class_names, in label order: the split's own (a split file's
    descriptions, parts, phases) where it gives any, else the dataset's shipped descriptions, else
    the prompts alone."""
    if split.classes:
        return [given_texts(c) for c in split.classes]
    names = split.class_names
    if not any(split.dataset in covered for covered in DESCRIPTION_SOURCES.values()):
        return [ClassTexts(name=n, templates=prompts(n), description=None) for n in names]
    source = _source_for(split.dataset, descriptions_from)
    if source == "purls":
        rows = descriptions.purls_rows(split.dataset, names)
        return [ClassTexts(name=n, templates=prompts(n), description=r.description, parts=dict(r.parts),
                           temporal=dict(r.temporal)) for n, r in zip(names, rows)]
    files = descriptions.SMIE_FILES if source == "smie" else descriptions.PGFA_FILES
    lines = descriptions.line_descriptions(files, split.dataset, len(names))
    return [ClassTexts(name=n, templates=prompts(n), description=d) for n, d in zip(names, lines)]


def given_texts(info: ClassInfo) -> ClassTexts:
    """A split file's class: prompts with its name; several descriptions are joined into one text."""
    description = " ".join(info.descriptions) if info.descriptions else None
    return ClassTexts(name=info.name, templates=prompts(info.name), description=description,
                      parts=dict(info.parts), temporal=dict(info.temporal))
