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
    """I420 planes as PyAV hands them out (`frame.to_ndarray(format='yuv420p')`: [H*3/2, W])."""

    i420: np.ndarray

    @property
    def height(self) -> int:
        return self.i420.shape[0] * 2 // 3

    @property
    def width(self) -> int:
        return self.i420.shape[1]

    def _planes(self):
        h, w = self.height, self.width
        y = self.i420[:h]
        uv = self.i420[h:].reshape(2, h // 2, w // 2)
        return y, uv[0], uv[1]

    def warp(self, matrix: np.ndarray, size: int, border: str = "constant", value: int = 0) -> np.ndarray:
        y, u, v = self._planes()
        mode = _BORDERS[border]
        # A constant border must come out as RGB (value, value, value): neutral chroma is 128.
        luma = int(round(16 + value * 219 / 255))  # BT.601 limited range, as COLOR_YUV2RGB_I420 reads it
        y_out = cv2.warpAffine(y, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode,
                               borderValue=luma)
        m_uv = _LUMA_TO_CHROMA @ np.vstack([matrix, [0, 0, 1]]) @ _CHROMA_TO_LUMA
        half = size // 2
        u_out = cv2.warpAffine(u, m_uv, (half, half), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=128)
        v_out = cv2.warpAffine(v, m_uv, (half, half), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=128)
        i420 = np.concatenate([y_out, u_out.reshape(-1, size), v_out.reshape(-1, size)], axis=0)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)

    def to_rgb(self) -> np.ndarray:
        return cv2.cvtColor(self.i420, cv2.COLOR_YUV2RGB_I420)
