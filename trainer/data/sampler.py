"""Batch samplers that mix the task datasets uniformly in every mini-batch (Zhai et al., KDD 2019, §3.2).

Each task is its own "dataset": the rows holding a label for it. Every global batch holds
``batch_size // num_tasks`` samples of each task (the remainder rotates between tasks batch by batch).
Within a task, rows are drawn from reshuffled passes (``uniform``) or class first, then row
(``class-balanced``). The batches of an epoch are a pure function of ``(seed, epoch)``, so resuming at
batch ``b`` replays exactly the same batches; each sample also carries its own augmentation seed.
With ``world_size > 1`` every rank takes an interleaved slice of each global batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["SAMPLERS", "MixedTaskBatchSampler"]

SAMPLERS = ("uniform", "class-balanced")


class _UniformStream:
    def __init__(self, rows: np.ndarray, rng: np.random.Generator) -> None:
        self.rows, self.rng, self.order, self.pos = rows, rng, rng.permutation(rows), 0

    def take(self) -> int:
        if self.pos == len(self.order):
            self.order, self.pos = self.rng.permutation(self.rows), 0
        self.pos += 1
        return int(self.order[self.pos - 1])


class _ClassBalancedStream:
    def __init__(self, rows: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> None:
        self.rng = rng
        self.groups = [rows[classes == c] for c in np.unique(classes)]

    def take(self) -> int:
        group = self.groups[int(self.rng.integers(len(self.groups)))]
        return int(group[int(self.rng.integers(len(group)))])


class MixedTaskBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields batches of ``(position, augmentation_seed)`` for this rank.

    Args:
        task_rows: task → dataset positions that carry a label for the task.
        batch_size: per-rank batch size (the global batch is ``batch_size * world_size``).
        seed: base seed; an epoch's batches depend only on ``(seed, epoch)``.
        mode: ``uniform`` or ``class-balanced``.
        task_classes: task → class id per position in ``task_rows[task]`` (needed by ``class-balanced``).
        batches_per_epoch: default ``ceil(#distinct labeled rows / global batch)``.
        rank, world_size: data-parallel slice.
    """

    def __init__(
        self,
        task_rows: Mapping[str, Sequence[int]],
        batch_size: int,
        *,
        seed: int = 0,
        mode: str = "uniform",
        task_classes: Mapping[str, Sequence[int]] | None = None,
        batches_per_epoch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if mode not in SAMPLERS:
            raise ValueError(f"unknown sampler {mode!r}; use one of {SAMPLERS}")
        self.tasks = [t for t in task_rows if len(task_rows[t])]
        if not self.tasks:
            raise ValueError("no task has any labeled row")
        self.task_rows = {t: np.asarray(task_rows[t], dtype=np.int64) for t in self.tasks}
        if mode == "class-balanced":
            if task_classes is None:
                raise ValueError("class-balanced sampling needs task_classes")
            self.task_classes = {t: np.asarray(task_classes[t], dtype=np.int64) for t in self.tasks}
        self.batch_size, self.seed, self.mode = batch_size, seed, mode
        self.rank, self.world_size = rank, world_size
        self.global_batch = batch_size * world_size
        distinct = len(np.unique(np.concatenate(list(self.task_rows.values()))))
        self.batches_per_epoch = batches_per_epoch or max(1, math.ceil(distinct / self.global_batch))
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch to iterate, skipping its first *start_batch* batches (resume)."""
        self.epoch, self.start_batch = epoch, start_batch

    def _streams(self, rng: np.random.Generator) -> dict[str, _UniformStream | _ClassBalancedStream]:
        if self.mode == "uniform":
            return {t: _UniformStream(self.task_rows[t], rng) for t in self.tasks}
        return {t: _ClassBalancedStream(self.task_rows[t], self.task_classes[t], rng) for t in self.tasks}

    def global_batches(self, epoch: int) -> list[list[tuple[int, int, str]]]:
        """All global batches of *epoch*: lists of ``(position, aug_seed, task drawn for)``."""
        rng = np.random.default_rng([self.seed, epoch])
        streams = self._streams(rng)
        n_tasks = len(self.tasks)
        out = []
        for b in range(self.batches_per_epoch):
            base, extra = divmod(self.global_batch, n_tasks)
            counts = [base + (1 if (i - b) % n_tasks < extra else 0) for i in range(n_tasks)]
            drawn: list[tuple[int, str]] = []
            for task, count in zip(self.tasks, counts):
                drawn.extend((streams[task].take(), task) for _ in range(count))
            order = rng.permutation(len(drawn))  # interleave tasks so every rank slice mixes them
            seeds = rng.integers(0, 2**31 - 1, size=len(drawn))
            out.append([(drawn[j][0], int(seeds[k]), drawn[j][1]) for k, j in enumerate(order)])
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.global_batches(self.epoch)[self.start_batch :]:
            yield [(pos, seed) for pos, seed, _ in batch[self.rank :: self.world_size]]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch
