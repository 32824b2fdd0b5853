"""The ``emb eval`` report a publish attaches: where it is, its metrics, its files.

A report folder (``trainer.evaluate.write_report``) holds ``metrics.json`` (whose ``model`` is the run folder
as given to ``emb eval``), ``summary.md``, ``recall_at_k.png`` and ``grids/*.png``. Publish finds one, in
this order (:func:`find_eval_report`):

1. the folder given with ``--eval-report`` (it must be a report of this run);
2. ``RUN/eval`` (the layout ``emb eval RUN --report RUN/eval`` writes);
3. any other report folder whose ``metrics.json`` names this run: under the run folder, listed in
   ``run.json`` under ``eval_reports``, or next to the run or the current directory (``emb eval runs/a
   --report reports/a``: two levels down from the run's parent folder and from the current directory).
   The newest one wins.

Its metrics become the generation's metrics (:func:`eval_metrics`); its ``metrics.json``, ``summary.md`` and
plots become artifacts ``eval/<file>`` with role ``eval-report`` (:func:`report_files`). Standard library only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embsdk.errors import RunError

__all__ = ["EVAL_ARTIFACT_PREFIX", "EVAL_ROLE", "eval_metrics", "find_eval_report", "report_files"]

EVAL_ROLE = "eval-report"
"""The registry role of the report's files (the role ``emb registry attach --role eval-report`` uses)."""

EVAL_ARTIFACT_PREFIX = "eval/"
"""Artifact names of the report's files: ``eval/metrics.json``, ``eval/summary.md``, ``eval/<plot>.png``."""

METRICS_FILE = "metrics.json"
DEFAULT_SUBDIR = "eval"
_SEARCH_DEPTH = 2  # folders below a search root: reports/<name>/metrics.json
_SKIP = {"node_modules", "__pycache__", "site-packages", "checkpoints"}


def _read_metrics(report_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((report_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("tasks"), dict) else None


def _names_run(data: dict[str, Any], run_dir: Path) -> bool:
    model = str(data.get("model", ""))
    if not model or model.startswith("imagenet:"):
        return False
    try:
        return Path(model).expanduser().resolve() == run_dir
    except OSError:
        return False


def _moved_from(data: dict[str, Any], run_dir: Path) -> bool:
    """The report names a run folder that no longer exists: this run, moved (or copied) since it was evaluated."""
    try:
        return not Path(str(data.get("model", ""))).expanduser().exists()
    except OSError:
        return False


def _walk(root: Path, depth: int) -> Iterator[Path]:
    """Folders under ``root`` down to ``depth`` levels (hidden and bulky folders skipped), root first."""
    yield root
    if depth <= 0:
        return
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in _SKIP:
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            yield from _walk(Path(entry.path), depth - 1)


def _candidates(run_dir: Path) -> Iterator[Path]:
    yield from _walk(run_dir, 3)
    try:
        listed = json.loads((run_dir / "run.json").read_text()).get("eval_reports", [])
        yield from (Path(str(p)).expanduser() for p in listed)
    except (OSError, ValueError, AttributeError):
        pass
    yield from _walk(run_dir.parent, _SEARCH_DEPTH)
    yield from _walk(Path.cwd(), _SEARCH_DEPTH)


def find_eval_report(run_dir: str | Path, explicit: str | Path | None = None) -> Path | None:
    """The ``emb eval`` report folder to publish with run ``run_dir``, or None (see the module docs).

    Raises:
        RunError: ``explicit`` is not a report folder, or it evaluates another model.
    """
    run = Path(run_dir).expanduser().resolve()
    if explicit is not None:
        report = Path(explicit).expanduser().resolve()
        data = _read_metrics(report)
        if data is None:
            raise RunError(f"{explicit} is not an emb eval report folder (no readable {METRICS_FILE}).")
        if not _names_run(data, run):
            raise RunError(
                f"{explicit} is a report of {data.get('model')!r}, not of the run {run}; "
                f"evaluate it with: emb eval {run} --manifest M --report {explicit}"
            )
        return report
    default = run / DEFAULT_SUBDIR  # inside the run: its report, also when the run folder was moved since
    data = _read_metrics(default)
    if data is not None and not str(data.get("model", "")).startswith("imagenet:"):
        if _names_run(data, run) or _moved_from(data, run):
            return default
        raise RunError(
            f"{default} is a report of {data.get('model')!r}, not of the run {run}; re-evaluate it with: "
            f"emb eval {run} --manifest M --report {default}"
        )
    best: tuple[float, str, Path] | None = None
    seen: set[Path] = set()
    for folder in _candidates(run):
        folder = folder.resolve()
        if folder in seen:
            continue
        seen.add(folder)
        data = _read_metrics(folder)
        if data is None or not _names_run(data, run):
            continue
        mtime = (folder / METRICS_FILE).stat().st_mtime
        key = (mtime, str(folder), folder)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def eval_metrics(report_dir: str | Path) -> dict[str, float]:
    """``metrics.json`` → registry metric keys ``task/<manifest>-<split>/<metric>/<float|binary>``."""
    data = json.loads((Path(report_dir) / METRICS_FILE).read_text())
    dataset = f"{Path(str(data.get('manifest', 'data'))).stem}-{data.get('split', 'test')}"
    out: dict[str, float] = {}
    for task, result in data.get("tasks", {}).items():
        for kind in ("float", "binary"):
            for metric, value in (result.get(kind) or {}).items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    out[f"{task}/{dataset}/{metric.lower()}/{kind}"] = float(value)
        ratio = result.get("binary_float_r1_ratio")
        if isinstance(ratio, (int, float)) and math.isfinite(ratio):
            out[f"{task}/{dataset}/binary_float_r1_ratio"] = float(ratio)
    return out


def report_files(report_dir: str | Path) -> list[tuple[str, Path]]:
    """The report's files to register: ``[("eval/metrics.json", path), ("eval/summary.md", path),
    ("eval/recall_at_k.png", path), ("eval/grids/<task>_<kind>.png", path), ...]``.

    ``metrics.json`` and ``summary.md`` (when present) and every ``.png`` in the folder and its ``grids/``
    (or any other) subfolder, sorted; not the embedding cache (``embeddings.npz``) nor symlinks.
    """
    root = Path(report_dir)
    files = [root / n for n in (METRICS_FILE, "summary.md") if (root / n).is_file()]
    plots = [p for p in root.glob("*.png")] + [p for p in root.glob("*/*.png")]
    files += sorted(p for p in plots if p.is_file() and not p.is_symlink())
    return [(EVAL_ARTIFACT_PREFIX + p.relative_to(root).as_posix(), p) for p in files]
