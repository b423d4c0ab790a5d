"""The backend-agnostic slot logic of stages/extract/tracking.py (synthetic boxes)."""
import numpy as np

from posebridge.stages.extract import tracking


def test_iou_matrix_values():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [100, 100, 101, 101]])
    got = tracking.iou_matrix(a, b)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[0], [50 / 150, 1.0, 0.0])
    np.testing.assert_allclose(got[1], [0.0, 0.0, 0.0])


def test_greedy_match_takes_best_pairs_once():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(tracking.greedy_match(sim, 0.5)) == [(0, 0)]  # row 1's only good partner is taken
    assert sorted(tracking.greedy_match(sim, 0.05)) == [(0, 0), (1, 1)]
    assert tracking.greedy_match(np.zeros((0, 3)), 0.1) == []


def test_duplicates_drop_the_worse_of_two_boxes_on_one_person():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]])
    assert tracking.duplicates(boxes, np.array([0.5, 0.9, 0.7])) == [0]


def test_detector_looks_on_schedule_only_while_a_slot_is_free():
    table = tracking.SlotTable(max_persons=2, look_every=3)
    assert table.should_look(False)  # nobody tracked: look
    table.track(0, "roi", [0, 0, 10, 10])
    looks = [table.should_look(False) for _ in range(8)]
    assert looks == [False, False, False, True, False, False, False, True]
    table.track(1, "roi", [50, 0, 60, 10])
    assert not any(table.should_look(False) for _ in range(10))  # both slots taken: never
    assert table.should_look(True)  # one lost in this frame: look again at once


def test_new_detections_skip_tracked_people():
    table = tracking.SlotTable(max_persons=2)
    boxes = np.array([[0, 0, 10, 10], [40, 0, 50, 10]])
    assert table.new_detections(boxes, np.array([[1, 0, 11, 10]])) == [1]
    assert table.new_detections(boxes, np.zeros((0, 4))) == [0, 1]


def test_a_lost_person_found_again_gets_its_old_slot():
    table = tracking.SlotTable(max_persons=2)
    table.track(0, "a", [0, 0, 10, 10])
    table.track(1, "b", [50, 0, 60, 10])
    table.lose(0)
    table.end_frame()
    table.lose(1)
    table.end_frame()
    # Person b reappears near where it was: slot 1, although slot 0 is free too.
    assert table.slot_for(np.array([51, 0, 61, 10])) == 1
    # Someone far from both: the slot unused longest.
    assert table.slot_for(np.array([200, 0, 210, 10])) == 0


def test_forgotten_slots_are_reused_and_full_table_gives_none():
    table = tracking.SlotTable(max_persons=1)
    table.track(0, "a", [0, 0, 10, 10])
    assert table.slot_for(np.array([0, 0, 10, 10])) is None
    table.lose(0)
    for _ in range(tracking.FORGET_AFTER + 1):
        table.end_frame()
    assert table.slot_for(np.array([500, 0, 510, 10])) == 0


def test_main_actor_order_by_summed_score():
    score = np.array([[0.0, 0.9, 0.5], [0.0, 0.9, 0.5], [0.9, 0.9, 0.0]])  # [T, M]
    # slot 1 seen in all 3 frames, slot 2 in 2 frames, slot 0 once
    assert tracking.main_actor_order(score).tolist() == [1, 2, 0]
    assert tracking.main_actor_order(np.zeros((4, 2))).tolist() == [0, 1]  # ties keep slot order


def _frames(table, n: int) -> list[bool]:
    """Whether the detector looks in each of n frames in which nothing changes."""
    looks = []
    for _ in range(n):
        looks.append(table.should_look(False))
        table.end_frame()
    return looks


def test_detector_looks_more_often_for_a_while_after_a_loss():
    table = tracking.SlotTable(max_persons=2, look_every=30)
    table.track(0, "a", [0, 0, 10, 10])
    table.track(1, "b", [50, 0, 60, 10])
    table.lose(1)
    assert table.should_look(True)
    table.end_frame()
    assert sum(_frames(table, 2 * (tracking.LOOK_AFTER_LOSS + 1))) == 2  # every LOOK_AFTER_LOSS + 1 frames
    _frames(table, tracking.FORGET_AFTER)
    assert sum(_frames(table, 31)) == 1  # forgotten: back to every look_every + 1 frames
