from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from seta_stream.errors import RunError
from seta_stream.recorder import LossRecorder
from seta_stream.spool import read_parts, write_part


def test_records_grow_past_capacity_and_keep_order() -> None:
    r = LossRecorder(capacity=4)
    for step in range(5):
        ids = torch.arange(step * 3, step * 3 + 3)
        r.record(ids, torch.full((3,), float(step)))
    ids, losses, dropped = r.take()
    assert list(ids) == list(range(15)) and list(losses) == [s for s in range(5) for _ in range(3)]
    assert ids.dtype == np.int64 and losses.dtype == np.float32 and dropped == 0
    assert r.take()[0].size == 0  # emptied


@pytest.mark.parametrize("base", [2**24 + 1, 2**31 + 7, 2**53 + 3])
def test_large_ids_are_exact(base: int, tmp_path) -> None:
    ids = torch.tensor([base, base + 1, base + 2], dtype=torch.int64)
    r = LossRecorder(capacity=3)
    r.record(ids, torch.tensor([0.5, 1.5, 2.5]))
    r.record(np.array([base + 3], dtype=np.int64), torch.tensor([3.5]))
    got, losses, _ = r.take()
    assert got.tolist() == [base, base + 1, base + 2, base + 3]
    write_part(str(tmp_path), 0, 0, got, losses, 0)
    back, _, _ = read_parts(str(tmp_path), 0, 1)
    assert back.tolist() == got.tolist()


def test_float_ids_are_refused() -> None:
    r = LossRecorder(capacity=3)
    with pytest.raises(RunError, match="integer"):
        r.record(torch.tensor([1.0, 2.0]), torch.tensor([0.1, 0.2]))


def test_nonfinite_losses_are_dropped_counted_and_warned_once() -> None:
    r = LossRecorder(capacity=8)
    r.record(torch.arange(4), torch.tensor([0.1, float("nan"), 0.3, float("inf")]))
    r.record(torch.arange(4, 6), torch.tensor([float("-inf"), 0.6]))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ids, losses, dropped = r.take()
    assert dropped == 3 and list(ids) == [0, 2, 5]
    assert len(w) == 1 and "3 non-finite loss(es) were not recorded this epoch (sample ids 1, 3, 4)" in str(w[0].message)


def test_length_mismatch() -> None:
    r = LossRecorder(capacity=4)
    with pytest.raises(RunError, match="loss has 3 values but the batch has 4 samples"):
        r.record(torch.arange(4), torch.ones(3))


def test_batch_loss_scoring_is_an_ema_of_batch_means() -> None:
    r = LossRecorder(capacity=8, ema_alpha=0.5)
    r.record_batch_loss(torch.arange(2), torch.tensor(4.0))
    r.record_batch_loss(torch.arange(2, 4), torch.tensor(2.0))
    r.record_batch_loss(torch.arange(4, 6), torch.tensor(0.0))
    ids, losses, _ = r.take()
    assert list(ids) == list(range(6))
    assert list(losses) == [4.0, 4.0, 3.0, 3.0, 1.5, 1.5]


def test_partial_part_left_by_a_kill_is_ignored(tmp_path) -> None:
    import os

    from seta_stream.spool import part_path

    p = part_path(str(tmp_path), 3, 0)
    os.makedirs(os.path.dirname(p))
    with open(p + ".tmp-123", "wb") as f:
        f.write(b"PAR1 half a file")
    with pytest.raises(RunError, match="no loss records from rank"):
        read_parts(str(tmp_path), 3, 1)
    write_part(str(tmp_path), 3, 0, np.array([1, 2]), np.array([0.1, 0.2], np.float32), 0)
    assert read_parts(str(tmp_path), 3, 1)[0].tolist() == [1, 2]
