"""``emb store``: inspect, verify, compact and index a generation's embedding store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli._output import JsonOpt, emit, info
from cli._sdk import DEFAULT_VERSION, NoRegistryOpt, StoreOpt, VersionOpt, make_client, resolved_label

__all__ = ["register"]

app = typer.Typer(
    help="Inspect, verify, compact and index embedding stores (one per generation).", no_args_is_help=True
)


def _info_human(d: dict[str, Any]) -> str:
    head = (
        f"{resolved_label(d['requested'], d['generation'])}: {d['items']} items, {len(d['shards'])} shard(s), "
        f"version {d['version']}, "
        f"{d['spec'].get('bits')} bits, vectors: {'yes' if d['has_vectors'] else 'no'}"
    )
    lines = [head, f"root: {d['root']}"]
    lines += [f"  {s['name']}\t{s['kind']}\t{s['rows']} rows\t{s['bytes']} bytes" for s in d["shards"]]
    return "\n".join(lines)


@app.command("info")
def info_command(
    version: VersionOpt = DEFAULT_VERSION,
    store: StoreOpt = None,
    no_registry: NoRegistryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a store: item count, shards (data and tombstones), spec, version.

    Example: emb store info -v unified-v1
    """
    data = make_client(store, no_registry).open_store(version).info()
    emit({"requested": version, **data}, as_json=as_json, human=_info_human)


@app.command("verify")
def verify_command(
    version: VersionOpt = DEFAULT_VERSION,
    store: StoreOpt = None,
    no_registry: NoRegistryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every live shard (generation, spec, sizes, sha256 of every file) and saved search index; exit 1
    when damaged.

    Example: emb store verify --version production
    """
    from embsdk.store import verify_store

    client = make_client(store, no_registry)
    report = verify_store(client.store_dir, client.resolve(version).name)
    emit(
        {"requested": version, **report.to_dict()},
        as_json=as_json,
        human=lambda d: "\n".join(
            [
                f"{resolved_label(d['requested'], d['generation'])}: {'ok' if d['ok'] else 'DAMAGED'} "
                + f"({d['shards']} shards, {d['items']} items)"
            ]
            + [f"  problem: {p}" for p in d["problems"]]
            + [f"  orphan (removed by compact): {o}" for o in d["orphans"]]
            + [
                f"  search index {x['kind']}: {x['status']}"
                + (" (rebuild it: emb store index)" if x["status"] != "ok" else "")
                for x in d["indexes"]
            ]
        ),
    )
    if not report.ok:
        shards_bad = any(not p.startswith("Search index ") for p in report.problems)
        info(
            f"error: the store of {report.generation} is damaged; "
            + (
                "rerun the backfill for it"
                if shards_bad
                else f"rebuild its search index: emb store index --version {report.generation}"
            )
        )
        raise typer.Exit(1)


@app.command("compact")
def compact_command(
    version: VersionOpt = DEFAULT_VERSION,
    publish: Annotated[
        bool, typer.Option("--publish", help="Register the compacted shard as artifacts of the generation.")
    ] = False,
    store: StoreOpt = None,
    no_registry: NoRegistryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Merge all shards into one, dropping deleted and superseded rows and crashed-write leftovers.

    Example: emb store compact -v unified-v1 --publish
    """
    from embsdk.store import compact_store

    client = make_client(store, no_registry)
    result = compact_store(
        client.store_dir, client.resolve(version).name, registry=client.registry if publish else None
    )
    emit(
        {"requested": version, **result.to_dict()},
        as_json=as_json,
        human=lambda d: (
            f"{resolved_label(d['requested'], d['generation'])}: {d['shards_before']} → {d['shards_after']} shard(s), {d['items']} items, version {d['version']}"
        ),
    )


@app.command("index")
def index_command(
    version: VersionOpt = DEFAULT_VERSION,
    kind: Annotated[
        str, typer.Option("--kind", help="hnsw (IndexBinaryHNSW) or ivf (IndexBinaryIVF).")
    ] = "hnsw",
    publish: Annotated[
        bool, typer.Option("--publish", help="Also register the index files as artifacts of the generation.")
    ] = False,
    store: StoreOpt = None,
    no_registry: NoRegistryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Build and save an approximate search index over the store's live codes (used by emb search --approx).

    Example: emb store index -v unified-v1 --kind hnsw
    """
    client = make_client(store, no_registry)
    ix = client.build_index(version, kind=kind, publish=publish)
    emit(
        {
            "requested": version,
            "generation": ix.generation,
            "kind": ix.kind,
            "items": len(ix),
            "params": ix.params,
        },
        as_json=as_json,
        human=lambda d: (
            f"{resolved_label(d['requested'], d['generation'])}: {d['kind']} index over {d['items']} items saved"
        ),
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="store")
