"""The public interface of stage-2 training for the layers above it (stages/eval, pipeline
may use more): exactly what evaluating a trained model needs. stages/eval imports train only from
here (tests/test_layers.py checks it), so train's internals can change without touching evaluation.

- the model and its inputs: TrainConfig (and config_field / view_of, to declare a view of it), ModelArgs, PoseBridge, Visual, ClassTextTensors
- data on the device: CueDataset, partition, DeviceData, to_device, with_encoder_features,
  take_batch, autocast, resolve_device, CPU_THREADS
- a run's checkpoint, its model and text bank: load_checkpoint, load_trained, TrainedModel,
  check_compatible, TextBank, class_text_tensors
"""
from posebridge.stages.train.checkpoint import load_checkpoint
from posebridge.stages.train.config import TrainConfig, config_field, view_of
from posebridge.stages.train.data import CueDataset, partition
from posebridge.stages.train.heads import ClassTextTensors, ModelArgs, PoseBridge, Visual
from posebridge.stages.train.loop import (CPU_THREADS, DeviceData, autocast, check_compatible, class_text_tensors,
                                          resolve_device, take_batch, to_device, with_encoder_features)
from posebridge.stages.train.text_bank import TextBank
from posebridge.stages.train.trained import TrainedModel, load_trained

__all__ = ["CPU_THREADS", "ClassTextTensors", "CueDataset", "DeviceData", "ModelArgs", "PoseBridge", "TextBank",
           "TrainConfig", "TrainedModel", "Visual", "autocast", "check_compatible", "class_text_tensors",
           "config_field", "load_checkpoint", "load_trained", "partition", "resolve_device", "take_batch",
           "to_device", "view_of", "with_encoder_features"]
