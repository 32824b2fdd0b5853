"""``emb search``: nearest items by Hamming distance to a stored item or to a new image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit
from cli._sdk import NoRegistryOpt, StoreOpt, VersionOpt, make_client

__all__ = ["register"]


def _human(data: dict[str, Any]) -> str:
    lines = [
        f"top {len(data['ids'])} in {data['generation']}:",
        "rank\tid\thamming" + ("\tscore" if "scores" in data else ""),
    ]
    for r, (i, h) in enumerate(zip(data["ids"], data["hamming"]), 1):
        lines.append(f"{r}\t{i}\t{h}" + (f"\t{data['scores'][r - 1]:.4f}" if "scores" in data else ""))
    return "\n".join(lines)


def search_command(
    version: VersionOpt,
    item_id: Annotated[
        int | None, typer.Option("--id", help="Query with the code of this stored item.")
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", help="Query with this image, embedded by the generation's model."),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results: an integer from 1 to 10,000.")] = 10,
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

    Example: emb search --id 12 --version unified-v1 -k 5
    """
    if (item_id is None) == (image is None):
        raise typer.BadParameter("give exactly one of --id ID or --image PATH")
    query: Any = item_id if item_id is not None else image
    result = make_client(store, no_registry, url=url, protocol=protocol).search(
        query, version, k=k, exact=not approx, rerank=rerank, kind=kind
    )
    emit(result.to_dict(), as_json=as_json, human=_human)


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
