"""Unified vs specialized binarized embeddings on the Grocery Store data (Zhai et al., KDD 2019, Table 2 style).

Run from the repository root::

    .venv/bin/python -m experiments.unified_vs_specialized            # full run, writes REPORT.md
    .venv/bin/python -m experiments.unified_vs_specialized --help
"""

from .config import ExperimentConfig
from .pipeline import run_experiment

__all__ = ["ExperimentConfig", "run_experiment"]
