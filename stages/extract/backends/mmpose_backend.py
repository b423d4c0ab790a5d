"""The optional mmpose backend: a top-down mmpose heatmap model (HRNet, SimpleBaseline, ...).

Per frame: our own BlazePose detector (blazepose_detector.py, no mmdet) finds the person and its
two alignment points give the rotated ROI (blazepose_roi.py); the ROI is cropped to the model's
input size (height = ROI side, width by the model's aspect ratio, person upright); the model runs
once; keypoints are decoded from its heatmaps by the model's own codec and mapped back to image
pixels; cues are sampled from the same forward pass: the head's heatmaps and the backbone (and
neck) feature maps, read by forward hooks.

Model = a config shipped inside the mmpose wheel (`mmpose/.mim/configs/...`, default HRNet-w32
256x192 COCO) or a local config file, plus a LOCAL checkpoint file (never a URL; nothing is
downloaded: the backbone's `init_cfg` pretrained URL is dropped and `init_weights` never runs).

Installed from the `mmpose` extra in a venv of its own (`make test-mmpose`). Two things keep it
light on a CPU-only torch:
- mmcv-lite has no compiled ops, but `mmpose.models` imports `mmcv.ops` (for heads we never
  build); a stand-in `mmcv._ext` whose every op raises is registered when the real one is absent.
- `mmpose.apis` imports the visualiser, which imports torchvision; the registry's torchvision is
  built against CUDA torch and cannot be imported with the CPU wheel. So the model is built here
  with the same calls `mmpose.apis.init_model` makes (Config.fromfile + cfg options,
  init_default_scope, build_pose_estimator, revert_sync_batchnorm), and the checkpoint is loaded
  with `torch.load(weights_only=True)` (numpy arrays allowed, as in mmpose checkpoints' meta) and
  a strict `load_state_dict`, so a checkpoint that does not fit the config is an error, not a
  silently half-random model.

Layout differences from the embedded backend:
- joint_names are COCO-17; keypoints [17, 5] = x/W, y/H, 0 (no depth), score, score, where score
  is mmpose's keypoint score (the heatmap peak) clipped to [0, 1]; FrameCues.score is the
  detector's person score.
- Cue joints (ExtractConfig.cues.joints) stay BlazePose-33 indices everywhere in the project; here
  they are mapped to COCO-17 by BLAZEPOSE_TO_COCO (BODY13, the default, maps to 13 COCO joints).
- Levels are this backend's own: "backbone" (every backbone output, concatenated) and "neck" (when
  the model has one); pass `--levels backbone`. Features are raw activations (no pinned RMS scale
  as for BlazePose); heatmaps are the head's output clipped to [0, 1] (no sigmoid: mmpose heatmap
  heads regress Gaussians in [0, 1]).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np

from posebridge.pipeline.config import ExtractConfig
from posebridge.pipeline.errors import UserError

from .. import cues as cue_sampling
from . import blazepose_roi as geometry
from .base import FrameCues
from .blazepose import pinned_model_files
from .blazepose_detector import PoseDetector

COCO17_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
# BlazePose-33 index -> COCO-17 index, for every BlazePose joint that COCO has.
BLAZEPOSE_TO_COCO = {0: 0, 2: 1, 5: 2, 7: 3, 8: 4, 11: 5, 12: 6, 13: 7, 14: 8, 15: 9, 16: 10,
                     23: 11, 24: 12, 25: 13, 26: 14, 27: 15, 28: 16}
DEFAULT_CONFIG = "body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"
CHECKPOINT_ENV = "POSEBRIDGE_MMPOSE_CHECKPOINT"
CONFIG_ENV = "POSEBRIDGE_MMPOSE_CONFIG"
INSTALL_HINT = "run `make test-mmpose` (builds .venv-mmpose) or `pip install -e '.[mmpose]'`"


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
                    f"config under {root}; e.g. {DEFAULT_CONFIG}")


def _numpy_safe_globals() -> list:
    """What mmpose checkpoints' `meta` holds besides tensors: numpy arrays, dtypes and scalars."""
    from numpy.core.multiarray import _reconstruct, scalar

    dtype_classes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """The model weights in a local checkpoint (a bare state_dict or mmengine's {'state_dict': ...})."""
    text = str(path)
    if "://" in text:
        raise UserError(f"mmpose checkpoint {text!r} is a URL; download it yourself and pass the local file")
    path = Path(text).expanduser()
    if not path.is_file():
        raise UserError(f"mmpose checkpoint {path} is missing; pass an existing local .pth file "
                        f"(${CHECKPOINT_ENV})")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001: any unreadable file is the user's to fix
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"mmpose checkpoint {path} cannot be read as tensors + numpy only ({first}); "
                        f"save just its state_dict: torch.save(torch.load(P, weights_only=False)"
                        f"['state_dict'], OUT)") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"mmpose checkpoint {path} holds no state_dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def build_architecture(config_path: Path):
    """The config's model with random weights, as mmpose.apis.init_model builds it (checkpoint=None),
    without importing mmpose.apis (see the module docstring)."""
    cfg = Config.fromfile(str(config_path))
    if cfg.model.get("type") != "TopdownPoseEstimator":
        raise UserError(f"mmpose config {config_path} is a {cfg.model.get('type')}; only top-down heatmap "
                        f"models are supported")
    cfg.merge_from_dict({"model.test_cfg.flip_test": False, "model.test_cfg.output_heatmaps": True})
    if "init_cfg" in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None  # a pretrained-backbone URL: never fetched
    cfg.model.train_cfg = None
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


