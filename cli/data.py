"""``emb data``: write and check training manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._output import JsonOpt, emit, info

__all__ = ["register"]

app = typer.Typer(
    help="Write and validate training manifests (CSV/Parquet: image, id, task.<name>, domain, split).",
    no_args_is_help=True,
)


@app.command("grocery")
def grocery(
    out: Annotated[Path, typer.Option("--out", help="Folder to write grocery.csv into.")] = Path("data"),
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="The Grocery Store dataset folder (default $EMB_GROCERY_ROOT, else ../shared/data/grocery-store).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Write OUT/grocery.csv for the Grocery Store dataset: tasks coarse (semantic), fine (product), catalog (photo → iconic image).

    Photos keep the dataset's train/val/test splits; the 81 iconic images are split=train, domain=catalog,
    and serve as the catalog gallery for every split. Image paths are absolute (the dataset is not copied).

    Example: emb data grocery --out data --root ../shared/data/grocery-store
    """
    from trainer.data.grocery import write_grocery_manifest
    from trainer.data.manifest import Manifest

    path = write_grocery_manifest(root, out)
    m = Manifest.load(path)
    counts = m.rows.groupby(["split", "domain"]).size()
    summary = {
        "manifest": str(path),
        "rows": len(m),
        "sha256": m.sha256,
        "tasks": {t: len(m.classes(t)) for t in m.tasks},
        "rows_by_split_domain": {f"{s}/{d}": int(n) for (s, d), n in counts.items()},
    }
    emit(
        summary,
        as_json=json_,
        human=lambda s: (
            f"wrote {s['manifest']} ({s['rows']} rows)\n"
            + "tasks: "
            + ", ".join(f"{t} ({n} classes)" for t, n in s["tasks"].items())
            + "\n"
            + "rows: "
            + ", ".join(f"{k} {v}" for k, v in s["rows_by_split_domain"].items())
        ),
    )


@app.command("validate")
def validate_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest file (.csv or .parquet).")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on the first bad row instead of counting them.")
    ] = False,
    no_images: Annotated[
        bool, typer.Option("--no-images", help="Skip opening every image (faster, misses corrupt files).")
    ] = False,
    split: Annotated[str | None, typer.Option("--split", help="Only check rows of this split.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Check a manifest: images readable, labels in the train vocabulary, every row labeled. Exit 1 if any row is bad.

    Example: emb data validate data/grocery.csv --split test --json
    """
    from embsdk.errors import ManifestError
    from trainer.data.manifest import SPLITS, Manifest, validate

    if split is not None and split not in SPLITS:
        raise ManifestError(f"unknown split {split!r} (use {', '.join(SPLITS)})", path=str(manifest))
    m = Manifest.load(manifest, strict=strict)
    report = validate(m, strict=strict, check_images=not no_images, rows=m.indices(split))
    emit(
        {"manifest": str(m.path), "tasks": m.tasks, **report.to_dict()},
        as_json=json_,
        human=lambda _: report.summary() + "".join(f"\n  {b}" for b in report.bad[:20]),
    )
    if report.bad:
        info(f"{len(report.bad)} bad row(s)")
        raise typer.Exit(code=1)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")
