"""TensorRT engine compatibility: a plan runs only on the GPU and TensorRT it was built with.

Each ``model.plan`` carries ``model.plan.json`` (written by ``trainer.tensorrt``). Before a server starts,
:func:`check_repository_engines` compares every plan's manifest with this machine and refuses a mismatch
with :class:`~embsdk.errors.EngineIncompatible`, instead of letting tritonserver crash on deserialization.
Torch-free: the GPU is probed with ``nvidia-smi`` and TensorRT's version read from package metadata.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from embsdk.errors import EngineIncompatible

__all__ = ["PLAN_MANIFEST", "check_compatibility", "check_repository_engines", "probe_gpu"]

PLAN_MANIFEST = "model.plan.json"


def check_compatibility(manifest: dict[str, Any], env: dict[str, Any]) -> None:
    """Raise :class:`EngineIncompatible` when a plan's ``manifest`` does not fit the machine ``env``.

    The compute capability and the TensorRT version must be equal. CUDA: equal major version when ``env``
    has the runtime's ``cuda``; otherwise the driver (``cuda_driver``) must support the plan's CUDA major.
    """
    problems = []
    if str(manifest.get("compute_capability")) != str(env.get("compute_capability")):
        problems.append(
            f"built for compute capability {manifest.get('compute_capability')} ({manifest.get('gpu')}), "
            f"this GPU is {env.get('compute_capability')} ({env.get('gpu')})"
        )
    if str(manifest.get("tensorrt")) != str(env.get("tensorrt")):
        problems.append(
            f"built with TensorRT {manifest.get('tensorrt')}, this machine has {env.get('tensorrt')}"
        )
    want = str(manifest.get("cuda", "")).split(".")[0]
    if env.get("cuda") is not None and want != str(env["cuda"]).split(".")[0]:
        problems.append(f"built with CUDA {manifest.get('cuda')}, this machine has {env.get('cuda')}")
    elif (
        env.get("cuda") is None
        and env.get("cuda_driver")
        and want.isdigit()
        and int(str(env["cuda_driver"]).split(".")[0]) < int(want)
    ):
        problems.append(
            f"built with CUDA {manifest.get('cuda')}, the driver supports only {env['cuda_driver']}"
        )
    if problems:
        raise EngineIncompatible(
            f"TensorRT engine {manifest.get('plan', 'model.plan')} cannot run here: "
            + "; ".join(problems)
            + ". Rebuild it on this machine: python -m trainer.tensorrt EXPORT_DIR"
        )


def probe_gpu() -> dict[str, Any] | None:
    """GPU 0's name and compute capability, the driver's CUDA version and TensorRT's version; None without a GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = (
            subprocess.run(
                [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            .stdout.strip()
            .splitlines()
        )
        header = subprocess.run([smi], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, cap = (x.strip() for x in out[0].rsplit(",", 1))
    driver_cuda = header.split("CUDA Version:")[1].split()[0] if "CUDA Version:" in header else None
    try:
        trt = version("tensorrt")
    except PackageNotFoundError:
        trt = None
    return {"gpu": name, "compute_capability": cap, "cuda_driver": driver_cuda, "tensorrt": trt}


def check_repository_engines(repository: Path, models: list[str] | None = None) -> int:
    """Check every TensorRT plan of ``models`` (default: all) in a Triton repository; returns how many.

    Raises:
        EngineIncompatible: a plan has no manifest, there is no GPU here, or a manifest does not match it.
    """
    plans = sorted(
        p for p in repository.glob("*/*/model.plan") if models is None or p.parent.parent.name in models
    )
    env: dict[str, Any] | None = None
    for plan in plans:
        manifest_path = plan.with_name(PLAN_MANIFEST)
        if not manifest_path.is_file():
            raise EngineIncompatible(f"{plan} has no compatibility manifest ({PLAN_MANIFEST}); rebuild it.")
        manifest = json.loads(manifest_path.read_text())
        env = env or probe_gpu()
        if env is None:
            raise EngineIncompatible(
                f"{plan} is a TensorRT engine for {manifest.get('gpu')} "
                f"(compute capability {manifest.get('compute_capability')}), but this machine has no GPU."
            )
        check_compatibility({**manifest, "plan": str(plan)}, env)
    return len(plans)
