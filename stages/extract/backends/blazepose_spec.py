"""Facts about the two pinned BlazePose model files, in one place.

The tensor names below exist in exactly the landmark file whose sha256 is pinned here
(MediaPipe 0.10.21 wheel); tests/stages/extract/test_blazepose.py fails if the file or a name changes.
"""
from __future__ import annotations

from dataclasses import dataclass

DETECTOR_FILE = "pose_detection.tflite"
LANDMARK_FILE = "pose_landmark_full.tflite"
DETECTOR_SHA256 = "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"
LANDMARK_SHA256 = "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"

DETECTOR_INPUT_SIZE = 224
LANDMARK_INPUT_SIZE = 256

# Landmark model outputs (graph split order): 39x5 landmarks, pose presence (already a sigmoid),
# 64x64x39 heatmap logits.
LANDMARKS_TENSOR = "Identity"
PRESENCE_TENSOR = "Identity_1"
HEATMAP_TENSOR = "Identity_3"
NUM_LANDMARKS = 39  # 33 BlazePose joints + 2 ROI-tracking aux points + 4 unused
AUX_ROI_POINTS = (33, 34)  # hip centre, body size/rotation point

# Detector outputs: [2254, 12] regressors (face box x,y,w,h + 4 keypoints), [2254, 1] score logits.
DETECTOR_BOXES_TENSOR = "Identity"
DETECTOR_SCORES_TENSOR = "Identity_1"


@dataclass(frozen=True)
class FeatureLevel:
    tensor: str
    size: int  # H == W of the map
    channels: int
    rms: float  # root mean square of the whole map over messi5.jpg + cam01/cam02 ROI crops (201 crops)


_FPN8_TENSOR = (
    "model_1/model/re_lu_33/Relu6;model_1/model/batch_normalization_48/FusedBatchNormV3;"
    "model_1/model/conv2d_31/BiasAdd/ReadVariableOp/resource;model_1/model/conv2d_31/BiasAdd;"
    "model_1/model/depthwise_conv2d_33/depthwise;model_1/model/conv2d_31/Conv2D1"
)

# Short names used by CueConfig.levels. fpn*: the top-down decoder that feeds the heatmap head
# (48 channels each); enc*: backbone stage outputs (residual sums, large magnitudes).
FEATURE_LEVELS: dict[str, FeatureLevel] = {
    "fpn64": FeatureLevel("model_1/model/add_11/add", 64, 48, rms=4.0),
    "fpn32": FeatureLevel("model_1/model/add_10/add", 32, 48, rms=3.3),
    "fpn16": FeatureLevel("model_1/model/add_9/add", 16, 48, rms=2.6),
    "fpn8": FeatureLevel(_FPN8_TENSOR, 8, 48, rms=1.9),
    "enc16": FeatureLevel("model_1/model/add_5/add", 16, 88, rms=44.0),
    "enc8": FeatureLevel("model_1/model/add_8/add", 8, 144, rms=27.0),
}
