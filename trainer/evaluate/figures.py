"""Figures a person can look at: recall@K curves (float vs binary) and result grids (query + top 8)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

from .scoring import KINDS, TaskResult

__all__ = ["draw_result_grid", "pick_queries", "plot_recall_curves"]

_THUMB = 112
_PAD = 6
_BORDER = 5
_CAPTION = 16
_GREEN, _RED, _BLUE = (30, 160, 60), (210, 40, 40), (40, 90, 200)


def plot_recall_curves(results: Sequence[TaskResult], path: Path, *, title: str = "") -> Path:
    """One panel per task: recall@K for K = 1..50, float (cosine) solid, binary (Hamming) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False, dpi=100)
    for ax, res in zip(axes[0], results, strict=True):
        for kind, style in zip(KINDS, ("-", "--"), strict=True):
            curve = res.curves[kind]
            ks = np.arange(1, len(curve) + 1)
            ax.plot(ks, curve, style, lw=2, label=f"{kind} (R@1 {res.metrics[kind]['R@1']:.3f})")
        ax.set_xscale("log")
        ticks = [k for k in (1, 2, 5, 10, 20, 50, 100) if k <= len(res.curves["float"])]
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.minorticks_off()
        ax.set_xlabel("K")
        ax.set_ylabel("recall@K")
        ax.set_ylim(0, 1.02)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(
            f"{res.protocol.task} ({res.protocol.kind} gallery, n={len(res.protocol.query_rows)})",
            fontsize=10,
        )
        ax.legend(loc="lower right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def pick_queries(n_queries: int, count: int, *, seed: int = 0) -> np.ndarray:
    """*count* query positions spread over the query list (deterministic for a seed)."""
    if n_queries <= count:
        return np.arange(n_queries)
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, n_queries, count + 1).astype(int)
    return np.array([rng.integers(lo, max(hi, lo + 1)) for lo, hi in pairwise(edges)])


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_result_grid(
    result: TaskResult,
    kind: str,
    path: Path,
    *,
    image_path: Callable[[int], Path],
    count: int = 6,
    seed: int = 0,
) -> Path:
    """Draw *count* queries (blue) and their top 8 gallery images, green border when right, red when wrong.

    Args:
        result: a scored task.
        kind: ``"float"`` or ``"binary"``: which ranking to show.
        path: the PNG to write.
        image_path: manifest row → image file.
        count: number of queries (rows of the grid).
        seed: which queries are shown.
    """
    from PIL import Image, ImageDraw

    p = result.protocol
    top = result.top_rows[kind]
    label_of = dict(zip(p.gallery_rows.tolist(), p.gallery_labels.tolist(), strict=True))
    picks = pick_queries(len(p.query_rows), count, seed=seed)
    cols = 1 + top.shape[1]
    cell_w, cell_h = _THUMB + 2 * _PAD, _THUMB + 2 * _PAD + _CAPTION
    header = 24
    canvas = Image.new("RGB", (cols * cell_w + _PAD, header + len(picks) * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    small, big = _font(11), _font(14)
    metric = "cosine" if kind == "float" else "Hamming"
    draw.text(
        (_PAD, 4),
        f"{p.task}: query (blue) and top {top.shape[1]} by {metric} ({kind}); green = same class",
        fill="black",
        font=big,
    )
    for r, qi in enumerate(picks):
        y = header + r * cell_h
        q_label = str(p.query_labels[qi])
        _paste(canvas, draw, image_path(int(p.query_rows[qi])), (_PAD, y), _BLUE, q_label, small)
        for c, g_row in enumerate(top[qi].tolist(), start=1):
            g_label = str(label_of[g_row])
            color = _GREEN if g_label == q_label else _RED
            _paste(canvas, draw, image_path(g_row), (c * cell_w + _PAD, y), color, g_label, small)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    return path


def _paste(
    canvas, draw, file: Path, xy: tuple[int, int], color: tuple[int, int, int], caption: str, font
) -> None:
    from PIL import Image

    from embsdk.errors import ImageDecodeError
    from embsdk.preprocess import DECODE_MARGIN, open_image

    x, y = xy
    try:  # the one bounded decoder: a huge photo decodes reduced, a decompression bomb becomes a grey tile
        thumb = open_image(file, min_side=DECODE_MARGIN * _THUMB)
        side = _THUMB - 2 * _BORDER
        scale = side / max(thumb.size)  # fit the box, upscaling small images too
        thumb = thumb.resize((max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))))
    except ImageDecodeError:
        thumb = Image.new("RGB", (_THUMB - 2 * _BORDER, _THUMB - 2 * _BORDER), (200, 200, 200))
    draw.rectangle([x, y, x + _THUMB - 1, y + _THUMB - 1], fill=color)
    ox = x + _BORDER + (_THUMB - 2 * _BORDER - thumb.width) // 2
    oy = y + _BORDER + (_THUMB - 2 * _BORDER - thumb.height) // 2
    draw.rectangle(
        [x + _BORDER, y + _BORDER, x + _THUMB - _BORDER - 1, y + _THUMB - _BORDER - 1], fill="white"
    )
    canvas.paste(thumb, (ox, oy))
    text = caption if len(caption) <= 18 else caption[:17] + "…"
    draw.text((x, y + _THUMB + 2), text, fill="black", font=font)
