"""Class subsampling benchmark: step time and peak memory of a normalized-softmax head vs number of classes.

One step = head forward (cosine logits / T), cross-entropy, backward, SGD update, on a batch of
embeddings. Two modes:

* ``full``: every step scores all C classes (dense proxy gradient, the whole C x D matrix is updated);
* ``sampled``: the batch's positive classes + ``--negatives`` sampled negatives are scored; proxy rows
  are gathered with a sparse gradient, so only those rows are touched by backward and the update.

Times: all points are timed round-robin in one process (machine noise hits each alike), medians.
Peak memory: each point in a fresh process, RSS high-water of 5 steps minus the RSS after the head was
built (so it excludes the C x D proxy matrix both modes hold), on CPU. Nothing is downloaded; data is random.

Usage:
    python bench/subsampling_bench.py [--classes 1000,10000,50000,200000] [--steps 40]
    (writes bench/results/subsampling_bench.txt)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _make(num_classes: int, mode: str, *, batch: int, dim: int, negatives: int) -> Callable[[], None]:
    import torch

    from trainer.heads import NormSoftmaxHead

    torch.manual_seed(0)
    sampled = mode == "sampled"
    head = NormSoftmaxHead(
        num_classes, dim, sample_negatives=negatives if sampled else None, sparse_grad=sampled
    )
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    emb = torch.randn(batch, dim, requires_grad=True)
    labels = torch.randint(0, num_classes, (batch,))

    def step() -> None:
        loss = head(emb, labels).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        emb.grad = None

    return step


def peak_memory(num_classes: int, mode: str, *, batch: int, dim: int, negatives: int, threads: int) -> dict:
    """In a fresh process: RSS high-water of 5 steps above the RSS after building the head."""
    import torch

    torch.set_num_threads(threads)
    step = _make(num_classes, mode, batch=batch, dim=dim, negatives=negatives)
    base = max(_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    for _ in range(5):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"classes": num_classes, "mode": mode, "step_peak_mb": max(0.0, peak - base)}


def step_times(classes: list[int], *, batch: int, dim: int, negatives: int, steps: int, threads: int) -> dict:
    """Median step time per (classes, mode), measured round-robin so machine noise hits every point alike."""
    import torch

    torch.set_num_threads(threads)
    runners = {
        (c, m): _make(c, m, batch=batch, dim=dim, negatives=negatives)
        for c in classes
        for m in ("sampled", "full")
    }
    times: dict[tuple[int, str], list[float]] = {k: [] for k in runners}
    for step in runners.values():  # warm-up
        for _ in range(2):
            step()
    full_every = max(1, steps // max(3, steps // 5))  # dense steps at 200k take seconds: time fewer of them
    for i in range(steps):
        for (c, m), step in runners.items():
            if m == "full" and i % full_every:
                continue
            t = time.perf_counter()
            step()
            times[(c, m)].append(time.perf_counter() - t)
    return {
        k: {
            "step_ms": 1000 * statistics.median(v),
            "p90_ms": 1000 * sorted(v)[int(0.9 * len(v))],
            "n": len(v),
        }
        for k, v in times.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", default="1000,10000,50000,200000")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--negatives", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/subsampling_bench.txt"))
    ap.add_argument("--memory-one", nargs=2, metavar=("CLASSES", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = {"batch": args.batch, "dim": args.dim, "negatives": args.negatives}
    if args.memory_one:
        print(
            json.dumps(
                peak_memory(int(args.memory_one[0]), args.memory_one[1], **shape, threads=args.threads)
            )
        )
        return
    classes = [int(x) for x in args.classes.split(",")]
    rows = []
    for c in classes:
        for mode in ("sampled", "full"):
            cmd = [
                sys.executable,
                __file__,
                "--memory-one",
                str(c),
                mode,
                *[f"--{k}={v}" for k, v in shape.items()],
                f"--threads={args.threads}",
            ]
            res = subprocess.run(
                cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1]
            )
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    timing = step_times(classes, **shape, steps=args.steps, threads=args.threads)
    for r in rows:
        r.update(timing[(r["classes"], r["mode"])], proxies_mb=r["classes"] * args.dim * 4 / 2**20)
    report = _format(rows, args)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")


def _format(rows: list[dict], args: argparse.Namespace) -> str:
    import torch

    by = {(r["classes"], r["mode"]): r for r in rows}
    classes = sorted({r["classes"] for r in rows})
    lines = [
        "Class subsampling benchmark (bench/subsampling_bench.py)",
        (
            f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, CPU, {args.threads} thread(s); "
            f"batch {args.batch}, dim {args.dim}, negatives {args.negatives}; median step time, all points timed round-robin "
            f"in one process ({args.steps} steps each for sampled, fewer for full: n below), 2 warm-up steps"
        ),
        (
            "step = forward + cross-entropy + backward + SGD update; step peak = RSS high-water of 5 steps above the RSS after "
            "building the head, each point in a fresh process (CPU)"
        ),
        "",
        f"{'classes':>8} | {'sampled ms':>10} {'p90':>7} {'peak MB':>8} | {'full ms':>9} {'p90':>8} {'n':>3} {'peak MB':>8} | {'full/sampled':>12} | proxies MB",
        "-" * 100,
    ]
    for c in classes:
        s, f = by[(c, "sampled")], by[(c, "full")]
        lines.append(
            f"{c:>8} | {s['step_ms']:10.2f} {s['p90_ms']:7.2f} {s['step_peak_mb']:8.1f} | {f['step_ms']:9.2f} "
            f"{f['p90_ms']:8.2f} {f['n']:3d} {f['step_peak_mb']:8.1f} | {f['step_ms'] / s['step_ms']:11.1f}x | {s['proxies_mb']:.0f}"
        )
    lo, hi = classes[0], classes[-1]
    rs = by[(hi, "sampled")]["step_ms"] / by[(lo, "sampled")]["step_ms"]
    rf = by[(hi, "full")]["step_ms"] / by[(lo, "full")]["step_ms"]
    lines += [
        "",
        f"ratio step({hi}) / step({lo}): sampled {rs:.2f}x (aim <= 1.5x: {'OK' if rs <= 1.5 else 'MISSED'}), full {rf:.1f}x",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
