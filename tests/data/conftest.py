"""Fixtures of the data tests; the writers of official formats live in official_formats.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private NEUROJOULE_CACHE for the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEUROJOULE_CACHE", str(folder))
    return folder
