"""The one cache folder for generated and downloaded data."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NEUROJOULE_CACHE"


def cache_dir() -> Path:
    """$NEUROJOULE_CACHE, or ~/.cache/neurojoule; created when missing."""
    configured = os.environ.get(CACHE_ENV)
    folder = Path(configured).expanduser() if configured else Path.home() / ".cache" / "neurojoule"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
