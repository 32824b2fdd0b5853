"""Mixed-task batches: uniform task mixing, determinism per (seed, epoch), resume skipping, DDP slices."""

from __future__ import annotations

from collections import Counter

import pytest

from trainer.data.sampler import MixedTaskBatchSampler

TASK_ROWS = {"a": list(range(100)), "b": list(range(100, 110)), "c": list(range(50, 150))}


def test_every_batch_mixes_tasks_uniformly() -> None:
    s = MixedTaskBatchSampler(TASK_ROWS, 12, seed=0)
    for batch in s.global_batches(0):
        counts = Counter(task for _, _, task in batch)
        assert counts == {"a": 4, "b": 4, "c": 4}
        for pos, _, task in batch:
            assert pos in TASK_ROWS[task]


def test_remainder_slots_rotate_between_tasks() -> None:
    s = MixedTaskBatchSampler(TASK_ROWS, 7, seed=0, batches_per_epoch=30)
    totals = Counter(task for batch in s.global_batches(0) for _, _, task in batch)
    assert all(len(b) == 7 for b in s.global_batches(0))
    assert totals == {"a": 70, "b": 70, "c": 70}


def test_small_task_is_cycled_and_each_pass_covers_it() -> None:
    s = MixedTaskBatchSampler(TASK_ROWS, 6, seed=3)
    drawn_b = [pos for batch in s.global_batches(0) for pos, _, t in batch if t == "b"]
    assert len(drawn_b) >= 20
    for start in range(0, 20, 10):  # each reshuffled pass over the 10 rows of b is a permutation
        assert sorted(drawn_b[start : start + 10]) == TASK_ROWS["b"]


def test_batches_are_a_function_of_seed_and_epoch() -> None:
    s1, s2 = MixedTaskBatchSampler(TASK_ROWS, 8, seed=5), MixedTaskBatchSampler(TASK_ROWS, 8, seed=5)
    assert s1.global_batches(2) == s2.global_batches(2)
    assert s1.global_batches(2) != s1.global_batches(3)
    assert s1.global_batches(2) != MixedTaskBatchSampler(TASK_ROWS, 8, seed=6).global_batches(2)


def test_resume_skips_consumed_batches() -> None:
    s = MixedTaskBatchSampler(TASK_ROWS, 8, seed=1)
    s.set_epoch(1)
    full = list(s)
    s.set_epoch(1, start_batch=5)
    assert list(s) == full[5:] and len(s) == len(full) - 5


def test_ranks_partition_the_global_batch() -> None:
    ranks = [MixedTaskBatchSampler(TASK_ROWS, 4, seed=0, rank=r, world_size=3) for r in range(3)]
    glob = ranks[0].global_batches(0)
    assert ranks[0].batches_per_epoch == ranks[2].batches_per_epoch
    for b, per_rank in enumerate(zip(*[list(r) for r in ranks])):
        assert all(len(x) == 4 for x in per_rank)
        assert sorted(p for x in per_rank for p in x) == sorted((p, s) for p, s, _ in glob[b])


def test_epoch_length_covers_distinct_rows_once() -> None:
    s = MixedTaskBatchSampler(TASK_ROWS, 10, seed=0)
    assert s.batches_per_epoch == 15  # 150 distinct rows / 10


def test_class_balanced_draws_classes_uniformly() -> None:
    rows = {"a": list(range(100))}
    classes = {"a": [0] * 90 + [1] * 5 + [2] * 5}  # heavily imbalanced
    s = MixedTaskBatchSampler(
        rows, 30, seed=0, mode="class-balanced", task_classes=classes, batches_per_epoch=100
    )
    counts = Counter(classes["a"][p] for batch in s.global_batches(0) for p, _, _ in batch)
    for c in (0, 1, 2):
        assert abs(counts[c] / 3000 - 1 / 3) < 0.03
    uniform = MixedTaskBatchSampler(rows, 30, seed=0, batches_per_epoch=100)
    assert Counter(classes["a"][p] for b in uniform.global_batches(0) for p, _, _ in b)[0] / 3000 > 0.85


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown sampler"):
        MixedTaskBatchSampler(TASK_ROWS, 4, mode="weird")
    with pytest.raises(ValueError, match="no task"):
        MixedTaskBatchSampler({"a": []}, 4)
    with pytest.raises(ValueError, match="task_classes"):
        MixedTaskBatchSampler(TASK_ROWS, 4, mode="class-balanced")
