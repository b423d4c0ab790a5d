"""The texts that stand for each class: prompts with its name, a description, and where the
sources have them, body-part and temporal-phase descriptions.

Like open_clip's zero-shot data module, the prompt templates are plain data here; which
description file feeds which split is the split's own field (Split.text_sources, from the
registry's data), the first of them by default.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from posebridge.cache.errors import UserError
from posebridge.stages.splits import descriptions
from posebridge.stages.splits.spec import ClassInfo, Split, TextSource

PART_NAMES = ("head", "hands", "torso", "legs")
TEMPORAL_NAMES = ("start", "middle", "end")

TEMPLATES = (
    "a person {}.",
    "a video of a person {}.",
    "a skeleton of a person {}.",
    "human action of {}.",
    "{}.",
)


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


def _source_for(split: Split, requested: str) -> TextSource:
    if requested == "auto":
        return split.text_sources[0]
    for source in split.text_sources:
        if source.name == requested:
            return source
    usable = ", ".join(s.name for s in split.text_sources)
    raise UserError(f"descriptions '{requested}' do not cover dataset {split.dataset}; use one of: auto, {usable}")


def class_texts(split: Split, descriptions_from: str = "auto") -> list[ClassTexts]:
    """Texts for every class of split.class_names, in label order: the split's own (a split file's
    descriptions, parts, phases) where it gives any, else its shipped text source (`descriptions_from`:
    auto = the first it names), else the prompts alone."""
    if split.classes:
        return [given_texts(c) for c in split.classes]
    names = split.class_names
    if not split.text_sources:
        return [ClassTexts(name=n, templates=prompts(n), description=None) for n in names]
    texts = descriptions.source_texts(_source_for(split, descriptions_from), names)
    return [ClassTexts(name=n, templates=prompts(n), description=t.description, parts=dict(t.parts),
                       temporal=dict(t.temporal)) for n, t in zip(names, texts)]


def given_texts(info: ClassInfo) -> ClassTexts:
    """A split file's class: prompts with its name; several descriptions are joined into one text."""
    description = " ".join(info.descriptions) if info.descriptions else None
    return ClassTexts(name=info.name, templates=prompts(info.name), description=description,
                      parts=dict(info.parts), temporal=dict(info.temporal))
