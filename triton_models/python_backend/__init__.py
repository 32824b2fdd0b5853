"""The Python-backend model file that Triton runs on CPU (copied into every version directory)."""

from pathlib import Path

MODEL_FILE = Path(__file__).with_name("model.py")

__all__ = ["MODEL_FILE"]
