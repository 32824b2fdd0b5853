"""Serving benchmark: in-process ONNX Runtime vs Triton HTTP vs Triton gRPC, side by side, one run.

Model: the pretrained EfficientNet-Lite0 backbone under a UnifiedEmbeddingModel head (256-bit code) —
a trained run when ``--run`` is given, otherwise the untrained head over the pretrained backbone (the
serving cost is the same). Inputs: real Grocery photos, preprocessed once. For each path, batch size
(1, 32) and client concurrency (1, 8), a bounded loop of client threads sends requests for a fixed time
and records each request's latency; any failed request makes the run fail (zero tolerated).

    .venv/bin/python -m bench.serve_bench [--run RUN] [--seconds 6] [--out bench/results/serve_bench.txt]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _images(n: int) -> list[Path]:
    from embsdk.config import get_settings

    grocery = get_settings().grocery_root  # EMB_GROCERY_ROOT
    listing = grocery / "test.txt"
    if not listing.is_file():
        raise SystemExit(f"Grocery data not found at {grocery}; set EMB_GROCERY_ROOT")
    rels = [line.split(",")[0].strip() for line in listing.read_text().splitlines() if line.strip()]
    step = max(1, len(rels) // n)
    return [grocery / r.lstrip("/") for r in rels[::step][:n]]


def _export(run: Path | None, out: Path, images: list[Path]) -> dict:
    from trainer.export import export_model, export_run

    if run is not None:
        return export_run(run, out, images=images[:16])
    import torch

    from trainer.backbones import create_backbone
    from trainer.model import UnifiedEmbeddingModel

    torch.manual_seed(0)
    model = UnifiedEmbeddingModel(create_backbone("efficientnet-lite0", pretrained=True), 256).eval()
    return export_model(
        model,
        out,
        input_spec=model.input_spec,
        parity_images=images[:16],
        source={"model": "efficientnet-lite0 (pretrained) + untrained 256-d head"},
    )


def _measure(
    make_call: Callable[[], Callable[[np.ndarray], object]],
    batch: np.ndarray,
    *,
    concurrency: int,
    seconds: float,
) -> dict:
    """Run ``concurrency`` client threads for ``seconds``; each has its own client from ``make_call``."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = float("inf")  # set once every client is warm
    barrier = threading.Barrier(concurrency + 1)

    def worker() -> None:
        call = make_call()
        call(batch)  # warm this client's connection
        barrier.wait()
        mine = []
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                call(batch)
            except Exception as exc:  # counted, and fails the run  # noqa: BLE001
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
        close = getattr(call, "close", None)
        if close:
            close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    stop_at = start + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1e3
    return {
        "requests": len(lat),
        "failed": len(failures),
        "first_failure": failures[0] if failures else "",
        "images_per_s": len(lat) * len(batch) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--run", type=Path, help="a trained run folder (default: pretrained backbone + untrained head)"
    )
    ap.add_argument("--seconds", type=float, default=6.0, help="measuring time per cell")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--instances", type=int, default=2, help="Triton model instances (stub processes)")
    ap.add_argument(
        "--ort-threads", type=int, default=0, help="ONNX Runtime threads per instance (0: cores / instances)"
    )
    ap.add_argument("--delay-us", type=int, default=500, help="Triton dynamic-batching queue delay")
    ap.add_argument("--note", action="append", default=[], help="a line to add to the report (repeatable)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_bench.txt")
    args = ap.parse_args()

    from embsdk.preprocess import load_images
    from embsdk.serving.client import TritonClient
    from embsdk.serving.local import LocalRunner
    from embsdk.serving.server import TritonServer
    from triton_models.repository import ModelRepository

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    os.environ.setdefault("EMB_HOME", str(work / "home"))
    try:
        photos = _images(64)
        t0 = time.perf_counter()
        info = _export(args.run, work / "export", photos)
        export_s = time.perf_counter() - t0
        from embsdk.preprocess import InputSpec

        spec = InputSpec.from_dict(info["input_spec"])
        pool = load_images(photos, spec)
        threads = os.cpu_count() or 1
        ort_threads = args.ort_threads or max(1, threads // args.instances)
        repo = ModelRepository(work / "repo")
        repo.add(
            work / "export",
            generation="bench-v1",
            ort_threads=ort_threads,
            instances=args.instances,
            max_queue_delay_us=args.delay_us,
        )
        runner = LocalRunner(work / "export" / "model.onnx", threads=threads)
        rows = []
        with TritonServer(repo.root, http_port=0, grpc_port=0) as server:
            ep = server.endpoints

            def triton(protocol: str, url: str) -> Callable[[], Callable[[np.ndarray], object]]:
                def make() -> Callable[[np.ndarray], object]:
                    client = TritonClient(url, protocol=protocol, timeout=120, retries=0)  # type: ignore[arg-type]

                    def call(x: np.ndarray) -> object:
                        return client.infer("unified", 1, x)

                    call.close = client.close  # type: ignore[attr-defined]
                    return call

                return make

            paths = {
                "in-process ORT": lambda: runner.run,
                "Triton HTTP": triton("http", ep.http_url),
                "Triton gRPC": triton("grpc", ep.grpc_url),
            }
            # identical codes on every path, before timing anything
            ref = runner.run(pool[:8])[1]
            for name, make in paths.items():
                np.testing.assert_array_equal(make()(pool[:8])[1], ref, err_msg=name)
            for batch_size in args.batches:
                batch = np.ascontiguousarray(pool[:batch_size])
                for conc in args.concurrency:
                    for name, make in paths.items():
                        r = _measure(make, batch, concurrency=conc, seconds=args.seconds)
                        rows.append({"path": name, "batch": batch_size, "concurrency": conc, **r})
                        print(
                            f"{name:<15} batch {batch_size:>2} conc {conc}: {r['images_per_s']:7.1f} img/s "
                            f"p50 {r['p50_ms']:7.1f} ms p99 {r['p99_ms']:7.1f} ms ({r['requests']} req, {r['failed']} failed)",
                            flush=True,
                        )
        text = _report(rows, info, export_s, args, ort_threads=ort_threads)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(text)
        return 1 if any(r["failed"] for r in rows) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(
    rows: list[dict], info: dict, export_s: float, args: argparse.Namespace, *, ort_threads: int
) -> str:
    p = info["parity"]
    load = os.getloadavg()
    lines = [
        "# serve_bench: in-process ONNX Runtime vs Triton HTTP vs Triton gRPC (tritonserver 2.51, CPU python backend)",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average at end {load[0]:.1f} (shared with other jobs)",
        (
            f"model: {info['source'].get('model') or info['source'].get('run')}; input {info['inputs'][0]['shape']}; "
            f"{info['embedding_spec']['bits']}-bit code packed in the ONNX graph"
        ),
        (
            f"export {export_s:.1f} s; parity on {p['n_images']} Grocery photos: float max |diff| {p['max_abs_diff']:.1e}, "
            f"bits agree {p['bit_agreement']:.4%}"
        ),
        (
            f"in-process ORT: {os.cpu_count()} threads; Triton: {args.instances} instance(s) x "
            f"{ort_threads} ORT threads, dynamic batching with "
            f"{args.delay_us} us queue delay; {args.seconds:g} s per cell; codes identical on all three paths"
        ),
        "",
        f"{'path':<16}{'batch':>6}{'conc':>6}{'requests':>10}{'images/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}",
    ]
    for r in rows:
        lines.append(
            f"{r['path']:<16}{r['batch']:>6}{r['concurrency']:>6}{r['requests']:>10}{r['images_per_s']:>10.1f}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['failed']:>8}"
        )
    lines += ["", "Triton / in-process throughput ratio (same batch, same concurrency):"]
    base = {(r["batch"], r["concurrency"]): r["images_per_s"] for r in rows if r["path"] == "in-process ORT"}
    for r in rows:
        if r["path"] != "in-process ORT":
            lines.append(
                f"  {r['path']:<12} batch {r['batch']:>2} conc {r['concurrency']}: "
                f"{r['images_per_s'] / base[(r['batch'], r['concurrency'])]:.2f}x"
            )
    lines.append(f"failed requests in total: {sum(r['failed'] for r in rows)}")
    lines += [f"note: {n}" for n in args.note]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
