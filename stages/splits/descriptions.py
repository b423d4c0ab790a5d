"""Class texts shipped with the splits, read from a split's TextSources (data/datasets.json).

Sources (data/SOURCES.md): PURLS GPT-3 sheets (global + body-part + temporal-phase texts; NTU,
Kinetics, and the small sets NW-UCLA, UTD-MHAD, UWA3D II), SMIE ChatGPT class descriptions (NTU,
PKU-MMD), PGFA GPT-4 skeleton-focused descriptions (PKU-MMD). Row/line i of a file is class i,
except where the source says `match: name` (the Kinetics sheet: a Kinetics-200 list is a subset of
Kinetics-400, so its rows are looked up by class name).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from posebridge.stages.splits.data_files import read_lines, read_purls_sheet
from posebridge.stages.splits.spec import TextSource

# Sheet column -> our part / phase name.
_PART_COLUMNS = {"head": "Head", "hands": "Hands", "torso": "Torso", "legs": "Legs"}
_PHASE_COLUMNS = {"start": "Start", "middle": "Middle", "end": "End"}


@dataclass(frozen=True)
class SourceText:
    description: str
    parts: dict[str, str] = field(default_factory=dict)
    temporal: dict[str, str] = field(default_factory=dict)


def purls_row(row: dict[str, str]) -> SourceText:
    """One row of a PURLS sheet. "Global Desc" is written to follow "a person" (it starts with a
    space and a verb)."""
    action = row["Global Desc"].strip()
    return SourceText(description=f"a person {action[:1].lower()}{action[1:]}",
                      parts={k: row[c].strip() for k, c in _PART_COLUMNS.items() if row[c].strip()},
                      temporal={k: row[c].strip() for k, c in _PHASE_COLUMNS.items() if row[c].strip()})


def source_texts(source: TextSource, class_names: tuple[str, ...]) -> list[SourceText]:
    """The source's text for every class, in class order."""
    if source.kind == "sheet":
        rows = read_purls_sheet(source.file)
        if source.match == "name":
            by_name = {row["Action Labels"].strip().lower(): row for row in rows}
            return [purls_row(by_name[name.lower()]) for name in class_names]
        return [purls_row(row) for row in rows[: len(class_names)]]
    lines = read_lines(source.file)
    if len(lines) < len(class_names):
        raise ValueError(f"{source.file} has {len(lines)} lines for {len(class_names)} classes; reinstall posebridge")
    return [SourceText(description=line) for line in lines[: len(class_names)]]
