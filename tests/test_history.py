"""A run's History: typed lists, written and read back as the plain data of history.json."""

import json

import pytest

from rnlib.history import History


def test_a_history_round_trips_through_the_plain_data_of_history_json():
    h = History()
    h.step_loss += [1.0, 0.5]
    h.record(epoch=1.0, step=2, train_loss=0.75, lr=1e-3, elapsed_s=0.5)
    h.record(eval_step=2, eval_elapsed_s=0.5, val_miou=0.4, val_pixel_accuracy=0.9,
             val_boundary_f=0.3, val_iou=[0.5, 0.3])
    data = json.loads(json.dumps(h.to_dict()))
    assert History.from_dict(data) == h
    assert h["val_miou"] == h.val_miou == [0.4]  # by the name history.json gives it


def test_only_what_was_recorded_is_written():
    h = History(step_loss=[1.0], step=[1], train_loss=[1.0])
    assert set(h.to_dict()) == {"step_loss", "step", "train_loss"}


def test_unknown_entries_are_refused_by_name():
    with pytest.raises(ValueError, match=r"no 'val_mIoU'.*not a history of rnlib"):
        History.from_dict({"val_mIoU": [0.4]})
    with pytest.raises(KeyError):
        History()["loss"]