def _as_maps(output) -> list:
    """A module's output (a tensor, or a tuple/list of them) as a list of [C, H, W] tensors (batch item 0)."""
    if torch.is_tensor(output):
        return [output[0]]
    return [t[0] for t in output if torch.is_tensor(t)]


class MMPoseBackend:
    name = "mmpose"
    joint_names = COCO17_JOINTS

    def __init__(self, config: ExtractConfig, models_dir: Path, num_threads: int = 2,
                 checkpoint: str | os.PathLike | None = None, model_config: str | os.PathLike | None = None,
                 device: str | None = None):
        self.config = config
        checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV)
        if not checkpoint:
            raise UserError(f"the mmpose backend needs a local checkpoint file: --mmpose-checkpoint PATH "
                            f"(or ${CHECKPOINT_ENV}=PATH) "
                            f"(weights for the config {model_config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG})")
        self._config_path = resolve_config(model_config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
        self._cue_joints = self._coco_cue_joints(config.cues.joints)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            torch.set_num_threads(max(1, num_threads))
        self._detector_file = pinned_model_files(models_dir)["pose_detection"]
        self._detector = PoseDetector(self._detector_file, config.min_detection_score, num_threads)
        self.model = build_model(self._config_path, checkpoint, self.device)  # refuses URLs and missing files
        self._checkpoint = Path(str(checkpoint)).expanduser()

        codec = self.model.head.decoder
        self.input_w, self.input_h = (int(s) for s in codec.input_size)
        preprocessor = self.model.data_preprocessor
        # mmpose reads images as BGR; the preprocessor's channel conversion means the model sees RGB.
        self._rgb_input = bool(getattr(preprocessor, "_channel_conversion", False))
        self._mean = preprocessor.mean.detach().to(self.device).reshape(1, 3, 1, 1).float()
        self._std = preprocessor.std.detach().to(self.device).reshape(1, 3, 1, 1).float()

        self._captured: dict[str, object] = {}
        modules = {"backbone": self.model.backbone}
        if getattr(self.model, "with_neck", False):
            modules["neck"] = self.model.neck
        unknown = [lv for lv in config.cues.levels if lv not in modules]
        if unknown or not config.cues.levels:
            raise UserError(f"the mmpose backend samples its own feature levels, not {','.join(unknown) or 'none'}: "
                            f"pass --levels {','.join(modules)}")
        for level in config.cues.levels:
            modules[level].register_forward_hook(self._capture(level))
        heatmaps, levels = self._forward(np.zeros((self.input_h, self.input_w, 3), np.uint8))
        if heatmaps.ndim != 3 or heatmaps.shape[0] != len(COCO17_JOINTS):
            raise UserError(f"mmpose config {self._config_path.name} does not give 17 COCO heatmaps "
                            f"(head output {tuple(heatmaps.shape)}); only COCO-17 heatmap heads are supported")
        self._channels = sum(grid.shape[2] for maps in levels.values() for grid in maps)
        self.stats = {"frames": 0, "detector_calls": 0, "landmark_calls": 0, "frames_without_person": 0}

    @staticmethod
    def _coco_cue_joints(joints) -> np.ndarray:
        bad = [j for j in joints if j not in BLAZEPOSE_TO_COCO]
        if bad:
            raise UserError(f"cue joints {bad} (BlazePose indices) have no COCO-17 counterpart in the mmpose "
                            f"backend; use --joints body13 or some of {sorted(BLAZEPOSE_TO_COCO)}")
        return np.array([BLAZEPOSE_TO_COCO[j] for j in joints], np.intp)

    def _capture(self, level: str):
        def hook(module, inputs, output):
            self._captured[level] = output
        return hook

    def feature_channels(self) -> int:
        return self._channels

    def model_files(self) -> dict[str, Path]:
        return {"pose_detection": self._detector_file, "mmpose_checkpoint": self._checkpoint,
                "mmpose_config": self._config_path}

    def reset(self) -> None:
        pass  # the detector runs on every frame: no state between frames

    @torch.no_grad()
    def _forward(self, crop_rgb: np.ndarray) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
        """Heatmaps [K, h, w] and, per level, [H, W, C] maps of one input-sized RGB crop."""
        x = torch.from_numpy(np.ascontiguousarray(crop_rgb if self._rgb_input else crop_rgb[..., ::-1]))
        x = x.to(self.device).permute(2, 0, 1)[None].float()
        x = (x - self._mean) / self._std
        self._captured.clear()
        heatmaps = self.model(x, None, mode="tensor")
        if not torch.is_tensor(heatmaps):
            raise UserError("the mmpose model's head does not output heatmaps (SimCC / regression heads are "
                            "not supported); use a topdown_heatmap config")
        levels = {name: [m.permute(1, 2, 0).float().cpu().numpy() for m in _as_maps(out)]
                  for name, out in self._captured.items()}
        return heatmaps[0].float().cpu().numpy(), levels

    def _image_to_crop(self, roi: geometry.Roi) -> np.ndarray:
        """2x3 map from image pixels to the input crop: ROI side -> input height, person upright."""
        linear = geometry._rotation(roi.rotation).T * (self.input_h / roi.side)
        offset = np.array([self.input_w / 2, self.input_h / 2]) - linear @ np.asarray(roi.center)
        return np.hstack([linear, offset[:, None]])

    def process(self, frame) -> FrameCues:
        """Pose and cues of one RGBFrame or YUV420Frame."""
        self.stats["frames"] += 1
        self.stats["detector_calls"] += 1
        detection = self._detector.detect(frame)
        if detection is None:
            self.stats["frames_without_person"] += 1
            return self._no_person()
        roi = geometry.roi_from_alignment_points(detection.keypoints[0], detection.keypoints[1])
        to_crop = self._image_to_crop(roi)
        side = max(self.input_w, self.input_h)  # frames warp to squares; the crop is its top-left part
        crop = frame.warp(geometry.cv2_matrix(to_crop), side, border="replicate")[: self.input_h, : self.input_w]
        self.stats["landmark_calls"] += 1
        heatmaps, levels = self._forward(crop)
        # The codec's keypoints are in input pixels, OpenCV convention (pixel centres at integers).
        keypoints_px, scores = self.model.head.decoder.decode(heatmaps)
        kp_input, score = keypoints_px[0].astype(np.float64), np.clip(scores[0], 0.0, 1.0)
        image_xy = geometry.apply(geometry.invert(to_crop), kp_input + 0.5)
        keypoints = np.zeros((len(COCO17_JOINTS), 5), np.float32)
        keypoints[:, 0] = image_xy[:, 0] / frame.width
        keypoints[:, 1] = image_xy[:, 1] / frame.height
        keypoints[:, 3] = score
        keypoints[:, 4] = score
        features, patches = self._sample_cues(kp_input[self._cue_joints], heatmaps, levels)
        return FrameCues(keypoints, float(detection.score), features, patches)

    def _sample_cues(self, xy_input: np.ndarray, heatmaps: np.ndarray,
                     levels: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """cues.sample_cues's sampling for a non-square input crop in mmpose's pixel convention.

        Grid cell i of a map s times smaller than the input is centred on input pixel s * i (as
        mmpose's codecs encode), so the heatmap patch is centred on the decoded peak.
        """
        cfg = self.config.cues
        offsets = np.linspace(-cfg.window_radius, cfg.window_radius, cfg.window) if cfg.window > 1 else np.zeros(1)
        dx, dy = np.meshgrid(offsets, offsets, indexing="xy")
        window = xy_input[:, None, :] + np.stack([dx.ravel(), dy.ravel()], axis=1)  # [Vc, k*k, 2] input px
        parts = []
        for name in cfg.levels:
            for grid in levels[name]:
                sx, sy = grid.shape[1] / self.input_w, grid.shape[0] / self.input_h
                rows, cols, weights = cue_sampling._bilinear_corners(grid.shape, window[..., 0] * sx,
                                                                     window[..., 1] * sy)
                scale = 1 / weights.shape[2]
                parts.append(np.einsum("qvk,qvkc->vc", (weights * scale).astype(grid.dtype), grid[rows, cols]))
        features = np.concatenate(parts, axis=1).astype(np.float32)

        hm = np.moveaxis(heatmaps, 0, -1)  # [h, w, K]
        sx, sy = hm.shape[1] / self.input_w, hm.shape[0] / self.input_h
        steps = np.arange(cfg.heatmap_patch) - (cfg.heatmap_patch - 1) / 2
        px = xy_input[:, 0, None, None] * sx + steps[None, None, :]  # [Vc, 1, P]
        py = xy_input[:, 1, None, None] * sy + steps[None, :, None]  # [Vc, P, 1]
        rows, cols, weights = cue_sampling._bilinear_corners(hm.shape, *np.broadcast_arrays(px, py))
        corners = np.clip(hm[rows, cols, self._cue_joints[:, None, None]], 0.0, 1.0)  # [4, Vc, P, P]
        patches = (weights * corners).sum(axis=0)
        return features, patches.astype(np.float32)

    def _no_person(self) -> FrameCues:
        cue = self.config.cues
        return FrameCues(np.zeros((len(COCO17_JOINTS), 5), np.float32), 0.0,
                         np.zeros((len(cue.joints), self._channels), np.float32),
                         np.zeros((len(cue.joints), cue.heatmap_patch, cue.heatmap_patch), np.float32))
