"""Shift-GCN (Cheng et al., CVPR 2020) in pure PyTorch: no CUDA kernel, runs on CPU and GPU alike.

Read from kchengiva/Shift-GCN (model/shift_gcn.py; model/Temporal_shift/cuda/shift_cuda_kernel.cu)
and rewritten here:

- spatial shift: channel j of joint i reads channel j of joint (i + j) mod V before the pointwise
  linear map, and joint (i - j) mod V after it (the reference's `shift_in` / `shift_out` index
  arrays), applied as one index gather over the flattened (joint, channel) axis; a learnable
  per-(joint, channel) mask tanh(m) + 1 (init 1) scales the shifted input.
- temporal shift: each channel is shifted along time by its own learnable, real-valued offset
  (init uniform in [-1, 1]) with linear interpolation and zero padding; stride 2 samples every
  second frame and adds half a frame to the offset, as the reference's ShiftFunction does. The
  reference rescales the offset's gradient to a fixed step inside its kernel; here autograd's plain
  gradient is used.
- ten units 64-64-64-64-128-128-128-256-256-256 channels (stride 2 at the 5th and 8th), a
  BatchNorm over the (joint, channel) input, global average pooling, one linear classifier.

Persons are folded into the batch by the caller (stages/train/persons.py) and averaged after the
network, as the reference averages over M. `features()` returns the joint x time map [B, 4w, T/4, V]
before pooling: what SynSE / PURLS cache as `*_feature.npy` and what the heads consume.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 3  # x, y, z, as in the reference


def spatial_shift_index(num_joints: int, channels: int, direction: int) -> torch.Tensor:
    """Index into the flattened [V*C] axis: output (i, j) <- input ((i + direction*j) mod V, j)."""
    joint = torch.arange(num_joints).view(-1, 1)
    channel = torch.arange(channels).view(1, -1)
    source = (joint + direction * channel) % num_joints
    return (source * channels + channel).flatten()


# Above this many frames of learned offset the two-tap convolution's kernel (2 * pad + 1 taps per
# output) costs more than reading the two frames by index, whose cost does not grow with the offset.
MAX_CONV_PAD = 6


def temporal_shift(x: torch.Tensor, shift: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """x [B, C, T, V], shift [C] (frames, real) -> [B, C, ceil(T/stride), V]:
    out[:, c, t] = x[:, c, t*stride + shift_c] with linear interpolation, zero outside [0, T).

    Two implementations of the same function (float64 gradients equal to 4e-16): a depthwise
    convolution whose per-channel kernel has two non-zero taps (1.2-3.7x faster on CPU than gather +
    scatter while the offsets are small, as they start), and the gather of the two frames, whose cost
    does not grow when training pushes an offset far (plain autograd steps can)."""
    if stride > 1:
        shift = shift + 0.5  # the reference samples between frames when it strides
    low = torch.floor(shift)
    pad = int(low.abs().max().item()) + 2  # every channel's two taps lie within pad frames
    if pad <= MAX_CONV_PAD:
        return _conv_shift(x, shift, low, pad, stride)
    return _gather_shift(x, shift, low, pad, stride)


def _conv_shift(x, shift, low, pad, stride):
    c = x.shape[1]
    frac = (shift - low).view(-1, 1)
    taps = torch.arange(2 * pad + 1, device=x.device).view(1, -1)
    first = low.long().view(-1, 1) + pad
    weight = (1 - frac) * (taps == first) + frac * (taps == first + 1)  # [C, 2 pad + 1]
    return F.conv2d(x, weight.to(x.dtype).view(c, 1, -1, 1), stride=(stride, 1), padding=(pad, 0), groups=c)


def _gather_shift(x, shift, low, pad, stride):
    b, c, t, v = x.shape
    frac = (shift - low).view(1, c, 1, 1)
    out_t = math.ceil(t / stride)
    padded = F.pad(x, (0, 0, pad, pad))  # zeros before and after in time
    base = torch.arange(out_t, device=x.device) * stride + pad  # [T']
    first = (base.view(1, -1) + low.long().view(-1, 1)).clamp(0, t + 2 * pad - 2)  # [C, T']
    index = first.view(1, c, out_t, 1).expand(b, c, out_t, v)
    return padded.gather(2, index) * (1 - frac) + padded.gather(2, index + 1) * frac


class TemporalShift(nn.Module):
    def __init__(self, channels: int, stride: int = 1, init_scale: float = 1.0):
        super().__init__()
        self.stride = stride
        self.shift = nn.Parameter(torch.empty(channels).uniform_(-init_scale, init_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.shift, self.stride)


class ShiftTCN(nn.Module):
    """BN -> shift -> pointwise conv -> ReLU -> shift (strided) -> BN."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(channels)
        self.shift_in = TemporalShift(channels, 1)
        self.linear = nn.Conv2d(channels, channels, 1)
        nn.init.kaiming_normal_(self.linear.weight, mode="fan_out")
        self.shift_out = TemporalShift(channels, stride)
        self.bn_out = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_out(self.shift_out(F.relu(self.linear(self.shift_in(self.bn_in(x))))))


