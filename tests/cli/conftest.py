"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private NEUROJOULE_CACHE for the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEUROJOULE_CACHE", str(folder))
    return folder


@pytest.fixture
def fake_train(monkeypatch: pytest.MonkeyPatch) -> list:
    """`neurojoule train` without training: the configs it would train, in order."""
    import neurojoule.train
    from neurojoule.train.fit import TrainResult

    trained = []

    def fake(config, out, resume=False, progress=True):
        trained.append(config)
        checkpoint = Path(out) / "checkpoints" / "best-epoch=0.ckpt"
        return TrainResult(Path(out), checkpoint, {"test/acc": 0.5, "test/loss": 1.25}, None)

    monkeypatch.setattr(neurojoule.train, "train", fake)
    monkeypatch.setattr(neurojoule.train, "train_lm", fake)
    return trained
