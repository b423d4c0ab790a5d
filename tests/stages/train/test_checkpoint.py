"""Checkpoints load with torch.load(weights_only=True): plain checkpoints load, anything else is refused unbuilt."""
from __future__ import annotations

import pathlib

import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.stages.train.checkpoint import load_checkpoint, save_checkpoint


class LeavesAMark:
    """Unpickling this object would create a file: the test checks it never happens."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_checkpoint_of_tensors_and_plain_values_round_trips(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "generator": torch.Generator().manual_seed(3).get_state(), "epoch": 2, "losses": [1.5, 1.25],
               "config": {"split": "x", "ttr": False, "calibration_epochs": None}, "calibration": {"gamma": 0.25}}
    save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["model"]["weight"], model.weight) and loaded["config"] == payload["config"]
    assert loaded["optimizer"]["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_a_checkpoint_carrying_an_arbitrary_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "extra": LeavesAMark(marker)}, path)
    torch.load(path, weights_only=False)  # the object is live: unpickling it unchecked runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UserError, match="evil.pt holds objects other than tensors"):
        load_checkpoint(path)
    assert not marker.exists()


def test_missing_and_torn_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "none.pt")
    save_checkpoint(tmp_path / "c.pt", {"epoch": 1})
    (tmp_path / "torn.pt").write_bytes((tmp_path / "c.pt").read_bytes()[:40])
    with pytest.raises(UserError, match="torn.pt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "torn.pt")
