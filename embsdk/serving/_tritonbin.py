"""Find the tritonserver shipped in the ``nvidia-pytriton`` wheel and prepare its environment.

The wheel carries the server binary, the Python backend and a stub per Python version. We link the
three backend files into ``$EMB_HOME/triton_backends/python`` (symlinks, so the stub's RPATH still
finds the wheel's bundled libraries), put this interpreter's ``bin`` first on PATH (the stub takes
``sys.prefix`` from the first ``python3``), and this interpreter's libpython first on LD_LIBRARY_PATH.
See ``../shared/notes/triton-on-cpu.md``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from embsdk.config import get_settings
from embsdk.errors import MissingExtraError

__all__ = ["TritonInstall", "find_tritonserver"]


@dataclass(frozen=True)
class TritonInstall:
    """Paths of a usable tritonserver installation."""

    binary: Path
    backend_dir: Path
    libs_dir: Path

    def environment(self) -> dict[str, str]:
        """The environment to start tritonserver with (a copy of ours, plus PATH and LD_LIBRARY_PATH)."""
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)  # the venv's bin, not the resolved interpreter
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")]).rstrip(os.pathsep)
        libs = [sysconfig.get_config_var("LIBDIR") or "", str(self.libs_dir), env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
        return env


def _site_package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("nvidia-pytriton (tritonserver)", "serve")
    return Path(next(iter(spec.submodule_search_locations)))


def find_tritonserver() -> TritonInstall:
    """Locate tritonserver and set up the backend folder (idempotent, safe to race).

    Raises:
        MissingExtraError: ``nvidia-pytriton`` is not installed, or has no stub for this Python.
    """
    root = _site_package("pytriton") / "tritonserver"
    binary = root / "bin" / "tritonserver"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / py / "triton_python_backend_stub"
    sources = {
        "libtriton_python.so": root / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": root / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    if not binary.is_file() or not all(p.is_file() for p in sources.values()):
        raise MissingExtraError(f"nvidia-pytriton with a Python {py} backend stub", "serve")
    backend_dir = get_settings().home / "triton_backends"
    target = backend_dir / "python"
    if not all((target / n).resolve() == p.resolve() for n, p in sources.items()):
        backend_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".python-", dir=backend_dir))
        for name, src in sources.items():
            (tmp / name).symlink_to(src)
        try:
            if target.exists():  # links to another venv's files: replace them
                shutil.rmtree(target)
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process set it up at the same moment
    return TritonInstall(
        binary=binary, backend_dir=backend_dir, libs_dir=root.parent.parent / "nvidia_pytriton.libs"
    )
