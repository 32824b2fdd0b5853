"""``python -m experiments.unified_vs_specialized``: run the experiment with one command."""

from __future__ import annotations

import argparse

from .config import ExperimentConfig
from .pipeline import run_experiment


def main(argv: list[str] | None = None) -> None:
    """Parse options (defaults are the committed report's settings) and run."""
    d = ExperimentConfig()
    p = argparse.ArgumentParser(prog="python -m experiments.unified_vs_specialized", description=__doc__)
    p.add_argument(
        "--data-root", default=d.data_root, help="Grocery Store folder (default ../shared/data/grocery-store)"
    )
    p.add_argument(
        "--work-dir", default=d.work_dir, help="caches, run folders, full eval reports (not committed)"
    )
    p.add_argument("--out-dir", default=d.out_dir, help="where REPORT.md, results.json and figures/ go")
    p.add_argument("--backbone", default=d.backbone)
    p.add_argument("--embedding-dim", type=int, default=d.embedding_dim)
    p.add_argument(
        "--aug-views", type=int, default=d.aug_views, help="augmented feature views per training image"
    )
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--catalog-repeat", type=int, default=d.catalog_repeat)
    p.add_argument(
        "--binary-loss-weight",
        type=float,
        default=d.binary_loss_weight,
        help="0 = plain LayerNorm + sign training",
    )
    p.add_argument("--label-mode", choices=["all", "drawn"], default=d.label_mode)
    p.add_argument("--unified-epoch-factor", type=float, default=d.unified_epoch_factor)
    p.add_argument("--seeds", type=int, nargs="+", default=d.seeds)
    p.add_argument("--tasks", nargs="+", default=d.tasks)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument(
        "--verify-rows",
        type=int,
        default=d.verify_rows,
        help="check the saved unified run folder through emb eval's loader on this many sampled images (-1: full emb eval, 0: skip)",
    )
    a = p.parse_args(argv)
    cfg = ExperimentConfig(
        data_root=a.data_root,
        work_dir=a.work_dir,
        out_dir=a.out_dir,
        backbone=a.backbone,
        embedding_dim=a.embedding_dim,
        aug_views=a.aug_views,
        epochs=a.epochs,
        lr=a.lr,
        catalog_repeat=a.catalog_repeat,
        seeds=a.seeds,
        tasks=a.tasks,
        workers=a.workers,
        verify_rows=a.verify_rows,
        binary_loss_weight=a.binary_loss_weight,
        label_mode=a.label_mode,
        unified_epoch_factor=a.unified_epoch_factor,
    )
    run_experiment(cfg)


if __name__ == "__main__":
    main()
