"""Experiments whose reports are committed next to their code (run them from the repository root)."""
