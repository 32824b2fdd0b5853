"""Backfill throughput vs bare ONNX Runtime on the same images, side by side in one process.

The model is the pretrained EfficientNet-Lite0 backbone with a 256-d embedding layer and LayerNorm-sign
binarization (random embedding weights: throughput does not depend on training), exported with the
project's exporter and registered in a scratch registry. Images are real Grocery Store photos.

* baseline: a plain loop: decode + preprocess each image (the shared ``embsdk.preprocess``), then
  ``InferenceSession.run`` per batch of 32; nothing else.
* backfill: ``embsdk.backfill.backfill`` (local engine): the same decode and model, plus the threaded
  prefetch, packed-code handling, store writes and atomic commits, and the report.

Usage: .venv/bin/python bench/backfill_bench.py [--images 512] [--batch-size 32]
Writes bench/results/backfill_bench.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int) -> list[Path]:
    from embsdk.config import get_settings

    grocery = get_settings().grocery_root
    lines = (grocery / "train.txt").read_text().splitlines()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(lines), size=min(n, len(lines)), replace=False)
    return [grocery / lines[i].split(",")[0].strip() for i in sorted(pick)]


def _baseline(onnx_path: Path, paths: list[Path], spec, batch_size: int) -> float:
    import onnxruntime as ort

    from embsdk.preprocess import load_image

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        batch = np.stack([load_image(p, spec) for p in paths[i : i + batch_size]])
        sess.run(["embedding", "code"], {"image": batch})
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    os.environ["EMB_HOME"] = str(work / "home")
    import pandas as pd

    from embsdk.backfill import backfill
    from registry import Registry
    from trainer.backbones import create_backbone
    from trainer.export import export_model
    from trainer.model import UnifiedEmbeddingModel

    paths = _images(args.images)
    backbone = create_backbone("efficientnet-lite0", pretrained=True)
    model = UnifiedEmbeddingModel(backbone, 256).eval()
    spec = backbone.default_input_spec
    export = work / "export"
    meta = export_model(model, export, input_spec=spec, parity_images=paths[:4])
    with Registry() as reg:
        reg.register(
            "bench-v1",
            family="bench",
            artifacts=[export / "model.onnx"],
            embedding_spec=meta["embedding_spec"],
            input_spec=spec.to_dict(),
        )

    base_rates, fill_rates = [], []
    for r in range(args.repeats):  # alternate, so drift on a shared machine hits both
        base_rates.append(_baseline(export / "model.onnx", paths, spec, args.batch_size))
        manifest = work / f"items{r}.csv"
        pd.DataFrame({"id": np.arange(len(paths)) + r * 10_000_000, "image": [str(p) for p in paths]}).to_csv(
            manifest, index=False
        )
        rep = backfill("bench-v1", manifest, batch_size=args.batch_size, progress=False, register_shards=True)
        assert rep.embedded == len(paths) and not rep.failed
        fill_rates.append(rep.embedded / rep.seconds)

    base, fill = max(base_rates), max(fill_rates)
    lines = [
        "# backfill_bench: emb backfill (local engine) vs bare ONNX Runtime, same images, same process",
        (
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; model: efficientnet-lite0 "
            f"224px -> 256-bit code; {len(paths)} Grocery photos; batch {args.batch_size}; best of {args.repeats}"
        ),
        "",
        f"{'path':<44}{'images/s':>10}",
        f"{'bare ONNX Runtime (decode+preprocess+run)':<44}{base:>10.1f}",
        f"{'embsdk backfill (incl. store writes)':<44}{fill:>10.1f}",
        "",
        f"ratio backfill / bare ORT: {fill / base:.2f}x  (aim >= 0.9x)",
        f"all runs: bare {[round(x, 1) for x in base_rates]}, backfill {[round(x, 1) for x in fill_rates]}",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results" / "backfill_bench.txt"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
