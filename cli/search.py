"""``emb search``: nearest items by Hamming distance to a stored item or to a new image.

Each hit is printed with its label and image path when the store records the manifest it was backfilled
from (``emb backfill`` writes it into the store's MANIFEST.json); a moved or deleted manifest only drops
those columns, with a note on stderr. A query by ``--id`` leaves the item itself out unless ``--include-self``
(``Client.search(..., exclude_self=True)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit, info
from cli._sdk import DEFAULT_VERSION, NoRegistryOpt, StoreOpt, VersionOpt, make_client, resolved_label

__all__ = ["item_details", "register"]


def item_details(store_dir: Path, generation: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """``{id: {"image": path, "label": text, "labels": {task: value}}}`` for the *ids* found in the manifests the
    generation's store was backfilled from (newest first). Empty, with a note on stderr, when they are gone."""
    import hashlib

    from embsdk.errors import EmbsdkError
    from embsdk.manifest import read_table
    from embsdk.store._manifest import generation_root, read_manifest

    try:
        sources = read_manifest(generation_root(store_dir, generation), generation).sources
    except EmbsdkError:
        return {}
    wanted = set(ids)
    found: dict[int, dict[str, Any]] = {}
    for src in reversed(sources):
        path = Path(str(src.get("path", "")))
        if not path.is_file():
            info(f"note: {path} (the manifest {generation} was backfilled from) is gone; no labels or paths")
            continue
        if src.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != src["sha256"]:
            info(f"note: {path} changed since the backfill of {generation}; labels and paths may be stale")
        try:
            df = read_table(path, required=("id",))
        except EmbsdkError as exc:
            info(f"note: cannot read {path} for labels ({exc})")
            continue
        df = df[df["id"].isin(wanted - set(found))]
        tasks = [c for c in df.columns if c.startswith("task.")]
        base = path.resolve().parent
        for row in df.to_dict("records"):
            labels = {t[5:]: str(row[t]) for t in tasks if _present(row[t])}
            detail: dict[str, Any] = {"labels": labels}
            if _present(row.get("label")):
                detail["label"] = str(row["label"])
            elif labels:
                detail["label"] = " / ".join(labels.values())
            if _present(row.get("image")):
                image = Path(str(row["image"]))
                detail["image"] = str(image if image.is_absolute() else base / image)
            found[int(row["id"])] = detail
        if len(found) == len(wanted):
            break
    return found


def _present(value: Any) -> bool:
    return value is not None and str(value) not in ("", "nan", "None", "<NA>")


def _human(data: dict[str, Any]) -> str:
    scored = "scores" in data
    left_out = (
        f" ({data['query_id']} itself left out; --include-self keeps it)" if data["excluded_self"] else ""
    )
    lines = [
        f"top {len(data['hits'])} in {resolved_label(data['requested'], data['generation'])}{left_out}:",
        "rank\tid\thamming" + ("\tscore" if scored else "") + "\tlabel\timage",
    ]
    for r, hit in enumerate(data["hits"], 1):
        score = f"\t{hit['score']:.4f}" if scored else ""
        lines.append(
            f"{r}\t{hit['id']}\t{hit['hamming']}{score}\t{hit.get('label', '-')}\t{hit.get('image', '-')}"
        )
    return "\n".join(lines)


def search_command(
    version: VersionOpt = DEFAULT_VERSION,
    item_id: Annotated[
        int | None, typer.Option("--id", help="Query with the code of this stored item.")
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", help="Query with this image, embedded by the generation's model."),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results: an integer from 1 to 10,000.")] = 10,
    include_self: Annotated[
        bool,
        typer.Option(
            "--include-self", help="With --id: keep the query item in the results (left out by default)."
        ),
    ] = False,
    approx: Annotated[
        bool, typer.Option("--approx", help="Use the saved approximate index (see emb store index).")
    ] = False,
    kind: Annotated[str, typer.Option("--kind", help="Approximate index kind: hnsw or ivf.")] = "hnsw",
    rerank: Annotated[
        bool, typer.Option("--rerank", help="Re-rank Hamming candidates by float16 cosine similarity.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Triton HOST:PORT to embed --image with (default: in-process ONNX Runtime)."
        ),
    ] = None,
    protocol: Annotated[str, typer.Option("--protocol", help="http or grpc (with --url).")] = "http",
    store: StoreOpt = None,
    no_registry: NoRegistryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find the K items nearest to --id ID or --image PATH (exact Hamming search unless --approx).

    Each hit shows its label and image path from the manifest the store was backfilled from. A query by --id
    leaves the item itself out (K other items) unless --include-self. VERSION defaults to the production
    alias; the first line says what it resolved to (e.g. "production → unified-v2").

    Example: emb search --id 12 -v unified-v1 -k 5
    """
    if (item_id is None) == (image is None):
        raise typer.BadParameter("give exactly one of --id ID or --image PATH")
    query: Any = item_id if item_id is not None else image
    client = make_client(store, no_registry, url=url, protocol=protocol)
    exclude = item_id is not None and not include_self
    result = client.search(
        query, version, k=k, exact=not approx, rerank=rerank, kind=kind, exclude_self=exclude
    )
    details = item_details(client.store_dir, result.generation, [h.id for h in result])
    hits = []
    for hit in result:
        row: dict[str, Any] = {"id": hit.id, "hamming": hit.distance}
        if hit.score is not None:
            row["score"] = hit.score
        hits.append({**row, **details.get(hit.id, {})})
    data = {
        "requested": version,
        **result.to_dict(),
        "hits": hits,
        "excluded_self": exclude,
        "query_id": item_id,
    }
    emit(data, as_json=as_json, human=_human)


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
