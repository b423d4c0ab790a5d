"""Building an mmpose top-down model offline: config, checkpoint, head kind, feature levels.

Model = a config shipped inside the mmpose wheel (`mmpose/.mim/configs/...`) or a local config
file, plus a LOCAL checkpoint file (never a URL; nothing is downloaded: the backbone's
`init_cfg` pretrained URL is dropped and `init_weights` never runs).

Two things keep the `mmpose` extra light on a CPU-only torch:
- mmcv-lite has no compiled ops, but `mmpose.models` imports `mmcv.ops` (for heads we never
  build); a stand-in `mmcv._ext` whose every op raises is registered when the real one is absent.
- `mmpose.apis` imports the visualiser, which imports torchvision; the registry's torchvision is
  built against CUDA torch and cannot be imported with the CPU wheel. So the model is built here
  with the same calls `mmpose.apis.init_model` makes (Config.fromfile + cfg options,
  init_default_scope, build_pose_estimator, revert_sync_batchnorm), and the checkpoint is loaded
  with `torch.load(weights_only=True)` and an allow-list (numpy arrays, dtypes and scalars, as in
  mmpose checkpoints' `meta`) and a strict `load_state_dict`, so a checkpoint that does not fit
  the config is an error, not a silently half-random model.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from posebridge.cache.errors import UserError

RTMPOSE_S_CONFIG = "body_2d_keypoint/rtmpose/coco/rtmpose-s_8xb256-420e_coco-256x192.py"
RTMPOSE_M_CONFIG = "body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py"
HRNET_W32_CONFIG = "body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"
DEFAULT_CONFIG = RTMPOSE_S_CONFIG  # the paper's HPE (see README: the authors' posebridge_rtmpose-s.pth)
# mmpose's own default inference options, minus test-time flipping (it doubles the cost and the
# cues would mix two forward passes).
CFG_OPTIONS = {"model.test_cfg.flip_test": False}


def _allow_mmcv_lite() -> None:
    """Let `mmpose.models` import under mmcv-lite: a stand-in `mmcv._ext` whose ops all raise.

    Its spec has no loader, so mmengine's `mmcv_full_available()` still answers False.
    """
    if "mmcv._ext" in sys.modules or importlib.util.find_spec("mmcv") is None:
        return
    try:
        if importlib.util.find_spec("mmcv._ext") is not None:
            return  # full mmcv: the real ops
    except (ImportError, ValueError):
        pass
    stub = types.ModuleType("mmcv._ext")
    stub.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)

    def missing(name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def op(*args, **kwargs):
            raise RuntimeError(f"mmcv op {name!r} is not in mmcv-lite; this model needs the full mmcv "
                               f"(built with MMCV_WITH_OPS=1)")
        return op

    stub.__getattr__ = missing
    sys.modules["mmcv._ext"] = stub


_allow_mmcv_lite()

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.model.utils import revert_sync_batchnorm  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpose.models import build_pose_estimator  # noqa: E402

import mmpose  # noqa: E402


def runtime_packages() -> tuple[str, ...]:
    """The installed distributions that compute this backend's numbers (mmcv is mmcv or mmcv-lite)."""
    mmcv = [d for d in ("mmcv", "mmcv-lite") if _installed(d)]
    return ("torch", "torchvision", "mmpose", "mmengine", *mmcv, "ai-edge-litert")


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
        return True
    except metadata.PackageNotFoundError:
        return False


def shipped_configs_root() -> Path:
    return Path(mmpose.__file__).parent / ".mim" / "configs"


def resolve_config(name: str | os.PathLike) -> Path:
    """A local config file, or a config shipped in the mmpose wheel (path below .mim/configs, or a unique file name)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    root = shipped_configs_root()
    if (root / name).is_file():
        return (root / name).resolve()
    matches = sorted(root.rglob(path.name)) if path.name.endswith(".py") else []
    if len(matches) == 1:
        return matches[0].resolve()
    raise UserError(f"mmpose config {str(name)!r} is neither a file nor {'one' if not matches else 'a unique'} "
                    f"config under {root}; e.g. {RTMPOSE_S_CONFIG}")


def _numpy_safe_globals() -> list:
    """What mmpose checkpoints' `meta` holds besides tensors: numpy arrays, dtypes and scalars."""
    from numpy.core.multiarray import _reconstruct, scalar

    dtype_classes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """The model weights in a local checkpoint (a bare state_dict or mmengine's {'state_dict': ..., 'meta': ...})."""
    text = str(path)
    if "://" in text:
        raise UserError(f"mmpose checkpoint {text!r} is a URL; download it yourself and pass the local file")
    path = Path(text).expanduser()
    if not path.is_file():
        raise UserError(f"mmpose checkpoint {path} is missing; pass an existing local .pth file "
                        f"(--mmpose-checkpoint or $POSEBRIDGE_MMPOSE_CHECKPOINT)")
    try:
        # weights_only: unpickling runs no code but tensors, containers and the allow-listed numpy types.
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001: any unreadable file is the user's to fix
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"mmpose checkpoint {path} cannot be read as tensors + numpy only ({first[:200]}); "
                        f"save just its state_dict: torch.save(torch.load(P, weights_only=False)"
                        f"['state_dict'], OUT) where you trust P") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"mmpose checkpoint {path} holds no state_dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


