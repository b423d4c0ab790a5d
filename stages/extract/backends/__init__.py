"""Pose backends: base.py (the protocol), registry.py (make_backend by name), one module per backend."""
from .registry import KNOWN_BACKENDS, make_backend

__all__ = ["KNOWN_BACKENDS", "make_backend"]
