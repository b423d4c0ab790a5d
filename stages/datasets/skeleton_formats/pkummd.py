"""PKU-MMD phase 1 (Liu et al., 2017): per-video skeleton text files cut into one clip per labelled action.

Release layout (Skeleton.7z, Label_PKUMMD.7z and the Split folder, side by side):

    PKU_Skeleton_Renew/0002-L.txt      one line per frame: 150 numbers = 2 persons x 25 joints x (x, y, z),
                                       Kinect v2 camera space in metres, NTU's 25-joint order (layout
                                       `ntu25`); with one person the second 75 numbers are 0
    Train_Label_PKU_final/0002-L.txt   one line per action: `label,start,end,confidence`, label 1..51,
                                       confidence 1 (slight) or 2 (strong recommendation)
    Split/cross-subject.txt            "Training videos: " / ids / "Validataion videos: " (sic) / ids,
    Split/cross-view.txt               ids comma-separated like 0002-L

Videos are NNNN-V, NNNN = 0002..0364, V the camera L(eft), M(iddle), R(ight).

Frames (the release does not say): start and end are 1-based and inclusive, the clip being
skeleton lines start..end, T = end - start + 1, as AimCLR / CrosSCLR cut them
(tools/pku_part1_skeleton.py: `skeleton_frames[start - 1:end]`); MAMP's pku_gendata.py slices
[start:end], one frame later and one shorter. A label whose frames are not within 1..T (start 0
would mean 0-based labels; an end past the file a cut skeleton file) makes the video a bad file
naming the line, so the question surfaces instead of clips shifting silently.

Clips: frame_dir NNNN-V_LLL (LLL = the 1-based label line), label = action - 1, M = 2 when the
second person is non-zero anywhere in the clip, else 1; confidence-1 actions are kept (AimCLR
keeps them); an all-zero clip is kept (the loader skips and counts empty clips).

Sides: only the official lists say who is where (subjects are not in the file names), so they are
read from the user's Split folder: xsub_train / xsub_val from cross-subject.txt, xview_train /
xview_val from cross-view.txt; the second list is the test side, as in every benchmark's code.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from posebridge.cache.errors import UserError
from posebridge.cache.pyskl import Annotation
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, SkeletonFormat

NUM_JOINTS = 25
VALUES_PER_LINE = 2 * NUM_JOINTS * 3
CLASSES = (  # action id i + 1 (Actions.xlsx order, alphabetical), as PGFA's pku_labelmap.txt lists them
    "bow", "brushing hair", "brushing teeth", "check time (from watch)", "cheer up", "clapping",
    "cross hands in front (say stop)", "drink water", "drop", "eat meal/snack", "falling",
    "giving something to other person", "hand waving", "handshaking", "hopping (one foot jumping)",
    "hugging other person", "jumping up", "kicking other person", "kicking something",
    "making a phone call/answering phone", "patting on back of other person", "pickup",
    "playing with phone/tablet", "pointing finger at the other person", "pointing to something with finger",
    "punching/slapping other person", "pushing other person", "put on a hat/cap",
    "put something inside pocket", "reading", "rub two hands together", "salute", "sitting down",
    "standing up", "take off a hat/cap", "take off glasses", "take off jacket",
    "take out something from pocket", "taking a selfie", "tear up paper", "throw",
    "touch back (backache)", "touch chest (stomachache/heart pain)", "touch head (headache)",
    "touch neck (neckache)", "typing on a keyboard", "use a fan (with hand or paper)/feeling warm",
    "wear jacket", "wear on glasses", "wipe face", "writing")
VIDEO_NAME = re.compile(r"^(\d{4})-([LMR])\.txt$")
VIDEO_ID = re.compile(r"^\d{4}-[LMR]$")
LABEL_FOLDER = "Train_Label_PKU_final"
SPLIT_FILES = {"xsub": "cross-subject.txt", "xview": "cross-view.txt"}
_HEADER = re.compile(r"(training|validataion|validation|testing|test)\s+videos\s*:", re.IGNORECASE)


# --- where the label and split folders are -----------------------------------------------------

def options(src: Path, given: dict) -> dict:
    """{"label_dir", "split_dir"}: as given, else found in SRC or beside it (the release's layout)."""
    return {"label_dir": _label_dir(src, given.get("label_dir")), "split_dir": _split_dir(src, given.get("split_dir"))}


def _label_dir(src: Path, given: Path | None) -> Path:
    if given is not None:
        if not Path(given).is_dir():
            raise UserError(f"--label-dir {given} is not a folder; give the folder of PKU-MMD's label files "
                            f"({LABEL_FOLDER})")
        return Path(given)
    for base in (src, src.parent):
        folders = sorted(p for p in base.iterdir() if p.is_dir() and "label" in p.name.lower())
        named = [p for p in folders if p.name == LABEL_FOLDER]
        if named or folders:
            return (named or folders)[0]
    raise UserError(f"no label folder ({LABEL_FOLDER}, from Label_PKUMMD.7z) in {src} or beside it; "
                    f"give --label-dir DIR")


def _split_dir(src: Path, given: Path | None) -> Path:
    def has_lists(folder: Path) -> bool:
        return any((folder / name).is_file() for name in SPLIT_FILES.values())

    if given is not None:
        if not has_lists(Path(given)):
            raise UserError(f"--split-dir {given} holds neither {' nor '.join(SPLIT_FILES.values())}; give the "
                            f"release's Split folder")
        return Path(given)
    for folder in (src / "Split", src.parent / "Split", src, src.parent):
        if has_lists(folder):
            return folder
    raise UserError(f"no Split folder with {' or '.join(SPLIT_FILES.values())} in {src} or beside it; "
                    f"give --split-dir DIR (the release's Split folder)")


# --- files -------------------------------------------------------------------------------------

def scan(src: Path) -> list[Path]:
    """Every skeleton file NNNN-V.txt under `src`, sorted; files in a folder named *label* are label
    files, not skeletons."""
    src = Path(src)
    if "label" in src.name.lower():  # the label folder given as SRC: its files are named like skeletons
        return []
    return sorted(p for p in src.rglob("*.txt")
                  if VIDEO_NAME.match(p.name) and p.is_file()
                  and not any("label" in part.lower() for part in p.relative_to(src).parts[:-1]))


def read(path: Path, label_dir: Path, **_) -> list[Annotation]:
    """One clip per line of the video's label file (label_dir / the same name). (The driver passes
    every option to read and sides; each takes the one it needs.)"""
    path = Path(path)
    match = VIDEO_NAME.match(path.name)
    if match is None:
        raise BadFile("not a PKU-MMD skeleton file name NNNN-V.txt (e.g. 0002-L.txt)")
    label_path = Path(label_dir) / path.name
    if not label_path.is_file():
        raise BadFile(f"no label file {path.name} in {label_dir}",
                      "copy its label file there from Label_PKUMMD.7z, or move the skeleton file out of the folder")
    frames = read_skeleton_lines(path)
    video = path.name[:-len(".txt")]
    clips = []
    for line, (action, start, end, confidence) in enumerate(read_label_lines(label_path, len(frames)), 1):
        persons = frames[start - 1:end].reshape(end - start + 1, 2, NUM_JOINTS, 3).transpose(1, 0, 2, 3)
        if not persons[1].any():
            persons = persons[:1]
        meta = {"video": video, "video_id": int(match.group(1)), "view": match.group(2), "line": line,
                "start": start, "end": end, "confidence": confidence}
        clips.append(Annotation(f"{video}_{line:03d}", action - 1, np.ascontiguousarray(persons), meta=meta))
    return clips


def sides(annotations: list[Annotation], split_dir: Path, **_) -> dict[str, list[str]]:
    """xsub_* and / or xview_* from the official lists in `split_dir`; every imported video must be on
    exactly one side of each list."""
    videos = {a.meta["video"] for a in annotations}
    out: dict[str, list[str]] = {}
    for benchmark, file_name in SPLIT_FILES.items():
        list_file = Path(split_dir) / file_name
        if not list_file.is_file():
            continue
        train, test = parse_split_file(list_file)
        both = sorted(train & test)
        if both:
            raise UserError(f"{list_file}: {len(both)} videos are on both sides, e.g. {both[0]}; use the release's file")
        unlisted = sorted(videos - train - test)
        if unlisted:
            raise UserError(f"{list_file} lists neither side for {len(unlisted)} imported videos, e.g. {unlisted[0]}; "
                            f"use the release's file, or leave those videos out of SRC")
        out[f"{benchmark}_train"] = sorted(a.frame_dir for a in annotations if a.meta["video"] in train)
        out[f"{benchmark}_val"] = sorted(a.frame_dir for a in annotations if a.meta["video"] in test)
    return out


def parse_split_file(path: Path) -> tuple[set[str], set[str]]:
    """(training video ids, test video ids) of an official list file:

        Training videos: \\n 0002-L, 0002-M, ... \\n Validataion videos: \\n 0291-L, ...
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    heads = list(_HEADER.finditer(text))
    if len(heads) != 2 or heads[0].group(1).lower() != "training":
        raise UserError(f"{path}: expected a 'Training videos:' and a 'Validataion videos:' section; use the "
                        f"release's file")
    sections = (text[heads[0].end():heads[1].start()], text[heads[1].end():])
    lists = []
    for section in sections:
        ids = [token.strip() for token in section.split(",") if token.strip()]
        bad = [token for token in ids if not VIDEO_ID.match(token)]
        if bad:
            raise UserError(f"{path}: {bad[0][:20]!r} is not a video id like 0002-L; use the release's file")
        lists.append(set(ids))
    return lists[0], lists[1]


def read_skeleton_lines(path: Path) -> np.ndarray:
    """float32 [T, 150] of a skeleton file, or BadFile (empty, a short line, not numbers)."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise BadFile("not a text file (not ASCII)", "move it out of the folder") from None
    except OSError as err:
        raise BadFile(f"unreadable: {err.strerror}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise BadFile("empty")
    for i, line in enumerate(lines, 1):
        n = len(line.split())
        if n != VALUES_PER_LINE:
            cut = " (truncated?)" if i == len(lines) and n < VALUES_PER_LINE else ""
            raise BadFile(f"line {i} has {n} values, not {VALUES_PER_LINE}{cut}")
    try:
        values = np.array(text.split(), dtype=np.float64)
    except ValueError:
        raise BadFile("a skeleton value is not a number") from None
    if not np.isfinite(values).all():
        raise BadFile("a skeleton value is not finite")
    return values.reshape(len(lines), VALUES_PER_LINE).astype(np.float32)


def read_label_lines(path: Path, num_frames: int) -> list[tuple[int, int, int, int]]:
    """[(action 1..51, start, end, confidence)] of a label file; every interval must lie in 1..num_frames."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise BadFile(f"label file unreadable ({type(err).__name__})") from None
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            action, start, end, confidence = (int(float(f)) for f in line.split(","))
        except ValueError:
            raise BadFile(f"label line {i} is not 'label, start, end, confidence'") from None
        if not 1 <= action <= len(CLASSES):
            raise BadFile(f"label line {i}: action {action} is outside 1-{len(CLASSES)}")
        if not 1 <= start <= end <= num_frames:
            raise BadFile(f"label line {i}: frames {start}-{end} are not within the video's 1-{num_frames}")
        rows.append((action, start, end, confidence))
    if not rows:
        raise BadFile("label file is empty")
    return rows


FORMAT = SkeletonFormat(
    name="pkummd", layout="ntu25",
    summary="PKU-MMD phase 1 NNNN-V.txt skeleton files, one clip per line of the label file of the same name "
            "(--label-dir), start..end 1-based inclusive; sides xsub + xview from the Split folder's lists "
            "(--split-dir)",
    files="NNNN-V.txt skeleton files",
    folder="PKU-MMD's PKU_Skeleton_Renew folder (NNNN-V.txt files), or the folder holding it, "
           f"{LABEL_FOLDER} and Split",
    fix="copy it again from the release (Skeleton.7z, Label_PKUMMD.7z)", classes=CLASSES,
    scan=scan, read=read, sides=sides, options=options)
