"""Fingerprints keyed by code follow what the code does, not its docstrings or comments: a
documentation edit must not retrain every cached encoder or rename every run folder."""
from __future__ import annotations

import shutil
from pathlib import Path

from posebridge.cache.fingerprint import code_sha256, file_code_sha256
from posebridge.stages.extract import synthetic
from posebridge.stages.train import data as data_module
from posebridge.stages.train import view


def _edited(tmp_path: Path, module, old: str, new: str, count: int = 1) -> Path:
    copy = tmp_path / Path(module.__file__).name
    text = Path(module.__file__).read_text()
    assert old in text, old
    copy.write_text(text.replace(old, new, count))
    return copy


def test_docstring_and_comment_edits_keep_the_loader_key_and_code_edits_change_it(tmp_path, monkeypatch):
    base = data_module.loader_code_sha256()
    source = Path(data_module.__file__).read_text()
    docs = source.replace('"""Stage-2 data:', '"""Stage-2 DATA (reworded docstring):', 1)
    docs = docs.replace("# below it a joint does not enter", "# (comment reworded) below it no joint enters", 1)
    docs = docs.replace('    """[T, ...] -> [num_frames, ...]:', '    """Resample. [T, ...] -> [num_frames, ...]:', 1)
    docs = docs.replace("\ndef resample(", "\n# a new comment line\n\n\ndef resample(", 1)
    assert docs != source
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "data.py").write_text(docs)
    monkeypatch.setattr(data_module, "__file__", str(tmp_path / "docs" / "data.py"))
    assert data_module.loader_code_sha256() == base
    code = _edited(tmp_path, data_module, "MIN_CONFIDENCE = 0.3", "MIN_CONFIDENCE = 0.31")
    monkeypatch.setattr(data_module, "__file__", str(code))
    assert data_module.loader_code_sha256() != base


def test_code_sha256_ignores_docstrings_comments_and_layout_only():
    base = code_sha256('def f(x):\n    """Doc."""\n    return x + 1  # one\n')
    assert code_sha256('def f(x):\n    """Other doc."""\n\n    # comment\n    return (x +\n            1)\n') == base
    assert code_sha256("def f(x):\n    return x + 1\n") == base
    assert code_sha256("def f(x):\n    return x + 2\n") != base
    assert code_sha256("def f(y):\n    return y + 1\n") != base
    assert code_sha256('def f(x):\n    """Doc."""\n') == code_sha256("def f(x):\n    pass\n")
    assert code_sha256('x = "a string that is data, not a docstring"\n') != code_sha256('x = "other data"\n')
    # an indented method source (inspect.getsource of a method) parses too
    assert code_sha256("    def g(self):\n        return 1\n") == code_sha256("def g(self):\n    '''d'''\n    return 1\n")


def test_the_view_and_synthetic_generator_keys_follow_code_too(tmp_path):
    for module in (view, synthetic):
        source = Path(module.__file__).read_text()
        assert source.startswith('"""')
        copy = tmp_path / f"{module.__name__.rsplit('.', 1)[1]}.py"
        copy.write_text('"""A reworded module docstring."""\n# and a comment\n' + source.split('"""', 2)[2])
        assert file_code_sha256(copy) == file_code_sha256(module.__file__)


def test_code_sha256_ignores_which_project_folder_a_name_comes_from():
    """A module moving between the project's folders keeps every code-keyed cache; the names
    imported, and imports from other packages, still count."""
    base = code_sha256("from posebridge.cache.errors import UserError\nimport posebridge.cache.store\n")
    assert code_sha256("from posebridge.cache.errors import UserError\nimport posebridge.stages.store\n") == base
    assert code_sha256("from posebridge.cache.errors import OtherError\nimport posebridge.stages.store\n") != base
    assert code_sha256("from numpy import UserError\nimport posebridge.stages.store\n") != base
