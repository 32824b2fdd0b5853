"""``emb embed``: binary codes for image files with a generation, over Triton or in-process ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit
from cli._sdk import DEFAULT_VERSION, resolved_label

__all__ = ["register"]


def embed_command(
    images: Annotated[list[Path], typer.Argument(help="Image files to embed.")],
    version: Annotated[
        str,
        typer.Option(
            "--version",
            "-v",
            help="Generation name or alias (resolved in the registry), or an export folder "
            "(default: the production alias).",
        ),
    ] = DEFAULT_VERSION,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Triton address host:port, e.g. 127.0.0.1:8001 for gRPC. Default: in-process ONNX Runtime.",
        ),
    ] = None,
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="http or grpc (with --url).")] = "http",
    with_float: Annotated[bool, typer.Option("--float", help="Also print the float embedding.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per request.")] = 32,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Embed images with a generation (Triton or in-process) and print their codes.

    Each image's code (hex) is printed with the generation that made it; VERSION defaults to the production
    alias, and what it resolved to is printed first (e.g. "production → unified-v2").

    Example: emb embed photo.jpg --version unified-v1 --url 127.0.0.1:8001 --protocol grpc --json
    """
    from embsdk.embed import embed

    result = embed(
        list(images),
        version,
        url=url,
        protocol=protocol,
        return_float=with_float,  # type: ignore[arg-type]
        batch_size=batch_size,
        timeout=timeout,
    )
    rows: list[dict[str, Any]] = [
        {"image": str(p), "requested": str(version), **e.to_dict()} for p, e in zip(images, result)
    ]
    for row in rows:
        row.pop("item_id", None)

    def human(data: list[dict[str, Any]]) -> str:
        head = (
            [f"{resolved_label(str(version), data[0]['generation'])} ({data[0]['bits']} bits)"]
            if data
            else []
        )
        return "\n".join(
            head + [f"{r['image']}\t{r['generation']}\t{r['bits']} bits\t{r['code_hex']}" for r in data]
        )

    emit(rows, as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed_command)
