"""The README's first command: the main job end to end on the embedded defaults (EMB_HOME, default ~/.embsdk).

Every step runs the public ``emb`` command, exactly as a user would type it:

  1. emb data grocery           manifests for the Grocery Store photos (3 tasks, the dataset's splits)
  2. emb train  (×2)            two unified models (frozen pretrained EfficientNet-Lite0, cached features)
  3. emb eval                   retrieval metrics float vs binary, report with plots and result grids
  4. emb publish (×2)           unified-vN and unified-vN+1 (lineage: replaces), aliases, lifecycle
  5. emb registry ...           show, lineage, consumers, fsck
  6. emb backfill               the store for every Grocery image
  7. emb serve + emb embed      the real tritonserver; embed a photo over gRPC and HTTP
  8. emb search                 top-5 Hamming neighbours of one photo (labels and paths from the store's manifest)

Run it again and it adds the next two generations (names are never reused: generations are immutable).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from embsdk.config import get_settings

EMB = str(Path(sys.executable).with_name("emb"))


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def emb(*args: str, capture: bool = False) -> str:
    """Run ``emb ARGS`` (echoed first); raise on failure."""
    print("$ emb " + " ".join(args), flush=True)
    proc = subprocess.run([EMB, *args], text=True, stdout=subprocess.PIPE if capture else None, check=False)
    if proc.returncode != 0:
        sys.exit(f"demo: 'emb {' '.join(args)}' failed with exit code {proc.returncode}")
    return proc.stdout or ""


def emb_json(*args: str) -> object:
    return json.loads(emb(*args, "--json", capture=True))


def next_version(family: str) -> int:
    names = [g["name"] for g in emb_json("registry", "list")]  # type: ignore[union-attr]
    taken = [
        int(n.rsplit("-v", 1)[1])
        for n in names
        if n.startswith(f"{family}-v") and n.rsplit("-v", 1)[1].isdigit()
    ]
    return max(taken, default=0) + 1


def main() -> None:
    ap = argparse.ArgumentParser(description="embsdk end-to-end demo on the Grocery Store dataset.")
    ap.add_argument(
        "--grocery",
        type=Path,
        default=None,
        help="Grocery Store dataset folder (default $EMB_GROCERY_ROOT, else ../shared/data/grocery-store).",
    )
    ap.add_argument(
        "--epochs", type=int, default=8, help="Epochs of the second (published to production) model."
    )
    ap.add_argument("--dim", type=int, default=256, help="Embedding dimension = code bits.")
    ap.add_argument("--skip-serve", action="store_true", help="Do not start tritonserver.")
    args = ap.parse_args()

    settings = get_settings()
    home = settings.home
    print(f"EMB_HOME={home}\nregistry={settings.registry_url_redacted}", flush=True)
    t0 = time.monotonic()

    banner("1. Manifests for the Grocery Store dataset")
    data_dir = home / "data"
    emb("data", "grocery", *(["--root", str(args.grocery)] if args.grocery else []), "--out", str(data_dir))
    manifest = data_dir / "grocery.csv"

    emb("registry", "migrate")  # create the embedded registry (or bring it to this version's schema)
    v = next_version("unified")
    first, second = f"unified-v{v}", f"unified-v{v + 1}"
    runs = home / "runs"

    banner(f"2. Train two unified models ({first}: short, {second}: longer) on all three tasks")
    run_a, run_b = runs / first, runs / second
    for run in (run_a, run_b):
        if run.exists():
            shutil.rmtree(run)
    common = [
        "--manifest",
        str(manifest),
        "--backbone",
        "efficientnet-lite0",
        "--freeze-backbone",
        "--embedding-dim",
        str(args.dim),
        "--binary-loss-weight",
        "1",
        "--seed",
        "0",
    ]
    emb("train", *common, "--out", str(run_a), "--epochs", str(max(1, args.epochs // 4)))
    emb("train", *common, "--out", str(run_b), "--epochs", str(args.epochs))

    banner(f"3. Evaluate {second}: held-out photos, float (cosine) vs binary (Hamming)")
    report = run_b / "eval"
    emb("eval", str(run_b), "--manifest", str(manifest), "--report", str(report))
    print((report / "summary.md").read_text(), flush=True)

    banner("4. Publish both as generations (export, parity check, artifacts by sha256, lineage)")
    emb("publish", str(run_a), "--name", first, "--alias", "staging")
    emb("publish", str(run_b), "--name", second, "--parent", f"{first}:replaces", "--alias", "staging")
    emb("registry", "promote", second, "--to", "staging", "--reason", "demo: evaluated on grocery-test")
    emb("registry", "promote", second, "--to", "production", "--reason", "demo: beats " + first)
    emb("registry", "alias", "set", "production", second, "--force", "--reason", "demo release")
    emb("registry", "consumers", "add", "visual-search-team", "production")

    banner("5. The registry: what was published, where it came from")
    emb("registry", "list")
    emb("registry", "show", "production")
    emb("registry", "lineage", second)
    emb("registry", "fsck")

    banner(f"6. Backfill the embedding store of {second} with every Grocery image")
    emb("backfill", "--version", "production", "--manifest", str(manifest), "--batch-size", "32")
    emb("store", "info", "--version", second)

    photo = _first_test_photo(manifest)
    if not args.skip_serve:
        banner("7. Serve with the real tritonserver; embed a photo over gRPC and HTTP")
        server = subprocess.Popen([EMB, "serve", "--http-port", "18000", "--grpc-port", "18001"], text=True)
        try:
            _wait_ready(server)
            emb("serve", "--check", "--url", "127.0.0.1:18000")
            emb("embed", str(photo), "--version", second, "--url", "127.0.0.1:18001", "--protocol", "grpc")
            emb(
                "embed",
                str(photo),
                "--version",
                "production",
                "--url",
                "127.0.0.1:18000",
                "--protocol",
                "http",
            )
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)

    banner("8. Search: top-5 Hamming neighbours of one test photo")
    item_id = _id_of(manifest, photo)
    # no --version: the production alias; each hit shows its label and image path, the query itself left out
    emb("search", "--id", str(item_id), "-k", "5")
    hits = emb_json("search", "--id", str(item_id), "-k", "5")  # the query item itself is left out
    _print_hits(manifest, item_id, hits)  # type: ignore[arg-type]

    print(f"\ndemo finished in {time.monotonic() - t0:.0f}s; report: {report}", flush=True)


def _first_test_photo(manifest: Path) -> Path:
    import pandas as pd

    df = pd.read_csv(manifest)
    row = df[(df["split"] == "test") & (df["domain"] == "photo")].iloc[0]
    return Path(row["image"]) if Path(row["image"]).is_absolute() else manifest.parent / row["image"]


def _id_of(manifest: Path, photo: Path) -> int:
    import pandas as pd

    df = pd.read_csv(manifest)
    paths = [str(Path(p) if Path(p).is_absolute() else manifest.parent / p) for p in df["image"]]
    return int(df["id"].iloc[paths.index(str(photo))])


def _print_hits(manifest: Path, query_id: int, hits: dict) -> None:
    """The neighbours marked by whether their fine class (printed by emb search) is the query's."""
    import pandas as pd

    df = pd.read_csv(manifest).set_index("id")
    want = df.loc[query_id, "task.fine"]
    print(f"query {query_id}: {want}  ({df.loc[query_id, 'image']})")
    for rank, hit in enumerate(hits["hits"], start=1):
        fine = hit.get("labels", {}).get("fine", "?")
        mark = "✓" if fine == want else "✗"
        print(f"  {rank}. {mark} hamming {hit['hamming']:>3}  {fine:<24} {Path(hit.get('image', '?')).name}")


def _wait_ready(server: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    import urllib.request

    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"demo: emb serve exited with code {server.returncode}")
        try:
            if urllib.request.urlopen("http://127.0.0.1:18000/v2/health/ready", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.5)
    sys.exit("demo: tritonserver did not become ready")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
