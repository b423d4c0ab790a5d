"""Split registry: every published split resolves to a clean partition with the right classes."""
import json
import re
from pathlib import Path

import pytest

from posebridge.cache.errors import UserError
from posebridge.stages.splits import registry
from posebridge.stages.splits.data_files import K400_CLASSES, data_path, read_lines
from posebridge.stages.splits.registry import SPLIT_NAMES, get_split, list_splits

REQUIRED = (
    "ntu60_55_5", "ntu60_48_12", "ntu60_40_20", "ntu60_30_30",
    "ntu120_110_10", "ntu120_96_24", "ntu120_80_40", "ntu120_60_60",
    "kinetics200_180_20", "kinetics200_160_40", "kinetics200_140_60", "kinetics200_120_80",
    "kinetics400_360_40", "kinetics400_320_80", "kinetics400_300_100", "kinetics400_280_120",
    "pkummd_46_5", "pkummd_39_12", "synthetic_zsl",
)
REAL = [n for n in SPLIT_NAMES if n not in registry.SHIPPED_SPLIT_FILES]
N_CLASSES = {"ntu60": 60, "ntu120": 120, "pkummd": 51, "kinetics200": 200, "kinetics400": 400}
PROTOCOL = {"ntu60": "ntu_xsub", "ntu120": "ntu_xsub", "pkummd": "pku_xsub", "kinetics200": "kinetics",
            "kinetics400": "kinetics"}


def k400() -> tuple[str, ...]:
    return read_lines(K400_CLASSES)


def test_all_required_names_are_registered():
    assert set(REQUIRED) <= set(SPLIT_NAMES)
    assert len(set(SPLIT_NAMES)) == len(SPLIT_NAMES)


@pytest.mark.parametrize("name", REAL)
def test_split_is_a_sorted_partition_of_its_classes(name):
    split = get_split(name)
    n = N_CLASSES[split.dataset]
    assert len(split.class_names) == n == len(set(split.class_names))
    assert list(split.seen) == sorted(split.seen) and list(split.unseen) == sorted(split.unseen)
    assert not set(split.seen) & set(split.unseen)
    assert set(split.seen) | set(split.unseen) == set(range(n))
    counts = re.match(r"[a-z]+\d*_(\d+)_(\d+)", name)
    assert (len(split.seen), len(split.unseen)) == (int(counts[1]), int(counts[2]))
    assert split.protocol == PROTOCOL[split.dataset]
    assert split.train_side is not None and split.test_side is not None  # every split states its sides


def test_ntu60_55_5_matches_the_published_unseen_classes():
    split = get_split("ntu60_55_5")
    assert split.unseen == (10, 11, 19, 26, 56)
    assert [split.class_names[i] for i in split.unseen] == [
        "reading", "writing", "put on a hat/cap", "jump up", "touch other person's pocket"]
    assert "ru5.npy" in split.source and split.assumption is None


@pytest.mark.parametrize("name, synse_a_numbers", [
    # SynSE README tables, 1-based NTU action ids (SPLITS.md).
    ("ntu60_48_12", [4, 6, 10, 13, 16, 41, 43, 48, 52, 57, 59, 60]),
    ("ntu120_110_10", [5, 14, 38, 44, 50, 66, 89, 96, 100, 107]),
    ("ntu120_96_24", [6, 10, 12, 17, 19, 21, 23, 30, 36, 40, 46, 50, 60, 69, 71, 82, 85, 88, 94, 95,
                      105, 114, 115, 120]),
])
def test_ntu_splits_match_synse_readme(name, synse_a_numbers):
    assert [i + 1 for i in get_split(name).unseen] == synse_a_numbers


def test_ntu120_110_10_unseen_names():
    split = get_split("ntu120_110_10")
    assert [split.class_names[i] for i in split.unseen][:3] == ["drop", "wear jacket", "salute"]
    assert split.class_names[:60] == get_split("ntu60_55_5").class_names


def test_pkummd_46_5_unseen_names():
    split = get_split("pkummd_46_5")
    assert [split.class_names[i] for i in split.unseen] == [
        "Brushing hair", "Eat meal/snack", "Patting on back of other person", "Take off a hat/cap", "Writing"]
    assert "STAR" in split.source


def test_every_code_split_of_the_data_file_is_registered_with_its_source():
    stored = json.loads(data_path("code_splits.json").read_text())["splits"]
    assert set(stored) <= set(SPLIT_NAMES)
    assert all(entry["source"] and entry["source"] in get_split(name).source for name, entry in stored.items())


