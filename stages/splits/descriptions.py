"""Class descriptions shipped with the splits, aligned to each dataset's label order.

Sources (data/SOURCES.md): PURLS GPT-3 sheets (global + body-part + temporal-phase texts; NTU and
Kinetics), SMIE ChatGPT class descriptions (NTU, PKU-MMD), PGFA GPT-4 skeleton-focused
descriptions (PKU-MMD). Row/line i of every file is class i, except the Kinetics sheet, which is
looked up by name because a Kinetics-200 list is a user-chosen subset of Kinetics-400.
"""
from __future__ import annotations

from dataclasses import dataclass

from posebridge.stages.splits.data_files import read_lines, read_purls_sheet

PURLS_SHEETS = {"ntu60": "derived/gpt3_desc_NTU-RGBD.csv", "ntu120": "derived/gpt3_desc_NTU-RGBD.csv",
                "kinetics200": "derived/gpt3_desc_Kinetic-skeletons.csv",
                "kinetics400": "derived/gpt3_desc_Kinetic-skeletons.csv"}
SMIE_FILES = {"ntu60": "smie/descriptions/ntu60_des.txt", "ntu120": "smie/descriptions/ntu120_des.txt",
              "pkummd": "smie/descriptions/pku_des.txt"}
PGFA_FILES = {"pkummd": "pgfa/descriptions/pku_ska_gpt4.txt"}
# Sheet column -> our part / phase name.
_PART_COLUMNS = {"head": "Head", "hands": "Hands", "torso": "Torso", "legs": "Legs"}
_PHASE_COLUMNS = {"start": "Start", "middle": "Middle", "end": "End"}


@dataclass(frozen=True)
class PurlsRow:
    description: str
    parts: dict[str, str]
    temporal: dict[str, str]


def _purls_row(row: dict[str, str]) -> PurlsRow:
    # "Global Desc" is written to follow "a person" (it starts with a space and a verb).
    action = row["Global Desc"].strip()
    return PurlsRow(description=f"a person {action[:1].lower()}{action[1:]}",
                    parts={k: row[c].strip() for k, c in _PART_COLUMNS.items() if row[c].strip()},
                    temporal={k: row[c].strip() for k, c in _PHASE_COLUMNS.items() if row[c].strip()})


def purls_rows(dataset: str, class_names: tuple[str, ...]) -> list[PurlsRow]:
    rows = read_purls_sheet(PURLS_SHEETS[dataset])
    if dataset.startswith("kinetics"):
        by_name = {row["Action Labels"].strip().lower(): row for row in rows}
        return [_purls_row(by_name[name.lower()]) for name in class_names]
    return [_purls_row(row) for row in rows[: len(class_names)]]


def line_descriptions(files: dict[str, str], dataset: str, n_classes: int) -> list[str]:
    lines = read_lines(files[dataset])
    if len(lines) < n_classes:
        raise ValueError(f"{files[dataset]} has {len(lines)} lines for {n_classes} classes; reinstall posebridge")
    return list(lines[:n_classes])
