"""The run folder and how to load a trained model from it.

Layout of ``RUN/``::

    config.yaml           resolved TrainConfig
    run.json              manifest path + sha256, code version, tasks and class lists, embedding spec,
                          input spec, backbone, status and step
    checkpoints/last.pt   latest checkpoint (+ periodic step-XXXXXXXX.pt), atomic writes
    metrics.jsonl         one JSON object per logged step / event

Example:
    >>> model, info = load_model("runs/unified")          # doctest: +SKIP
    >>> info.embedding_spec["bits"], info.input_spec.image_size
    (256, 224)
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embsdk._fileio import write_text_atomic
from embsdk.errors import CheckpointError, RunError
from embsdk.preprocess import InputSpec

__all__ = [
    "CONFIG_YAML",
    "RUN_JSON",
    "RunInfo",
    "code_version",
    "load_model",
    "read_run_info",
    "write_json_atomic",
]

RUN_JSON, CONFIG_YAML, METRICS = "run.json", "config.yaml", "metrics.jsonl"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace *path* with indented JSON (and a final newline) through :func:`embsdk._fileio.write_text_atomic`."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def code_version() -> str:
    """``git:<commit>[+dirty]`` when run from a checkout, else ``embsdk==<version>``."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if head.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--", "trainer"],
                check=False,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            return f"git:{head.stdout.strip()}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"embsdk=={version('embsdk')}"
    except PackageNotFoundError:
        return "unknown"


@dataclass
class RunInfo:
    """What a run folder says about its model (from ``run.json``)."""

    run_dir: Path
    backbone: str
    embedding_dim: int
    tasks: list[str]
    classes: dict[str, list[str]]
    embedding_spec: dict[str, Any]
    input_spec: InputSpec
    manifest_path: str
    manifest_sha256: str
    code_version: str
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "unknown"
    step: int = 0
    checkpoint: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "backbone": self.backbone,
            "embedding_dim": self.embedding_dim,
            "tasks": self.tasks,
            "classes": self.classes,
            "embedding_spec": self.embedding_spec,
            "input_spec": self.input_spec.to_dict(),
            "manifest": {"path": self.manifest_path, "sha256": self.manifest_sha256},
            "code_version": self.code_version,
            "status": self.status,
            "step": self.step,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
        }


def read_run_info(run_dir: str | Path) -> RunInfo:
    """Parse ``RUN/run.json``.

    Raises:
        RunError: not a run folder, or ``run.json`` is unreadable.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    path = run_dir / RUN_JSON
    if not path.is_file():
        raise RunError(
            f"{run_dir} is not a training run folder (no {RUN_JSON}); train one with: emb train --manifest M --out {run_dir}"
        )
    try:
        data = json.loads(path.read_text())
        return RunInfo(
            run_dir=run_dir,
            backbone=data["backbone"],
            embedding_dim=int(data["embedding_spec"]["dim"]),
            tasks=list(data["tasks"]),
            classes={k: list(v) for k, v in data["classes"].items()},
            embedding_spec=dict(data["embedding_spec"]),
            input_spec=InputSpec.from_dict(data["input_spec"]),
            manifest_path=data["manifest"]["path"],
            manifest_sha256=data["manifest"]["sha256"],
            code_version=data.get("code_version", "unknown"),
            config=data.get("config", {}),
            status=data.get("status", "unknown"),
            step=int(data.get("step", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path} is unreadable or incomplete ({type(exc).__name__}: {exc})") from None


def load_model(run_dir: str | Path, checkpoint: str | int = "last") -> tuple[Any, RunInfo]:
    """Rebuild the trained :class:`~trainer.model.UnifiedEmbeddingModel` of a run, in eval mode.

    Args:
        run_dir: the run folder written by ``emb train``.
        checkpoint: ``"last"``, a step number, or a checkpoint file name/path.

    Returns:
        ``(model, info)``; ``info.input_spec`` is the preprocessing the model expects.

    Raises:
        RunError: not a run folder.
        CheckpointError: the checkpoint is missing, corrupt, or does not fit the model.
    """
    from .backbones import create_backbone
    from .checkpoint import load_checkpoint, resolve_checkpoint
    from .model import UnifiedEmbeddingModel

    info = read_run_info(run_dir)
    path = resolve_checkpoint(info.run_dir, checkpoint)
    state = load_checkpoint(path)
    backbone = create_backbone(info.backbone, pretrained=False, image_size=info.input_spec.image_size)
    model = UnifiedEmbeddingModel(backbone, info.embedding_dim)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit a {info.backbone} model of dim {info.embedding_dim}: {exc}"
        ) from None
    info.checkpoint, info.step = path, int(state.get("step", info.step))
    return model.eval(), info