class ShiftGCNLayer(nn.Module):
    """Spatial shift -> masked pointwise linear -> shift back -> BN, plus a (projected) residual."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int):
        super().__init__()
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(in_channels, out_channels) * math.sqrt(1.0 / out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.mask = nn.Parameter(torch.zeros(num_joints, in_channels))  # tanh(0) + 1 = 1 at the start
        self.bn = nn.BatchNorm1d(num_joints * out_channels)
        self.register_buffer("shift_in", spatial_shift_index(num_joints, in_channels, +1), persistent=False)
        self.register_buffer("shift_out", spatial_shift_index(num_joints, out_channels, -1), persistent=False)
        self.down = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
                     if in_channels != out_channels else nn.Identity())

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x0.shape
        x = x0.permute(0, 2, 3, 1).reshape(n * t, v * c).index_select(1, self.shift_in).view(n * t, v, c)
        x = (x * (torch.tanh(self.mask) + 1)) @ self.weight + self.bias
        x = self.bn(x.reshape(n * t, v * self.out_channels).index_select(1, self.shift_out))
        x = x.view(n, t, v, self.out_channels).permute(0, 3, 1, 2)
        return F.relu(x + self.down(x0))


class ShiftUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_joints: int, stride: int = 1, residual: bool = True):
        super().__init__()
        self.gcn = ShiftGCNLayer(in_channels, out_channels, num_joints)
        self.tcn = ShiftTCN(out_channels, stride)
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:  # the reference's 1x1 `tcn` with stride, applied as every stride-th frame + a 1x1 conv
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x))
        if self.residual is not None:
            # The same function as Conv2d(stride=(s, 1)), which oneDNN (torch 2.13 CPU) runs into a hang or
            # a crash in its backward on the channels-last input this network carries when a layer has
            # fewer than 8 channels (width 4); a stride-1 1x1 conv is safe, and as fast.
            res = self.residual(x[:, :, ::self.stride])
            out = out + res[:, :, : out.shape[2]]
        return F.relu(out)


class ShiftGCN(nn.Module):
    """keypoints [B, T, V, 3] (persons folded into B) -> joint x time features [B, 4w, ceil(T/4), V];
    `forward` adds pooling and the classifier used for pretraining."""

    def __init__(self, num_joints: int, num_classes: int, width: int = 64):
        super().__init__()
        w = width
        plan = [(IN_CHANNELS, w, 1, False), (w, w, 1, True), (w, w, 1, True), (w, w, 1, True),
                (w, 2 * w, 2, True), (2 * w, 2 * w, 1, True), (2 * w, 2 * w, 1, True),
                (2 * w, 4 * w, 2, True), (4 * w, 4 * w, 1, True), (4 * w, 4 * w, 1, True)]
        self.data_bn = nn.BatchNorm1d(num_joints * IN_CHANNELS)
        self.units = nn.ModuleList(ShiftUnit(i, o, num_joints, s, r) for i, o, s, r in plan)
        self.out_channels = 4 * w
        self.fc = nn.Linear(4 * w, num_classes)
        nn.init.normal_(self.fc.weight, 0, math.sqrt(2.0 / num_classes))

    def features(self, keypoints: torch.Tensor) -> torch.Tensor:
        b, t, v, c = keypoints.shape
        x = self.data_bn(keypoints.permute(0, 2, 3, 1).reshape(b, v * c, t))
        x = x.view(b, v, c, t).permute(0, 2, 3, 1).contiguous()  # [B, C, T, V]
        for unit in self.units:
            x = unit(x)
        return x

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(keypoints).mean(dim=(2, 3)))
