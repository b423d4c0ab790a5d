"""NTU RGB+D 60/120 videos: labels and benchmark splits from the file names alone.

File names are SsssCcccPpppRrrrAaaa_rgb.avi (setup, camera, performer/subject, replication,
action; all 1-based). The `_rgb` suffix and the container are optional, so transcoded copies
(S001C001P001R001A001.mp4) work too.

Benchmarks: NTU-60 (Shahroudy et al., CVPR 2016, Sec. 3.2) defines cross-subject (the 20 training
subjects below) and cross-view (cameras 2 and 3 train, camera 1 tests). NTU-120 (Liu et al.,
TPAMI 2020, Sec. 4.1) defines cross-subject (53 training subjects: the NTU-60 twenty plus 33
more) and cross-setup (even setup ids train, odd ones test). The NTU-120 list equals the NTU-60
list on subjects 1-40, so one list serves both. Checked against the papers and against the lists
in the widely used skeleton preprocessing scripts (2s-AGCN / MS-G3D `ntu_gendata.py`,
`ntu120_gendata.py`), which pyskl's xsub/xview/xset pickle splits follow.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from posebridge.stages.datasets.base import ClipSpec, clip_id_of, require_media_files
from posebridge.cache.errors import UserError
from posebridge.stages.splits.data_files import NTU120_CLASSES, read_lines

NTU_NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})(?:_rgb)?\.[A-Za-z0-9]+$")
NTU_PATTERN_TEXT = "SsssCcccPpppRrrrAaaa_rgb.avi (e.g. S001C002P003R002A013_rgb.avi)"

NTU60_TRAIN_SUBJECTS = frozenset({1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38})
NTU120_TRAIN_SUBJECTS = NTU60_TRAIN_SUBJECTS | {
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89,
    91, 92, 93, 94, 95, 97, 98, 100, 103}
XVIEW_TRAIN_CAMERAS = frozenset({2, 3})
NTU60_LAST_SETUP = 17  # setups S001-S017 make up NTU-60; NTU-120 adds S018-S032
BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}


def parse_ntu_name(name: str) -> dict[str, int] | None:
    """{setup, camera, subject, replication, action} (1-based ids) or None if not an NTU name."""
    match = NTU_NAME.match(name)
    if match is None:
        return None
    return dict(zip(("setup", "camera", "subject", "replication", "action"), map(int, match.groups())))


def scan_ntu(videos_dir: Path, variant: str) -> list[ClipSpec]:
    """Every media file must carry an NTU name; `variant` "ntu60" also rejects actions above A060."""
    max_action = 60 if variant == "ntu60" else 120
    names = read_lines(NTU120_CLASSES)
    specs = []
    for path in require_media_files(videos_dir):
        meta = parse_ntu_name(path.name)
        if meta is None:
            raise UserError(f"{path} is not an NTU RGB+D file name; expected {NTU_PATTERN_TEXT}, or use "
                            f"a dataset name without the ntu prefix for plain folders")
        if not 1 <= meta["action"] <= max_action:
            raise UserError(f"{path} has action A{meta['action']:03d}, outside {variant} (A001-A{max_action:03d}); "
                            f"use --dataset ntu120 or remove the file")
        action = meta["action"]
        specs.append(ClipSpec(path=path, clip_id=clip_id_of(path, videos_dir), label=action - 1,
                              label_name=names[action - 1], meta=meta))
    return specs


def ntu_variant_of(metas: Iterable[Mapping[str, int]]) -> str:
    """"ntu120" if any sample lies outside NTU-60 (setup > 17 or action > 60), else "ntu60"."""
    for meta in metas:
        if meta["setup"] > NTU60_LAST_SETUP or meta["action"] > 60:
            return "ntu120"
    return "ntu60"


def is_train_sample(meta: Mapping[str, int], benchmark: str) -> bool:
    """Whether a sample is on the training side of "xsub", "xview" or "xset"."""
    if benchmark == "xsub":
        return meta["subject"] in NTU120_TRAIN_SUBJECTS
    if benchmark == "xview":
        return meta["camera"] in XVIEW_TRAIN_CAMERAS
    if benchmark == "xset":
        return meta["setup"] % 2 == 0
    raise UserError(f"unknown NTU benchmark {benchmark!r}; choose one of xsub, xview, xset")


def ntu_benchmark_splits(items: Iterable, variant: str | None = None) -> dict[str, list[str]]:
    """pyskl-style {"xsub_train": [clip ids], "xsub_val": [...], ...}.

    `items` are ClipSpecs, cache ClipRecords or {"clip_id", "meta"} mappings; without NTU meta the id's
    file name is parsed. NTU-60 gets xsub and xview, NTU-120 xsub and xset (the official
    benchmarks of each); `variant` None infers it from the samples.
    """
    samples = [_clip_id_and_meta(item) for item in items]
    variant = variant or ntu_variant_of(meta for _, meta in samples)
    if variant not in BENCHMARKS:
        raise UserError(f"unknown NTU variant {variant!r}; choose ntu60 or ntu120")
    splits: dict[str, list[str]] = {}
    for benchmark in BENCHMARKS[variant]:
        splits[f"{benchmark}_train"] = sorted(c for c, m in samples if is_train_sample(m, benchmark))
        splits[f"{benchmark}_val"] = sorted(c for c, m in samples if not is_train_sample(m, benchmark))
    return splits


def _clip_id_and_meta(item) -> tuple[str, Mapping[str, int]]:
    """A ClipSpec, a cache ClipRecord (both have .clip_id/.meta) or a {"clip_id", "meta"} mapping."""
    if isinstance(item, Mapping):
        clip_id, meta = item["clip_id"], item.get("meta") or {}
    else:
        clip_id, meta = item.clip_id, item.meta or {}
    if "subject" not in meta:
        meta = parse_ntu_name(Path(clip_id).name)
        if meta is None:
            raise UserError(f"clip {clip_id!r} is not an NTU RGB+D sample; expected {NTU_PATTERN_TEXT}")
    return clip_id, meta
