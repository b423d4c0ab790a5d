"""A split file's "skeleton" field: a layout name ("coco17") or a layout JSON file, checked against the data."""
from __future__ import annotations

from posebridge.cache.errors import UserError
from posebridge.cache.layouts import Skeleton, load_layout
from posebridge.stages.splits.spec import Split


def split_layout(name_or_path: str, where: str) -> Skeleton:
    """The layout a split file names: a built-in name or a layout file (the split-file reader made
    its path absolute, so no base_dir is needed here)."""
    try:
        return load_layout(name_or_path)
    except UserError as err:
        raise UserError(f"{where}: field 'skeleton': {err}") from None


def check_split_skeleton(dataset, split: Split) -> None:
    """The data's layout must be the one the split file names (where the data says which it is)."""
    if split.skeleton is None or not dataset.skeleton:
        return
    layout = split_layout(split.skeleton, split.source)
    if layout.name != dataset.skeleton:
        raise UserError(f"{split.source}: field 'skeleton' is {split.skeleton!r}, but the data's skeleton is "
                        f"{dataset.skeleton!r}; name the data's layout or convert the data")