def test_kinetics400_names_follow_alphabetical_k400_with_the_assumption_stated():
    split = get_split("kinetics400_360_40")
    assert split.class_names == k400() and list(k400()) == sorted(k400())
    assert split.class_names[split.unseen[0]] == "abseiling"
    assert "assumed" in split.assumption and "alphabetical" in split.assumption


def test_kinetics200_defaults_to_the_first_200_kinetics400_classes_with_its_provenance():
    """The class list the evidence supports (shared notes, kinetics200-classes.md), stated wherever it is used."""
    split = get_split("kinetics200_180_20")
    assert split.class_names == k400()[:200] and split.class_names[0] == "abseiling"
    assert split.class_names[-1] == "motorcycling"
    assert "first 200" in split.class_list_source and "--kinetics200-classes" in split.class_list_source
    assert "not the paper's own statement" in split.assumption
    assert split.data_classes == k400()  # the data's labels index Kinetics-400: relabelled by name
    assert split.store_datasets == ("kinetics200", "kinetics400", "kinetics")


def test_kinetics200_reads_the_users_class_list(tmp_path):
    chosen = list(reversed(k400()))[:200]
    path = tmp_path / "k200.txt"
    # Case and surrounding blanks do not matter; names come back in K400 spelling, file order.
    path.write_text("\n".join(n.upper() if i == 3 else f"  {n} " for i, n in enumerate(chosen)) + "\n\n")
    split = get_split("kinetics200_160_40", kinetics200_classes=path)
    assert split.class_names == tuple(chosen)
    assert split.assumption is None and "k200.txt" in split.source and str(tmp_path) not in split.source
    assert split.class_list_source.startswith("user file k200.txt (sha256 ")
    assert (len(split.seen), len(split.unseen)) == (160, 40)


def test_kinetics200_rejects_an_unknown_name_with_file_and_line(tmp_path):
    names = list(k400()[:200])
    names[6] = "ballet danceing"
    path = tmp_path / "k200.txt"
    path.write_text("\n".join(names))
    with pytest.raises(UserError, match=r"k200\.txt:7: 'ballet danceing' is not a Kinetics-400 class"):
        get_split("kinetics200_180_20", kinetics200_classes=path)


@pytest.mark.parametrize("names, message", [
    (lambda k: k[:199], r"has 199 class names, Kinetics-200 needs exactly 200"),
    (lambda k: k[:199] + k[:1], r":200: 'abseiling' repeats line 1"),
])
def test_kinetics200_rejects_wrong_counts_and_repeats(tmp_path, names, message):
    path = tmp_path / "k200.txt"
    path.write_text("\n".join(names(list(k400()))))
    with pytest.raises(UserError, match=message):
        get_split("kinetics200_180_20", kinetics200_classes=path)


def test_unknown_split_suggests_close_names():
    with pytest.raises(UserError) as err:
        get_split("ntu60_55")
    assert str(err.value).startswith("unknown split 'ntu60_55'; did you mean: ntu60_55_5, ")
    assert str(err.value).endswith("? (`posebridge splits` lists them)")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="`posebridge splits` lists the known names"):
        get_split("zzzz")


def test_names_are_matched_case_insensitively():
    assert get_split(" NTU60_55_5 ").name == "ntu60_55_5"


def test_list_splits_rows():
    rows = {row["name"]: row for row in list_splits()}
    assert list(rows) == list(SPLIT_NAMES)
    assert rows["kinetics200_180_20"]["status"] == "ready (class list: best reading)"
    assert rows["ntu120_96_24"] | {"source": None} == {
        "name": "ntu120_96_24", "dataset": "ntu120", "n_seen": 96, "n_unseen": 24, "source": None,
        "status": "ready"}
    assert "synthetic_zsl" in rows


def test_synthetic_split_resolves_from_its_shipped_split_file():
    split = get_split("synthetic_zsl")
    assert split.dataset == "synthetic" and split.unseen and split.seen and "synthetic_zsl.json" in split.source


def test_data_files_live_inside_the_installed_package():
    package_dir = Path(registry.__file__).parent
    for relative in ("purls/supplements/label_splits/kinetic400/rs280.npy", "SOURCES.md", K400_CLASSES):
        assert data_path(relative).is_relative_to(package_dir / "data")
    with pytest.raises(FileNotFoundError):
        data_path("nope.txt")
