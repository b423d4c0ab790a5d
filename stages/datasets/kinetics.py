"""Kinetics-400 videos: labels from class folders or from the official annotation CSV.

Class folders must be Kinetics-400 class names; downloaders spell them differently
("air drumming", "air_drumming", "passing_American_football_(in_game)"), so names are compared
with case, spaces and punctuation removed. With a CSV (official columns
label,youtube_id,time_start,time_end,split, in any order; split optional) each row maps to
<youtube_id>_<time_start:06d>_<time_end:06d>.<ext> (the standard downloader's naming) or
<youtube_id>.<ext>, anywhere under the videos folder. Rows without a file are reported, not fatal:
Kinetics downloads always miss some videos.
"""
from __future__ import annotations

import csv
import logging
import re
from functools import cache
from pathlib import Path

from posebridge.stages.datasets.base import (ClipSpec, class_folders, clip_id_of, media_files,
                                               require_media_files)
from posebridge.cache.errors import UserError
from posebridge.stages.splits.data_files import K400_CLASSES, data_path, read_lines

log = logging.getLogger(__name__)

CSV_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
CSV_HEADER_TEXT = "label,youtube_id,time_start,time_end,split (split optional, any column order)"
DOWNLOADER_NAME = re.compile(r"^(?P<youtube_id>.{11})_(?P<time_start>\d{6})_(?P<time_end>\d{6})$")
MISSING_SHOWN = 5


def k400_classes() -> tuple[str, ...]:
    """The 400 class names; line i = label i (mmaction2 label_map_k400.txt)."""
    return read_lines(K400_CLASSES)


@cache
def _k400_index() -> dict[str, int]:
    index = {_class_key(name): label for label, name in enumerate(k400_classes())}
    assert len(index) == 400, "class-name keys must stay unique"
    return index


def _class_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def scan_kinetics(videos_dir: Path, annotations: Path | None) -> list[ClipSpec]:
    if annotations is not None:
        return _scan_with_csv(videos_dir, Path(annotations))
    folders = class_folders(videos_dir)
    if folders is None:
        raise UserError(f"{videos_dir} has no Kinetics class folders; put videos in <class name>/ folders "
                        f"or pass --annotations with the Kinetics-400 CSV")
    specs = []
    for folder in folders:
        label = _k400_index().get(_class_key(folder.name))
        if label is None:
            raise UserError(f"class folder {folder} is not a Kinetics-400 class; names must match "
                            f"{data_path(K400_CLASSES)} (case, spaces and punctuation ignored)")
        for path in media_files(folder):
            specs.append(ClipSpec(path=path, clip_id=clip_id_of(path, videos_dir), label=label,
                                  label_name=k400_classes()[label], meta=_meta_from_name(path.stem)))
    if not specs:
        raise UserError(f"no video files in the class folders of {videos_dir}")
    return sorted(specs, key=lambda s: s.clip_id)


def _meta_from_name(stem: str) -> dict:
    match = DOWNLOADER_NAME.match(stem)
    if match is None:
        return {}
    return {"youtube_id": match["youtube_id"], "time_start": int(match["time_start"]),
            "time_end": int(match["time_end"])}


def _scan_with_csv(videos_dir: Path, annotations: Path) -> list[ClipSpec]:
    by_stem: dict[str, Path] = {}
    for path in require_media_files(videos_dir):
        by_stem.setdefault(path.stem, path)  # sorted walk: the first copy of a name wins
    specs: dict[str, ClipSpec] = {}
    missing: list[str] = []
    rows = _read_csv(annotations)
    for row in rows:
        stems = (f"{row['youtube_id']}_{row['time_start']:06d}_{row['time_end']:06d}", row["youtube_id"])
        path = next((by_stem[s] for s in stems if s in by_stem), None)
        if path is None:
            missing.append(stems[0])
            continue
        clip_id = clip_id_of(path, videos_dir)
        specs[clip_id] = ClipSpec(path=path, clip_id=clip_id, label=row["label"],
                                  label_name=k400_classes()[row["label"]],
                                  meta={k: row[k] for k in ("youtube_id", "time_start", "time_end", "split")})
    if missing:
        log.warning("%s: %d of %d rows have no video under %s (e.g. %s); they are skipped", annotations,
                    len(missing), len(rows), videos_dir, ", ".join(missing[:MISSING_SHOWN]))
    if not specs:
        raise UserError(f"none of the {len(rows)} rows of {annotations} has a video under {videos_dir}; "
                        f"expected files named <youtube_id>_<start:06d>_<end:06d>.mp4 or <youtube_id>.mp4")
    return sorted(specs.values(), key=lambda s: s.clip_id)


def _read_csv(annotations: Path) -> list[dict]:
    """Rows with label as a K400 index and integer times; UserError names file and line otherwise."""
    if not annotations.is_file():
        raise UserError(f"annotations file {annotations} does not exist; pass the Kinetics-400 CSV")
    with annotations.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        absent = [c for c in CSV_COLUMNS if c not in header]
        if absent:
            raise UserError(f"{annotations}:1: header lacks {', '.join(absent)}; expected {CSV_HEADER_TEXT}")
        reader.fieldnames = header
        rows = []
        for row in reader:
            line = reader.line_num
            try:
                rows.append(_parse_row(row))
            except (ValueError, KeyError, TypeError) as err:
                raise UserError(f"{annotations}:{line}: {err}; expected {CSV_HEADER_TEXT}") from None
    return rows


def _parse_row(row: dict) -> dict:
    values = {k: (row.get(k) or "").strip() for k in (*CSV_COLUMNS, "split")}
    label = _k400_index().get(_class_key(values["label"]))
    if label is None:
        raise ValueError(f"label {values['label']!r} is not a Kinetics-400 class")
    if not values["youtube_id"]:
        raise ValueError("empty youtube_id")
    return {"label": label, "youtube_id": values["youtube_id"], "time_start": _seconds(values["time_start"]),
            "time_end": _seconds(values["time_end"]), "split": values["split"] or None}


def _seconds(text: str) -> int:
    """Whole seconds; the official CSVs write "14" and some tools "14.0"."""
    value = float(text)
    if not value.is_integer() or value < 0:
        raise ValueError(f"time {text!r} is not a whole number of seconds")
    return int(value)