@dataclass(frozen=True)
class HeadKind:
    """What the model's head outputs: "heatmap" ([N, K, h, w]) or "simcc" (x [N, K, Wx], y [N, K, Hy])."""

    kind: str
    simcc_split_ratio: float = 0.0
    softmax_beta: float = 1.0  # SimCC: the distribution is softmax(beta * logits), as the loss trained it


def head_kind(cfg: Config, config_path: Path) -> HeadKind:
    head = cfg.model.head
    codec = head.get("decoder") or {}
    if codec.get("type") == "SimCCLabel":
        loss = head.get("loss") or {}
        # KLDiscretLoss compares softmax(beta * prediction) with the target distribution
        # (mmpose/models/losses/classification_loss.py), so that is the model's distribution.
        beta = float(loss.get("beta", 1.0)) if loss.get("type") == "KLDiscretLoss" else 1.0
        return HeadKind("simcc", float(codec.get("simcc_split_ratio", 2.0)), beta)
    if codec.get("type") in ("MSRAHeatmap", "UDPHeatmap", "MegviiHeatmap"):
        return HeadKind("heatmap")
    raise UserError(f"mmpose config {config_path.name} decodes with {codec.get('type')}; supported: SimCC heads "
                    f"(RTMPose) and heatmap heads (HRNet, SimpleBaseline)")


def load_config(config_path: Path) -> Config:
    """The config with its `_base_` files merged in and our inference options applied."""
    cfg = Config.fromfile(str(config_path))
    if cfg.model.get("type") != "TopdownPoseEstimator":
        raise UserError(f"mmpose config {config_path} is a {cfg.model.get('type')}; only top-down models are "
                        f"supported")
    cfg.merge_from_dict(CFG_OPTIONS)
    if "init_cfg" in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None  # a pretrained-backbone URL: never fetched
    cfg.model.train_cfg = None
    return cfg


def resolved_config(cfg: Config) -> dict:
    """The fully resolved config as plain data, for the fingerprint (any change in a _base_ file shows)."""
    import json

    return json.loads(json.dumps(cfg.to_dict(), default=repr, sort_keys=True))


def build_architecture(config_path: Path):
    """The config's model with random weights, as mmpose.apis.init_model builds it (checkpoint=None),
    without importing mmpose.apis (see the module docstring)."""
    cfg = load_config(config_path)
    head_kind(cfg, config_path)  # refuse unsupported heads before building
    init_default_scope(cfg.get("default_scope", "mmpose"))
    model = revert_sync_batchnorm(build_pose_estimator(cfg.model))
    model.cfg = cfg
    return model


def build_model(config_path: Path, checkpoint: str | os.PathLike, device: str):
    """The config's model with the checkpoint's weights (strictly matched), in eval mode on device."""
    state = load_state_dict_file(checkpoint)  # first: a bad path fails before the model is built
    model = build_architecture(config_path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else ""
        raise UserError(f"mmpose checkpoint {checkpoint} does not fit config {config_path.name}: "
                        f"{detail[:300]}") from None
    return model.to(device).eval()


def level_modules(model) -> dict[str, torch.nn.Module]:
    """Feature levels a forward hook can read: the whole backbone (its outputs), the neck if any, and
    the backbone's stages by name (CSPNeXt: stem, stage1..stage4; HRNet: stage2..stage4; ResNet: layer1..4)."""
    modules = {"backbone": model.backbone}
    if getattr(model, "with_neck", False):
        modules["neck"] = model.neck
    for name, child in model.backbone.named_children():
        if name == "stem" or name.startswith(("stage", "layer")):
            modules[name] = child
    return modules
