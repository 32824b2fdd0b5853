"""Registry benchmark: register / resolve / lineage on SQLite and PostgreSQL, 10,000 generations, depth 1,000.

resolve(name) latency is reported as a ratio to a bare ``SELECT … WHERE id = ?`` by primary key on the
same engine (each timed with its own connection checkout, as resolve does), at 100 and at 10,000
generations, to show it does not grow with the registry. Lineage walks use one recursive CTE per direction.

    .venv/bin/python bench/registry_bench.py                 # both backends, writes bench/results/registry_bench.txt
    .venv/bin/python bench/registry_bench.py --backends sqlite --total 2000 --depth 200   # quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry import Registry, default_embedding_spec
from registry.models import Generation

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _ms(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs) * 1e3, xs[int(0.95 * (len(xs) - 1))] * 1e3


@contextmanager
def _backend(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as d:
            yield f"sqlite:///{d}/registry.db"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _resolve_vs_pk(reg: Registry, names: list[str], samples: int, rng: random.Random) -> dict[str, float]:
    engine = reg._engine
    with engine.connect() as c:
        ids = list(c.execute(sa.select(Generation.id)).scalars())
    stmt = sa.select(Generation.id, Generation.name, Generation.status).where(
        Generation.id == sa.bindparam("i")
    )

    def bare() -> None:
        with engine.connect() as c:
            c.execute(stmt, {"i": rng.choice(ids)}).one()

    def resolve() -> None:
        reg.resolve(rng.choice(names))

    def resolve_alias() -> None:
        reg.resolve("production")

    for fn in (bare, resolve):  # warm caches and the statement cache
        _timed(fn, 50)
    pk_med, pk_p95 = _ms(_timed(bare, samples))
    r_med, r_p95 = _ms(_timed(resolve, samples))
    a_med, _ = _ms(_timed(resolve_alias, samples))
    return {
        "pk_ms": pk_med,
        "pk_p95": pk_p95,
        "resolve_ms": r_med,
        "resolve_p95": r_p95,
        "alias_ms": a_med,
        "ratio": r_med / pk_med,
    }


def run_backend(kind: str, total: int, depth: int, samples: int, artifact_every: int) -> dict[str, object]:
    rng = random.Random(0)
    res: dict[str, object] = {"backend": kind}
    with _backend(kind) as url, tempfile.TemporaryDirectory() as art:
        reg = Registry(url, artifact_dir=Path(art), user="bench")
        art_file = Path(art) / "in.bin"
        spec = default_embedding_spec(256)
        names: list[str] = []
        reg_times: list[float] = []

        def register(name: str, parents: list[tuple[str, str]], i: int) -> None:
            arts = []
            if artifact_every and i % artifact_every == 0:
                art_file.write_bytes(f"model {name}".encode() * 64)
                arts = [("model.onnx", art_file)]
            t0 = time.perf_counter()
            reg.register(
                name,
                parents=parents,
                artifacts=arts,
                embedding_spec=spec,
                code_version="bench",
                metrics={"coarse/bench/r@1/binary": rng.random()},
            )
            reg_times.append(time.perf_counter() - t0)
            names.append(name)
            if len(names) == 100:
                reg.set_alias("production", names[50])
                res["at_100"] = _resolve_vs_pk(reg, names, samples, rng)

        bar = tqdm(total=total, desc=f"{kind}: register", unit="gen")
        # the deep chain first: chain-v0 <- chain-v1 <- … (depth edges)
        for i in range(depth + 1):
            register(f"chain-v{i}", [(f"chain-v{i - 1}", "fine-tuned-from")] if i else [], i)
            bar.update()
        while len(names) < total:
            i = len(names)
            parents = [(rng.choice(names), "fine-tuned-from")] if rng.random() < 0.5 else []
            register(f"flat-{i}-v1", parents, i)
            bar.update()
        bar.close()
        res["register_per_s"] = len(reg_times) / sum(reg_times)
        res["register_ms"] = _ms(reg_times)
        res["at_total"] = _resolve_vs_pk(reg, names, samples, rng)
        tail, head = f"chain-v{depth}", "chain-v0"
        t_up = _timed(lambda: reg.lineage(tail), 5)
        t_down = _timed(lambda: reg.lineage(head), 5)
        g_up, g_down = reg.lineage(tail), reg.lineage(head)
        assert len(g_up.ancestors) == depth and len(g_down.descendants) >= depth
        res["lineage_up_ms"] = statistics.median(t_up) * 1e3
        res["lineage_down_ms"] = statistics.median(t_down) * 1e3
        res["lineage_down_nodes"] = len(g_down.descendants)
        mid = (
            [f"flat-{i}-v1" for i in rng.sample(range(depth + 1, total), 50)]
            if total > depth + 51
            else names[:50]
        )
        res["lineage_small_ms"] = _ms(_timed(lambda: reg.lineage(rng.choice(mid)), 100))[0]
        from embsdk.errors import LineageCycle

        def cycle_check() -> None:
            try:
                reg.add_parent(head, tail)
            except LineageCycle:
                return
            raise AssertionError("cycle not refused")

        res["cycle_check_ms"] = statistics.median(_timed(cycle_check, 5)) * 1e3
        res["n"] = len(names)
        reg.close()
    return res


def render(results: list[dict[str, object]], args: argparse.Namespace, elapsed: float) -> str:
    lines = [
        (
            f"registry_bench  {datetime.now(UTC):%Y-%m-%d %H:%M UTC}  {platform.node()}  "
            f"python {platform.python_version()}  sqlalchemy {sa.__version__}"
        ),
        (
            f"generations={args.total}  lineage chain depth={args.depth}  latency samples={args.samples}  "
            f"artifact every {args.artifact_every} registrations  wall {elapsed:.0f}s"
        ),
        (
            "resolve(name) = full GenerationInfo (generation row; lineage edges; artifacts; "
            "datasets+aliases+metrics: 4 indexed queries in one read transaction); bare = SELECT id,name,status "
            "FROM generations WHERE id=? (own connection checkout, same engine). Times are medians (p95 in "
            "brackets), milliseconds."
        ),
        (
            f"load average at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine: absolute "
            "times are noisy; compare the ratios and the 100 vs total columns)."
        ),
        "",
    ]
    hdr = f"{'metric':<44}" + "".join(f"{r['backend']:>22}" for r in results)
    lines += [hdr, "-" * len(hdr)]

    def row(label: str, fmt: Callable[[dict[str, object]], str]) -> None:
        lines.append(f"{label:<44}" + "".join(f"{fmt(r):>22}" for r in results))

    row("register throughput (gen/s)", lambda r: f"{r['register_per_s']:.0f}")
    row("register latency ms", lambda r: "{:.2f} [{:.2f}]".format(*r["register_ms"]))
    for key, n in (("at_100", 100), ("at_total", args.total)):
        row(
            f"bare PK select ms @ {n} gens",
            lambda r, k=key: "{:.3f} [{:.3f}]".format(r[k]["pk_ms"], r[k]["pk_p95"]),
        )
        row(
            f"resolve(name) ms @ {n} gens",
            lambda r, k=key: "{:.3f} [{:.3f}]".format(r[k]["resolve_ms"], r[k]["resolve_p95"]),
        )
        row(f"resolve(name) / bare PK select @ {n}", lambda r, k=key: f"{r[k]['ratio']:.1f}x")
        row(f"resolve(alias) ms @ {n} gens", lambda r, k=key: f"{r[k]['alias_ms']:.3f}")
    row("resolve(name) per s @ total (1 thread)", lambda r: f"{1e3 / r['at_total']['resolve_ms']:.0f}")
    row(f"lineage(tail of depth {args.depth}) ms", lambda r: f"{r['lineage_up_ms']:.1f}")
    row(
        "lineage(chain root: all descendants) ms",
        lambda r: f"{r['lineage_down_ms']:.1f} ({r['lineage_down_nodes']} nodes)",
    )
    row("lineage(random generation) ms", lambda r: f"{r['lineage_small_ms']:.2f}")
    row(f"add_parent cycle refusal, depth {args.depth} ms", lambda r: f"{r['cycle_check_ms']:.1f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--total", type=int, default=10_000)
    ap.add_argument("--depth", type=int, default=1_000)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument(
        "--artifact-every", type=int, default=10, help="store a small artifact every N registrations"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "registry_bench.txt")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = []
    for kind in args.backends.split(","):
        if kind == "postgresql":
            try:
                socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
            except OSError:
                print("postgresql unreachable at 127.0.0.1:5432: skipped", file=sys.stderr)
                continue
        results.append(run_backend(kind, args.total, args.depth, args.samples, args.artifact_every))
    text = render(results, args, time.perf_counter() - t0)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
