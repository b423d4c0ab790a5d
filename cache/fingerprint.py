"""Content fingerprints: what decides whether a cached result may be reused.

A fingerprint is the sha256 of the canonical JSON of everything that changes an output
(stage version, backend, model file hashes, output-affecting parameters) and nothing that
does not (batch size, workers, device, paths, mtimes), so caches hit exactly when they should.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import textwrap
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)  # 2.0 and 2 mean the same setting
    if isinstance(obj, Path):
        raise TypeError(f"paths must not enter a fingerprint: {obj}")
    return obj


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, dataclasses/tuples as plain JSON: equal settings -> equal text."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def code_sha256(source: str) -> str:
    """sha256 of what Python code does, not how it is written down: the syntax tree without
    docstrings, comments, blank lines or formatting, and without the project folder a project name
    is imported from. A docstring or comment edit, or a module's move, keeps the key; a code change
    (a statement, a constant, a name, an annotation) changes it."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        # Where a project name is imported from is not what the code does: a module moving between
        # folders keeps every key (the imported names still count).
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "posebridge":
            node.module = "posebridge"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "posebridge":
                    alias.name = "posebridge"
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False, include_attributes=False).encode()).hexdigest()


def file_code_sha256(path: str | os.PathLike) -> str:
    """code_sha256 of a Python source file (for fingerprints keyed by a module's behaviour)."""
    return code_sha256(Path(path).read_text(encoding="utf-8"))


def content_id(path: str | os.PathLike, sample_bytes: int = 4 * _CHUNK) -> str:
    """Identity of a video's bytes, cheap for big files: size + sha256 of the head and the tail.

    Renaming or moving a file keeps its id; re-encoding or truncating it changes it.
    """
    size = os.path.getsize(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= sample_bytes:
            h.update(f.read())
        else:
            half = sample_bytes // 2
            h.update(f.read(half))
            f.seek(size - half)
            h.update(f.read(half))
    return f"{size:x}-{h.hexdigest()[:24]}"
