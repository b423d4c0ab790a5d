"""Class text banks: every class's texts embedded once and stacked into tensors for the heads.

As in open_clip's zero-shot classifier, the name embedding of a class is the mean of its prompt
embeddings, renormalised. Embeddings are cached per (encoder fingerprint, text), so a second
build encodes nothing and a changed text encodes only itself.

Cache layout: <cache_dir>/text/<encoder fingerprint[:16]>/encoder.json names the encoder;
emb-<hash>.npz shards hold `keys` (sha256 of each text) and `vectors` [n, D]. Each build that
encodes something writes one new shard (tmp file + rename), so concurrent builds never clobber
each other's entries and a half-written shard is never read.
"""
from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posebridge.cache.atomic import atomic_path
from posebridge.cache.fingerprint import fingerprint
from posebridge.stages.train.text import PART_NAMES, TEMPORAL_NAMES, ClassTexts
from posebridge.stages.train.text_encoders import TextEncoder


@dataclass
class TextBank:
    class_names: list[str]
    name: torch.Tensor           # [K, D] mean of prompt embeddings, renormalised
    description: torch.Tensor    # [K, D] falls back to the name embedding where missing
    parts: torch.Tensor          # [K, 4, D] PART_NAMES order; zeros where the mask is False
    parts_mask: torch.Tensor     # [K, 4] bool
    temporal: torch.Tensor       # [K, 3, D] TEMPORAL_NAMES order; zeros where the mask is False
    temporal_mask: torch.Tensor  # [K, 3] bool
    fingerprint: str             # encoder fingerprint + all texts


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embedding_dir(cache_dir: Path, encoder: TextEncoder) -> Path:
    return Path(cache_dir) / "text" / encoder.fingerprint()[:16]


def _load_shards(folder: Path, wanted: set[str], dim: int) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("emb-*.npz")):
        try:
            with np.load(shard) as data:
                keys, vectors = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            warnings.warn(f"ignoring unreadable text-embedding shard {shard} ({err}); its texts are re-encoded")
            continue
        if vectors.shape[1:] != (dim,):
            continue
        for key, vector in zip(keys.tolist(), vectors):
            if key in wanted:
                found[key] = vector
    return found


def _write_atomically(path: Path, write) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def cached_embeddings(texts: list[str], encoder: TextEncoder, cache_dir: Path) -> dict[str, np.ndarray]:
    """text -> unit embedding; only texts missing from the cache are encoded, in one encode() call."""
    folder = embedding_dir(cache_dir, encoder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "encoder.json"
    if not meta.exists():
        identity = {"name": encoder.name, "dim": encoder.dim, "fingerprint": encoder.fingerprint()}
        _write_atomically(meta, lambda f: f.write(json.dumps(identity, indent=1).encode()))
    unique = sorted(set(texts))
    keys = {text: text_key(text) for text in unique}
    found = _load_shards(folder, set(keys.values()), encoder.dim)
    missing = [text for text in unique if keys[text] not in found]
    if missing:
        vectors = np.asarray(encoder.encode(missing), np.float32)
        new_keys = [keys[text] for text in missing]
        shard = folder / f"emb-{text_key(''.join(new_keys))[:16]}.npz"
        _write_atomically(shard, lambda f: np.savez(f, keys=np.array(new_keys), vectors=vectors))
        found.update(zip(new_keys, vectors))
    return {text: found[keys[text]] for text in unique}


def _all_texts(ct: ClassTexts) -> list[str]:
    return [*ct.templates, *([ct.description] if ct.description else []), *ct.parts.values(),
            *ct.temporal.values()]


def _slots(texts: dict[str, str], names: tuple[str, ...], emb: dict[str, np.ndarray],
           dim: int) -> tuple[np.ndarray, np.ndarray]:
    """[len(names), dim] vectors in `names` order and a mask of the slots that have a text."""
    vectors = np.zeros((len(names), dim), np.float32)
    mask = np.zeros(len(names), bool)
    for i, slot in enumerate(names):
        if texts.get(slot):
            vectors[i], mask[i] = emb[texts[slot]], True
    return vectors, mask


def build_text_bank(texts: list[ClassTexts], encoder: TextEncoder, cache_dir: Path) -> TextBank:
    emb = cached_embeddings([t for ct in texts for t in _all_texts(ct)], encoder, cache_dir)
    names, descs, parts, temporal = [], [], [], []
    for ct in texts:
        mean = np.mean([emb[t] for t in ct.templates], axis=0)
        names.append(mean / np.linalg.norm(mean))
        descs.append(emb[ct.description] if ct.description else names[-1])
        parts.append(_slots(ct.parts, PART_NAMES, emb, encoder.dim))
        temporal.append(_slots(ct.temporal, TEMPORAL_NAMES, emb, encoder.dim))
    return TextBank(
        class_names=[ct.name for ct in texts],
        name=_stack(names),
        description=_stack(descs),
        parts=_stack([v for v, _ in parts]),
        parts_mask=_stack([m for _, m in parts]),
        temporal=_stack([v for v, _ in temporal]),
        temporal_mask=_stack([m for _, m in temporal]),
        fingerprint=fingerprint({"encoder": encoder.fingerprint(), "texts": texts}),
    )


def _stack(rows: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(rows))
