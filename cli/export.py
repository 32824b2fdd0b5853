"""``emb export``: a run's model → ONNX (code packed in the graph) + parity report; optional TensorRT engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit, info

__all__ = ["register"]


def _human(data: dict[str, Any]) -> str:
    p, spec = data["parity"], data["embedding_spec"]
    return "\n".join(
        [
            f"wrote {data['out']}/model.onnx (opset {data['opset']}, sha256 {data['model']['sha256'][:12]}…, {data['model']['bytes']:,} bytes)",
            f"  input  image float32 {data['inputs'][0]['shape']}   outputs embedding float32 [-1, {spec['dim']}], code uint8 [-1, {spec['code_bytes']}]",
            (
                f"  parity on {p['n_images']} images: float max |diff| {p['max_abs_diff']:.2e} (≤ {p['float_tol']:g}), "
                f"bits agree {p['bit_agreement']:.4%} (≥ {p['bit_agreement_min']:.1%})"
            ),
        ]
        + ([f"  tensorrt: {data['tensorrt']['engine']}"] if data.get("tensorrt") else [])
    )


def export_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by `emb train`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Export folder to write (model.onnx, export.json).")
    ],
    images: Annotated[
        list[Path] | None,
        typer.Option(
            "--images",
            help="Parity images (repeatable). Default: up to 16 images of the run's manifest, held-out splits first.",
        ),
    ] = None,
    tensorrt: Annotated[
        bool,
        typer.Option(
            "--tensorrt/--no-tensorrt",
            help="Also build an FP16 TensorRT engine (needs CUDA and the tensorrt package).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a run's model to ONNX and check parity with PyTorch.

    ONNX opset 17, dynamic batch; outputs the float embedding and the packed code (packed inside the
    graph). Checked with onnx.checker, then against PyTorch on real images (float max |diff| ≤ 1e-4,
    ≥ 99.9% of bits equal). A failing parity check writes nothing.

    Example: emb export runs/unified --out exports/unified
    """
    from trainer.export import export_run

    data = export_run(run, out, images=images)
    data["out"] = str(out)
    if tensorrt:
        from trainer.tensorrt import build_engine

        data["tensorrt"] = build_engine(out / "model.onnx", out)
    info(
        f"parity: max |diff| {data['parity']['max_abs_diff']:.2e}, bits agree {data['parity']['bit_agreement']:.4%}"
    )
    emit(data, as_json=as_json, human=_human)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
