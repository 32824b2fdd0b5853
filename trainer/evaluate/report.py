"""Write an evaluation report folder: ``metrics.json``, ``summary.md``, ``recall_at_k.png``, ``grids/*.png``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from embsdk._fileio import write_text_atomic

from .figures import draw_result_grid, plot_recall_curves
from .scoring import KINDS, TaskResult

__all__ = ["METRIC_COLUMNS", "markdown_table", "write_report"]

METRIC_COLUMNS: tuple[str, ...] = ("R@1", "R@5", "R@10", "P@20", "mAP@R")


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def markdown_table(results: Sequence[TaskResult]) -> str:
    """Markdown table: one row per task × {float, binary}, metric columns, then the binary/float R@1 ratio."""
    head = "| task | gallery | code | " + " | ".join(METRIC_COLUMNS) + " | bin/float R@1 |"
    lines = [head, "|" + "---|" * (4 + len(METRIC_COLUMNS))]
    for res in results:
        p = res.protocol
        for kind in KINDS:
            m = res.metrics[kind]
            ratio = _fmt(res.binary_float_r1_ratio) if kind == "binary" else ""
            cells = " | ".join(_fmt(m.get(c, float("nan"))) for c in METRIC_COLUMNS)
            lines.append(f"| {p.task} | {p.kind} ({len(p.gallery_rows)}) | {kind} | {cells} | {ratio} |")
    return "\n".join(lines)


def write_report(
    report_dir: Path,
    results: Sequence[TaskResult],
    header: dict[str, Any],
    *,
    image_path: Callable[[int], Path] | None,
    grid_queries: int = 6,
) -> dict[str, Any]:
    """Write the report files and return the ``metrics.json`` content.

    Args:
        report_dir: the folder (created if needed).
        results: scored tasks.
        header: run-level facts (model, manifest, split, dim, skipped images, ...), stored as-is.
        image_path: manifest row → image file, for the result grids (None: no grids).
        grid_queries: queries per grid.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    data = {**header, "metric_notes": _NOTES, "tasks": {r.protocol.task: r.to_dict() for r in results}}
    write_text_atomic(report_dir / "metrics.json", json.dumps(data, indent=2, default=float) + "\n")
    files = {"metrics": "metrics.json", "summary": "summary.md", "plot": "recall_at_k.png", "grids": []}
    plot_recall_curves(
        results,
        report_dir / "recall_at_k.png",
        title=f"{header.get('model', '')} on {header.get('split', '')}",
    )
    if image_path is not None:
        for res in results:
            for kind in KINDS:
                name = f"grids/{res.protocol.task}_{kind}.png"
                draw_result_grid(res, kind, report_dir / name, image_path=image_path, count=grid_queries)
                files["grids"].append(name)
    write_text_atomic(report_dir / "summary.md", _summary(results, header, files))
    data["files"] = files
    return data


_NOTES = (
    "R@K: fraction of queries with a correct item in the top K; P@20: mean precision of the top 20; "
    "mAP@R: Musgrave et al. 2020 (R = gallery items of the query's class). Float: cosine; binary: Hamming on "
    "bits (LayerNorm-ed value > 0). Ties: stable sort, lower gallery index first. Queries whose class is not in "
    "the gallery are left out."
)


def _summary(results: Sequence[TaskResult], header: dict[str, Any], files: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation of `{header.get('model')}`",
        "",
        f"- manifest: `{header.get('manifest')}` (sha256 {str(header.get('manifest_sha256', ''))[:12]}…), split `{header.get('split')}`",
        (
            f"- embedding: {header.get('dim')} floats → {header.get('dim')} bits; images embedded: {header.get('images')}, "
            f"skipped (unreadable): {header.get('skipped_images', 0)}"
        ),
    ]
    lines += [f"- {r.protocol.describe()}" for r in results]
    lines += ["", markdown_table(results), "", _NOTES, "", f"![recall@K]({files['plot']})", ""]
    for name in files["grids"]:
        lines.append(f"![{name}]({name})")
    return "\n".join(lines) + "\n"
