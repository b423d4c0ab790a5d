"""The one import driver: a release's files -> Annotations -> sides -> one PYSKL pickle.

Every format is a SkeletonFormat (one module per format in this package): it finds its files
(scan), turns one file into clips (read; BadFile for a file it cannot use) and names the sides the
data set's benchmarks define (sides). The driver does the rest the same way for all: it refuses an
existing --out before reading anything, skips bad files and reports each on one line (file, why,
what to do), refuses a clip that two files claim, and writes through cache/pyskl.py (atomic, the
layout recorded, never over an existing file).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from posebridge.cache.errors import UserError
from posebridge.cache.pyskl import Annotation, write_pyskl

_MAX_REASON = 200


class BadFile(ValueError):
    """A file its format cannot use; `reason` is one short line, `fix` what to do (None: the format's default)."""

    def __init__(self, reason: str, fix: str | None = None):
        # One line, bounded: the reason lands in a report line next to the file name.
        reason = " ".join(str(reason).split())
        self.reason = reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON - 3] + "..."
        self.fix = fix
        super().__init__(self.reason)


@dataclass(frozen=True)
class SkeletonFormat:
    """What a format adapter owes the driver."""

    name: str                                   # FORMAT of `posebridge import FORMAT`
    layout: str                                 # the built-in layout its keypoints follow (recorded in the pickle)
    summary: str                                # one line for `posebridge import --help`: files, sides
    files: str                                  # what scan finds, plural ("aAA_sSS_eEE_vVV.json files")
    folder: str                                 # what SRC should be ("NW-UCLA's all_sqe folder")
    fix: str                                    # what to do about a bad file when its BadFile does not say
    scan: Callable[[Path], list[Path]]          # the format's files under SRC, sorted
    read: Callable[..., list[Annotation]]       # one file -> its clips (meta filled for sides); BadFile
    sides: Callable[..., dict[str, list[str]]]  # clips -> {side name: sorted frame_dirs}; UserError
    classes: tuple[str, ...] = ()               # class names, index = label (empty: the files carry them)
    # Formats with options (PKU-MMD's label and split folders): (SRC, given options) -> the options
    # read() and sides() take, defaults filled in; UserError when one cannot be found.
    options: Callable[[Path, dict], dict] | None = None


@dataclass
class ImportReport:
    out: Path
    clips: int
    splits: dict[str, int]
    layout: str
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (file, why, what to do)

    def lines(self) -> list[str]:
        sides = ", ".join(f"{name} {n}" for name, n in self.splits.items())
        lines = [f"wrote {self.out}: {self.clips} clips ({sides}), layout {self.layout}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} files (bad input; the other files are imported):")
            lines += [f"  {name}: {why}; {fix}" for name, why, fix in self.skipped]
        return lines


def import_skeletons(fmt: SkeletonFormat, src: str | Path, out: str | Path, **given) -> ImportReport:
    """Convert the files of `fmt` under `src` into the PYSKL pickle `out` (see the module docstring).

    `given` are the format's options as the command line gives them (None = not given).
    """
    src, out = Path(src), Path(out)
    if out.exists():
        raise UserError(f"--out {out} already exists; give a new file name or delete it first")
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; give {fmt.folder}")
    options = _options(fmt, src, {k: v for k, v in given.items() if v is not None})
    files = fmt.scan(src)
    if not files:
        raise UserError(f"{src} holds no {fmt.files}; give {fmt.folder}")
    annotations, skipped = read_files(fmt, src, files, options)
    if not annotations:
        reasons = "; ".join(f"{name}: {why}" for name, why, _ in skipped[:3])
        raise UserError(f"none of the {len(files)} {fmt.files} in {src} is usable ({reasons}"
                        f"{'; ...' if len(skipped) > 3 else ''}); {fmt.fix}")
    split = fmt.sides(annotations, **options)
    write_pyskl(out, annotations, split, layout=fmt.layout)
    return ImportReport(out=out, clips=len(annotations), splits={k: len(v) for k, v in split.items()},
                        layout=fmt.layout, skipped=skipped)


def _options(fmt: SkeletonFormat, src: Path, given: dict) -> dict:
    if fmt.options is None:
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"{flags}: not an option of format {fmt.name}; leave it out")
        return {}
    return fmt.options(src, given)


def read_files(fmt: SkeletonFormat, src: Path, files: Iterable[Path],
               options: dict) -> tuple[list[Annotation], list[tuple[str, str, str]]]:
    """(clips, skipped) of `files`; skipped = [(file relative to src, why, what to do)]."""
    annotations: list[Annotation] = []
    skipped: list[tuple[str, str, str]] = []
    source_of: dict[str, Path] = {}
    for path in files:
        name = path.relative_to(src).as_posix() if path.is_relative_to(src) else str(path)
        try:
            clips = fmt.read(path, **options)
        except BadFile as err:
            skipped.append((name, err.reason, err.fix or fmt.fix))
            continue
        for ann in clips:
            if ann.frame_dir in source_of:  # two copies of one release in SRC: which one is meant?
                raise UserError(f"clip {ann.frame_dir} comes from both {source_of[ann.frame_dir]} and {path}; "
                                f"keep one copy of each file under {src}")
            source_of[ann.frame_dir] = path
            annotations.append(ann)
    return annotations, skipped


def group_sides(annotations: Iterable[Annotation], benchmark: str,
                is_train: Callable[[dict], bool]) -> dict[str, list[str]]:
    """{f"{benchmark}_train": sorted ids where is_train(meta), f"{benchmark}_val": the others}. PYSKL's
    naming (xsub_val is the test side), which the NTU converter and the stage-2 loader use too."""
    train, val = [], []
    for ann in annotations:
        (train if is_train(ann.meta) else val).append(ann.frame_dir)
    return {f"{benchmark}_train": sorted(train), f"{benchmark}_val": sorted(val)}


def one_line(err: BaseException) -> str:
    """An exception's message as one short line (library messages can span lines)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def read_json(path: Path):
    """A JSON file's content, or BadFile: empty, truncated (the document never closes), not JSON."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadFile("not a text file (not UTF-8)") from None
    except OSError as err:
        raise BadFile(f"unreadable: {err.strerror}") from None
    if not text.strip():
        raise BadFile("empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        body = text.strip()
        if body[:1] in "{[" and body[-1:] not in "}]":  # an object or array that never closes: cut short
            raise BadFile("truncated JSON (ends before the document closes)") from None
        raise BadFile(f"not JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
