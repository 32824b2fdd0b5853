"""The experiment's settings, all in one dataclass (recorded verbatim in the report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HERE", "ExperimentConfig"]

HERE = Path(__file__).resolve().parent


@dataclass
class ExperimentConfig:
    """Settings of one run of the experiment.

    The backbone is frozen: its pooled features are computed once (the eval view of every image plus
    ``aug_views`` augmented views of each training image), then the embedding layer (Linear → LayerNorm
    without affine) and one normalized-softmax head per task train on those features.
    """

    data_root: str | None = None  # default: ../shared/data/grocery-store
    manifest: str | None = None  # use this manifest instead of writing the Grocery one (tests)
    work_dir: str = "runs/experiment"  # caches, run folders and full eval reports (not committed)
    out_dir: str = str(HERE)  # REPORT.md, results.json, figures/ (committed)
    backbone: str = "efficientnet-lite0"
    embedding_dim: int = 512
    aug_views: int = 1
    epochs: int = 30  # per specialized model
    # the unified model trains epochs x this factor (default: the number of tasks), so that it sees as many
    # samples of each task as the specialized model of that task: the same total budget as all specialized models
    unified_epoch_factor: float | None = None
    batch_size: int = 96
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    # "drawn": a row sampled for task t trains only head t (the paper: each task is its own dataset);
    # "all": it trains every head it has a label for (what `emb train` does)
    label_mode: str = "all"
    # weight of the same task losses computed on the sign of the embedding (straight-through gradient),
    # which teaches the float embedding to survive binarization; 0 = off (plain LayerNorm + sign, emb train's default)
    binary_loss_weight: float = 1.0
    catalog_repeat: int = 1  # times each catalog image appears in the catalog task's pool
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    tasks: list[str] = field(default_factory=lambda: ["coarse", "fine", "catalog"])
    split: str = "test"
    feature_batch_size: int = 16
    workers: int = 2
    # check the saved unified run folder through emb eval's own loading + embedding code: on this many
    # sampled rows (embeddings and bits compared), or -1 = a full `emb eval` (every image decoded again), 0 = skip
    verify_rows: int = 300

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
