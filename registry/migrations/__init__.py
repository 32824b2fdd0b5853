"""Alembic migrations of the registry schema (shipped as package data)."""
