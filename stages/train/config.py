"""Stage-2 configuration in one place: one dataclass, printed at the start and saved with every run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from posebridge.cache.errors import UserError

CUE_MODES = ("none", "heatmap", "features", "all")
CALIBRATIONS = ("pseudo_unseen", "none")
# The method switches the presets (stages/train/presets.py) set: field -> allowed values.
CHOICES = {
    "optimizer": ("adamw", "adam"),
    "lr_schedule": ("cosine", "plateau"),
    "selection": ("last", "best_val_loss"),
    "projection": ("linear", "shared_mlp"),
    "temperature": ("exp", "direct"),
    "loss_reduce": ("mean", "sum"),
    "feature_norm": ("none", "cell_l2"),
    "shiftgcn_wd": ("single", "reference"),
    "ttr_order": ("fixed", "shuffled"),
    "ttr_refine": ("global", "all"),
    "ttr_schedule": ("constant", "cosine"),
    "ttr_logits": ("scaled", "cosine"),
    "view_align": ("none", "first", "mean"),  # stages/train/view_align.py VIEW_ALIGN_MODES
    "hubness": ("none", "csls"),  # stages/eval/hubness.py (the config layer cannot import it)
}
# Settings added after runs existed, at the value that does what was done before: at that value they
# stay out of run folder names (pipeline/run.py run_name), so earlier runs keep their folders.
# A run saved before such a setting existed is read back (evaluate, predict) at that value too.
UNNAMED_AT = {"view_align": "none", "hubness": "none", "temperature_init": 0.07, "soft_targets": 0.0}


@dataclass
class TrainConfig:
    split: str
    # The named preset these values start from (stages/train/presets.py) and the fields the user
    # gave explicitly on top of it (they win); both printed in the settings line, saved in config.json.
    preset: str = "posebridge"
    given: list[str] = dataclasses.field(default_factory=list)
    cues: str = "all"  # which pose-anchored cues enter the bridge: none | heatmap | features | all
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: int = 2
    grad_clip: float = 1.0  # 0: no clipping
    optimizer: str = "adamw"  # adamw (decoupled decay on weight matrices) | adam (PURLS: plain Adam)
    lr_schedule: str = "cosine"  # cosine (warmup, then cosine to 10%) | plateau (x0.1 after 25 flat val epochs)
    selection: str = "last"  # last epoch | best_val_loss (lowest loss on the seen validation side)
    # T the data loader resamples every clip to. 32 (was 64 until 2026-12-05): chosen with view_align
    # on the seen classes' validation sets of the published cells + JHMDB + MSR (bench/validate_published.py).
    num_frames: int = 32
    # 3D skeletons turned into the main actor's body frame after loading (stages/train/view_align.py):
    # none | first (the first frame's body axes: pyskl PreNormalize3D, the NTU pre-normalisation) |
    # mean (the axes averaged over the clip: the default since 2026-12-05, chosen on the same
    # validation; safer than first on noisy skeletons). 2D data, cue stores and feature folders stay as they are.
    view_align: str = "mean"
    dim: int = 128  # width of the skeleton / cue tokens
    joint_dim: int = 32  # per-joint width inside the skeleton encoder (kept small: it runs on T x V)
    layers: int = 2  # graph + temporal blocks in the skeleton encoder, each halving T
    skeleton_pool: int = 2  # frames averaged before the skeleton encoder (after motion is taken)
    cue_steps: int = 16  # temporal cue tokens per person (the authors' 16 cue tokens per video)
    heads: int = 4  # cross-attention heads of the bridge
    motion_bone: bool = True  # add motion (x[t+1]-x[t]) and bone (child-parent) input channels
    # Skeleton encoder (stages/train/encoders): gcn (small, trained with the heads), shiftgcn
    # (pretrained per split on the seen classes, frozen, features cached), auto (gcn for the
    # synthetic split and small data sets, shiftgcn otherwise: encoders.resolve_encoder).
    skeleton_encoder: str = "auto"
    shiftgcn_width: int = 64  # first units' channels; features are 4x wider (256, as published)
    shiftgcn_epochs: int = 140  # the reference's NTU schedule (lr / 10 at 60, 80, 100 of 140)
    shiftgcn_lr: float = 0.1
    shiftgcn_steps: int = 3  # time steps of the cached features (the community's feature files hold 3)
    # PURLS components, each off by default: class descriptions attend over joint x time tokens;
    # symmetric skeleton<->text contrastive loss per representation with learnable temperatures.
    adaptive_parts: bool = False
    symmetric_loss: bool = False
    text_encoder: str = "minilm"
    projection: str = "linear"  # linear: one Linear per kind (global / part / phase) | shared_mlp (PURLS)
    temperature: str = "exp"  # exp: logits = exp(s) * cos, capped at 100 (CLIP) | direct: s * cos (PURLS)
    loss_reduce: str = "mean"  # part / phase terms: mean over parts (phases) | sum (PURLS: 8 losses, weight 1)
    # In-process frozen Shift-GCN features: as they come (none) or each joint-step cell's C-vector
    # L2-normalised (cell_l2), as the community's feature folders are read (feature_folder.py).
    # cell_l2 since 2026-12-02: chosen on the real sets' seen classes (validation ZSL 40.4 vs 40.2
    # with 10 head epochs, 38.2 vs 37.3 with 30; docs/real-data-benchmark.md).
    feature_norm: str = "cell_l2"
    shiftgcn_wd: str = "single"  # single: 1e-4 on everything | reference: 1e-3 linear weights, 0 masks, 1e-4 rest
    # Prototype: mix * name + (1 - mix) * description (a class without a description: its name),
    # optionally through a shared residual adapter trained on the seen classes. Chosen on the real
    # sets' seen classes (bench/real_validate.py, docs/real-data-benchmark.md): the description alone
    # and no adapter transfer best to unseen classes (an adapter fitted to seen prototypes cost
    # 6 points of validation ZSL on JHMDB); until 2026-12-02 the defaults were 0.5 and True.
    proto_mix: float = 0.0
    text_adapter: bool = False  # shared residual MLP on the prototypes; False: the encoded texts as they are
    # The logit temperature the learnt scale starts from (CLIP's and PURLS's 0.07).
    temperature_init: float = 0.07
    # Share of the global loss's target taken from the texts' class similarities (losses.semantic_targets;
    # 0: one-hot, as before). Not used by the symmetric (PURLS) loss.
    soft_targets: float = 0.0
    # Loss weights: global InfoNCE, part-aware and temporal-segment alignment.
    w_global: float = 1.0
    w_part: float = 0.5
    w_temporal: float = 0.5
    # Weights of the part / segment scores added to the global score at inference.
    score_part: float = 0.3
    score_temporal: float = 0.3
    # Light, seeded augmentation: random temporal crop (fraction of T kept) and scale jitter.
    crop_min: float = 0.8
    scale_jitter: float = 0.1
    val_fraction: float = 0.1
    gzsl_calibration: str = "pseudo_unseen"  # pseudo_unseen | none
    calibration_epochs: int | None = None  # epochs of the auxiliary calibration model (None: = epochs)
    # Test-time refinement (DynaPURLS, stages/eval/refinement.py): TRANSDUCTIVE, off by default.
    # Defaults are DynaPURLS test.py's: Adam lr 1e-2, weight decay 1e-3, memory 16, confidence 0.1.
    ttr: bool = False
    ttr_lr: float = 1e-2
    ttr_weight_decay: float = 1e-3
    ttr_memory: int = 16  # samples kept per class (class-balanced memory)
    ttr_min_conf: float = 0.1  # softmax confidence a test sample needs to enter the memory
    ttr_steps: int = 1  # Adam steps per incoming test batch
    ttr_batch: int = 256  # test samples per incoming batch
    ttr_order: str = "fixed"  # fixed: the data's row order | shuffled: a permutation seeded by the run's seed
    ttr_refine: str = "global"  # global: the global prototypes only | all: also every part / phase text
    ttr_schedule: str = "constant"  # constant lr | cosine over the steps (DynaPURLS: T_max = steps, floor 0.1 lr)
    ttr_logits: str = "scaled"  # confidences from scale * scores (scaled) or from raw cosines (cosine, DynaPURLS)
    # ZSL scores lowered by each unseen prototype's CSLS hubness over the TRAINING clips' embeddings
    # (stages/eval/hubness.py; not transductive): none | csls. csls since 2026-12-05: chosen on the
    # seen classes' validation sets (bench/validate_published.py: mean ZSL 48.5 vs 46.4).
    hubness: str = "csls"
    device: str = "auto"  # auto | cpu | cuda

    def validate(self) -> "TrainConfig":
        from posebridge.stages.train.presets import preset_overrides

        preset_overrides(self.preset)  # an unknown name fails here
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} '{getattr(self, name)}' is unknown; use one of {', '.join(allowed)}")
        if self.cues not in CUE_MODES:
            raise UserError(f"--cues '{self.cues}' is unknown; use one of {', '.join(CUE_MODES)}")
        if self.gzsl_calibration not in CALIBRATIONS:
            raise UserError(f"--gzsl-calibration '{self.gzsl_calibration}' is unknown; use one of {', '.join(CALIBRATIONS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError(f"--epochs ({self.epochs}) and --batch-size ({self.batch_size}) must be >= 1")
        if not 0.0 < self.temperature_init or not 0.0 <= self.soft_targets <= 1.0:
            raise UserError(f"--temperature-init must be > 0 and --soft-targets in [0, 1]; got "
                            f"{self.temperature_init} and {self.soft_targets}")
        if not 0.0 < self.crop_min <= 1.0:
            raise UserError(f"crop_min must be in (0, 1], got {self.crop_min}")
        if self.ttr and self.gzsl_calibration == "pseudo_unseen":
            # gamma would be chosen on unrefined validation scores but applied to refined test scores
            raise UserError("--ttr refines prototypes on test data, which the pseudo-unseen GZSL calibration "
                            "cannot see; use --ttr with --gzsl-calibration none")
        from posebridge.stages.train.encoders import SKELETON_ENCODERS

        if self.skeleton_encoder not in SKELETON_ENCODERS:
            raise UserError(f"--skeleton-encoder '{self.skeleton_encoder}' is unknown; use one of "
                            f"{', '.join(SKELETON_ENCODERS)}")
        if self.cue_steps < 1 or self.shiftgcn_steps < 3:
            raise UserError(f"--cue-steps must be >= 1 and shiftgcn_steps >= 3 (one per phase); got "
                            f"{self.cue_steps} and {self.shiftgcn_steps}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"--device '{self.device}' is unknown; use auto, cpu or cuda")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        before = {k: v for k, v in UNNAMED_AT.items() if k not in data}  # saved before the setting existed
        return cls(**{**before, **{k: v for k, v in data.items() if k in known}})


# Views of the config: the concern-sized dataclasses (ModelArgs, LossWeights, ShiftGCNSettings,
# RefinementSettings) declare their fields that TrainConfig also holds with `config_field(name)`, so
# each such default lives only in TrainConfig, and their `from_config(cfg)` copies the run's values across.
CONFIG_FIELD = "train_config_field"  # metadata key: the TrainConfig field a view's field mirrors
OWN_FIELD = "not_the_config_field"  # metadata key: a same-named field that is another setting


def config_default(name: str):
    """TrainConfig's default for the field `name` (a KeyError names a field TrainConfig lacks)."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]


def config_field(name: str):
    """A view's field that mirrors TrainConfig's `name`: TrainConfig's default, and the link view_of follows."""
    return dataclasses.field(default=config_default(name), metadata={CONFIG_FIELD: name})


def own_field(default, why: str):
    """A view's field that shares a name with a TrainConfig field but is another setting (`why` says
    whose), so it keeps its own default; tests/stages/train/test_config.py accepts only these."""
    return dataclasses.field(default=default, metadata={OWN_FIELD: why})


def config_links(view: type) -> dict[str, str]:
    """{view field: TrainConfig field} for the fields of `view` declared with config_field."""
    return {f.name: f.metadata[CONFIG_FIELD] for f in dataclasses.fields(view) if CONFIG_FIELD in f.metadata}


def view_of(view: type, cfg: TrainConfig, **values):
    """`view` built from the run's config: every linked field copied from cfg, then `values` (the
    fields the config does not hold, or a value the data decides) on top."""
    return view(**{**{name: getattr(cfg, source) for name, source in config_links(view).items()}, **values})
