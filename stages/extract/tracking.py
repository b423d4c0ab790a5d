"""Up to M people per clip, each in its own slot: matching, slots, and the main-actor order.

Backend-agnostic: people are axis-aligned boxes [x0, y0, x1, y1] in image pixels plus a score; a
backend keeps its own per-slot state (the embedded backend: the next frame's ROI) next to these.

- A slot is a track identity, stable within a clip: a person keeps the slot it was first given,
  and a person found again right after being lost gets its old slot back when the new box
  overlaps the box it was last seen in.
- The detector is not run every frame: only to start tracks (nothing tracked), to replace one
  lost in this frame, and every `look_every` frames while fewer than M are tracked (every
  LOOK_AFTER_LOSS frames for a while after someone was lost).
- When the clip is done, slots are reordered main actor first: by the sum over frames of the
  person's score, i.e. how long and how confidently each is seen (as pyskl's and mmaction2's
  tools/data/skeleton/ntu_pose_extraction.py rank persons by their summed scores).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# A detection overlapping a tracked person this much is that person (boxes of one person from the
# detector and from the landmarks of the previous frame overlap > 0.7 in practice).
SAME_PERSON_IOU = 0.5
# A new detection whose box overlaps the last box of a recently lost track by this much resumes it.
RESUME_IOU = 0.3
# A lost track's slot is kept for it this many frames (two looks of the detector); later, it is free
# for anyone.
FORGET_AFTER = 60
# While fewer than M people are tracked, the detector looks for a new one after k frames without a
# look: a new person is found within ~1 s at 30 fps. A look costs a full detector pass (about as
# much CPU as a landmark pass), so on one-person footage k = 30 keeps M = 2 within ~3% of M = 1.
LOOK_EVERY = 30
# For FORGET_AFTER frames after someone was lost, it looks more often, so that a person hidden for
# a moment (occluded, out of frame) gets back into their slot within a few frames.
LOOK_AFTER_LOSS = 4


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N, 4] with every box in b [K, 4] -> [N, K]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def box_of_points(points: np.ndarray) -> np.ndarray:
    """Bounding box [4] of [V, 2] points."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def greedy_match(similarity: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """(row, col) pairs, best similarity first, each row and col used once, similarity >= minimum.

    Greedy rather than Hungarian: with M <= a few people the two agree except in ties."""
    sim = np.array(similarity, np.float64, copy=True)
    pairs = []
    while sim.size and sim.max() >= minimum:
        r, c = np.unravel_index(int(np.argmax(sim)), sim.shape)
        pairs.append((int(r), int(c)))
        sim[r, :] = -np.inf
        sim[:, c] = -np.inf
    return pairs


def duplicates(boxes: np.ndarray, scores: np.ndarray, iou: float = SAME_PERSON_IOU) -> list[int]:
    """Indices of boxes that overlap a better-scored box by >= iou (two tracks on one person)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep, drop = [], []
    for i in order:
        if keep and iou_matrix(boxes[i], boxes[keep]).max() >= iou:
            drop.append(int(i))
        else:
            keep.append(int(i))
    return sorted(drop)


@dataclass
class Slot:
    state: object = None  # the backend's tracking state (None: nobody tracked in this slot)
    last_box: np.ndarray | None = None  # where its person was last seen
    lost_for: int = 0  # frames since then (0 while tracked)


@dataclass
class SlotTable:
    """M slots and the rule for when the detector must look (see module doc)."""

    max_persons: int
    look_every: int = LOOK_EVERY
    slots: list[Slot] = field(default_factory=list)
    _frames_since_look: int = 0

    def __post_init__(self):
        if self.max_persons < 1:
            raise ValueError("max_persons must be >= 1")
        self.reset()

    def reset(self) -> None:
        self.slots = [Slot() for _ in range(self.max_persons)]
        self._frames_since_look = 0

    def tracked(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.state is not None]

    def free(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.state is None]

    def should_look(self, lost_this_frame: bool) -> bool:
        """Whether the detector runs on this frame (call once per frame, after tracking)."""
        n = len(self.tracked())
        recently_lost = any(s.state is None and s.last_box is not None and s.lost_for <= FORGET_AFTER
                            for s in self.slots)
        every = min(self.look_every, LOOK_AFTER_LOSS) if recently_lost else self.look_every
        look = n == 0 or lost_this_frame or (n < self.max_persons and self._frames_since_look >= every)
        self._frames_since_look = 0 if look else self._frames_since_look + 1
        return look

    def new_detections(self, boxes: np.ndarray, tracked_boxes: np.ndarray) -> list[int]:
        """Indices of detection boxes [K, 4] (best first) that are nobody tracked now."""
        if len(boxes) == 0:
            return []
        if len(tracked_boxes) == 0:
            return list(range(len(boxes)))
        overlap = iou_matrix(boxes, tracked_boxes).max(axis=1)
        return [k for k in range(len(boxes)) if overlap[k] < SAME_PERSON_IOU]

    def slot_for(self, box: np.ndarray) -> int | None:
        """The free slot a new person at `box` goes to: the recently lost track it resumes, else the
        free slot unused longest (never-used slots first); None when every slot is taken."""
        free = self.free()
        if not free:
            return None
        recent = [i for i in free if self.slots[i].last_box is not None and self.slots[i].lost_for <= FORGET_AFTER]
        if recent:
            overlap = iou_matrix(box, np.stack([self.slots[i].last_box for i in recent]))[0]
            if overlap.max() >= RESUME_IOU:
                return recent[int(np.argmax(overlap))]
        unused = [i for i in free if self.slots[i].last_box is None or self.slots[i].lost_for > FORGET_AFTER]
        if unused:
            return unused[0]
        return max(free, key=lambda i: self.slots[i].lost_for)

    def track(self, slot: int, state, box: np.ndarray) -> None:
        self.slots[slot] = Slot(state, np.asarray(box, np.float64), 0)

    def lose(self, slot: int) -> None:
        self.slots[slot].state = None

    def end_frame(self) -> None:
        """Age the slots of people not seen in this frame."""
        for s in self.slots:
            if s.state is None:
                s.lost_for += 1


def main_actor_order(score: np.ndarray) -> np.ndarray:
    """Permutation of the person axis of score [T, M]: most summed score first (stable in ties)."""
    total = np.asarray(score, np.float64).sum(axis=0)
    return np.argsort(-total, kind="stable")
