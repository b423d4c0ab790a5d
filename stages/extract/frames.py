"""Decoded frames that can be cropped without converting the whole picture to RGB.

The pose models only ever see small warped crops (224x224 for the detector, 256x256 for the
landmark model). Converting a 1080p frame to RGB costs more than warping, so a YUV frame warps
its planes first and converts just the crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
# A chroma sample covers a 2x2 luma block, so chroma pixel (u, v) is centred on luma pixel
# (2u + 0.5, 2v + 0.5) (OpenCV pixel-centre coordinates); these map chroma <-> luma pixels.
_CHROMA_TO_LUMA = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
_LUMA_TO_CHROMA = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25]])


@dataclass
class RGBFrame:
    rgb: np.ndarray  # [H, W, 3] uint8

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    def warp(self, matrix: np.ndarray, size: int, border: str = "constant", value: int = 0) -> np.ndarray:
        """RGB uint8 [size, size, 3]; `matrix` (2x3) maps image pixels to output pixels."""
        return cv2.warpAffine(self.rgb, matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=_BORDERS[border], borderValue=(value, value, value))

    def to_rgb(self) -> np.ndarray:
        return self.rgb


@dataclass
class YUV420Frame:
    """The three I420 planes, as [H, W], [H/2, W/2], [H/2, W/2] uint8 arrays.

    `from_av` wraps a PyAV frame's own buffers without copying them (rows may be padded: the
    planes are strided views), which saves a 3 MB copy per 1080p frame in the decode thread.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @classmethod
    def from_i420(cls, i420: np.ndarray) -> "YUV420Frame":
        """From one packed [H*3/2, W] array (`to_ndarray(format='yuv420p')`, `COLOR_RGB2YUV_I420`)."""
        h, w = i420.shape[0] * 2 // 3, i420.shape[1]
        u, v = i420[h:].reshape(2, h // 2, w // 2)
        return cls(i420[:h], u, v)

    @classmethod
    def from_av(cls, frame) -> "YUV420Frame":
        """Zero-copy views of an `av.VideoFrame` in yuv420p (the views keep the frame alive)."""
        def plane(index: int, height: int, width: int) -> np.ndarray:
            p = frame.planes[index]
            return np.frombuffer(p, np.uint8).reshape(height, p.line_size)[:, :width]

        h, w = frame.height, frame.width
        return cls(plane(0, h, w), plane(1, h // 2, w // 2), plane(2, h // 2, w // 2))

    @property
    def height(self) -> int:
        return self.y.shape[0]

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def i420(self) -> np.ndarray:
        """The planes packed into one [H*3/2, W] array (a copy)."""
        return np.concatenate([self.y.ravel(), self.u.ravel(), self.v.ravel()]).reshape(-1, self.width)

    def warp(self, matrix: np.ndarray, size: int, border: str = "constant", value: int = 0) -> np.ndarray:
        mode = _BORDERS[border]
        # A constant border must come out as RGB (value, value, value): neutral chroma is 128.
        luma = int(round(16 + value * 219 / 255))  # BT.601 limited range, as COLOR_YUV2RGB_I420 reads it
        y_out = cv2.warpAffine(self.y, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode,
                               borderValue=luma)
        m_uv = _LUMA_TO_CHROMA @ np.vstack([matrix, [0, 0, 1]]) @ _CHROMA_TO_LUMA
        half = size // 2
        u_out = cv2.warpAffine(self.u, m_uv, (half, half), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=128)
        v_out = cv2.warpAffine(self.v, m_uv, (half, half), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=128)
        i420 = np.concatenate([y_out, u_out.reshape(-1, size), v_out.reshape(-1, size)], axis=0)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)

    def to_rgb(self) -> np.ndarray:
        return cv2.cvtColor(self.i420, cv2.COLOR_YUV2RGB_I420)
