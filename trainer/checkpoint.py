"""Checkpoints: tensors and primitive containers only (``torch.load(weights_only=True)``), written atomically."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from embsdk._fileio import fsync_dir
from embsdk.errors import CheckpointError

__all__ = [
    "load_checkpoint",
    "prune_checkpoints",
    "resolve_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]


def rng_state() -> dict[str, Any]:
    """The torch RNG states as tensors (CPU, and every CUDA device when present)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write *state* to *path* via a tmp file + ``os.replace`` + folder fsync (a kill never leaves a torn checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``).

    Raises:
        CheckpointError: missing, truncated or not a checkpoint.
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {exc})") from None


def resolve_checkpoint(run_dir: Path, checkpoint: str | int = "last") -> Path:
    """``"last"``, a step number, a file name in ``checkpoints/``, or a path → the checkpoint file.

    Raises:
        CheckpointError: no such checkpoint.
    """
    ckpt_dir = run_dir / "checkpoints"
    if isinstance(checkpoint, int) or str(checkpoint).isdigit():
        path = ckpt_dir / f"step-{int(checkpoint):08d}.pt"
    elif checkpoint == "last":
        path = ckpt_dir / "last.pt"
    elif Path(checkpoint).is_file():
        path = Path(checkpoint)
    else:
        path = ckpt_dir / str(checkpoint)
    if not path.is_file():
        have = sorted(p.name for p in ckpt_dir.glob("*.pt")) if ckpt_dir.is_dir() else []
        raise CheckpointError(
            f"no checkpoint {checkpoint!r} in {run_dir} (have: {', '.join(have) or 'none'})"
        )
    return path


def prune_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Keep the newest *keep* periodic ``step-*.pt`` files (``last.pt`` is always kept)."""
    steps = sorted(p for p in ckpt_dir.glob("step-*.pt") if re.fullmatch(r"step-\d{8}\.pt", p.name))
    for old in steps[: max(0, len(steps) - keep)]:
        old.unlink(missing_ok=True)
