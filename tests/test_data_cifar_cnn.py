import urllib.error
from pathlib import Path

import pytest
import torch

from implementations.cifar_cnn import spec
from loopbench.core.types import DataError, DataSource
from tests.helpers import train

SYNTHETIC = DataSource("synthetic", None)


def test_synthetic_cifar_is_deterministic_and_cifar_shaped():
    cfg = spec.PRESETS["smoke"]
    a, b = spec.build_data(cfg, SYNTHETIC), spec.build_data(cfg, SYNTHETIC)
    x, y = a.train.tensors
    assert x.shape == (cfg.train_size, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, b.train.tensors[0]) and torch.equal(y, b.train.tensors[1])
    assert set(y.tolist()) == set(range(10))
    assert a.info["source"] == "synthetic" and a.info["train_size"] == cfg.train_size
    other = spec.synthetic_cifar(16, seed=cfg.data_seed + 1).tensors[0]
    assert not torch.equal(other, x[:16])


@pytest.mark.slow
def test_cifar_cnn_synthetic_data_is_learnable():
    """The quick preset (40 steps) must clearly beat chance (10%)."""
    result = train("cifar_cnn", "pytorch", preset="quick")
    assert result.metrics["test_accuracy"] > 0.5
    assert result.data["source"] == "synthetic"


def test_real_cifar_offline_fails_with_a_clear_message(monkeypatch, tmp_path: Path):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"could not be downloaded.*--data synthetic"):
        spec.build_data(spec.PRESETS["smoke"], DataSource("real", tmp_path))
