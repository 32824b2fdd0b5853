"""``emb get``: the stamped codes of items by id, from a generation's embedding store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit
from cli._sdk import DEFAULT_VERSION, NoRegistryOpt, StoreOpt, VersionOpt, make_client, resolved_label

__all__ = ["register"]


def _human(data: dict[str, Any]) -> str:
    lines = [f"{resolved_label(data['requested'], data['generation'])} ({data['bits']} bits)"]
    for item in data["items"]:
        lines.append(f"{item['item_id']}\t{item['code_hex']}")
    return "\n".join(lines)


def get_command(
    ids: Annotated[list[int], typer.Argument(help="Item ids (64-bit signed integers).", metavar="ID...")],
    version: VersionOpt = DEFAULT_VERSION,
    vectors: Annotated[
        bool, typer.Option("--vectors", help="Also print the float16 vectors, when stored.")
    ] = False,
    skip_missing: Annotated[
        bool, typer.Option("--skip-missing", help="Leave out unknown ids instead of failing.")
    ] = False,
    store: StoreOpt = None,
    no_registry: NoRegistryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the binary code (hex, numpy.packbits order) of each ID in the store of generation VERSION.

    VERSION defaults to the production alias; the first line says what it resolved to
    (e.g. "production → unified-v2"). Unknown ids fail with the list of them unless --skip-missing.

    Example: emb get 12 7 -v unified-v1 --json
    """
    batch = make_client(store, no_registry).get_embeddings(
        ids, version, skip_missing=skip_missing, with_vectors=vectors
    )
    emit({"requested": version, **batch.to_dict()}, as_json=as_json, human=_human)


def register(app: typer.Typer) -> None:
    app.command("get")(get_command)
