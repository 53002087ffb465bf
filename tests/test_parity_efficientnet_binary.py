"""EfficientNet-B0 (dropout and stochastic depth draw RNG every step) trains to the same bits on CPU."""

from pathlib import Path

import pytest
import torch

from implementations.efficientnet_binary import spec
from loopbench.analysis.parity import CUDA_LOSS_RTOL, compare
from loopbench.core.types import DataError, DataSource
from tests.helpers import assert_bitwise_parity, requires_cuda, train

TRAINERS = ("lightning", "lightning-defaults")
# smoke preset: 64 images / batch 8 = 8 batches per epoch; 10 steps cross the boundary
CASES = [
    pytest.param(0, None, None, {}, id="seed0-10steps"),
    pytest.param(6, 11, 12, {}, id="seed6-11steps-batch12"),  # 5 batches/epoch: crosses two boundaries
]
# float16 and bfloat16 on a CPU without native support: each step's backward runs the slow convolution kernel
# once per channel of every depthwise layer (about 9,000 calls, seconds per step at any batch), so one batch per
# epoch and 2 steps cross the boundary; the lean Trainer here, both Trainers in every precision on the other tasks
LOW_CASE = pytest.param(0, 2, 16, {"train_size": 16, "test_size": 16}, id="seed0-2steps-16images")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("impl", "precision", "seed", "steps", "batch_size", "overrides"),
    [pytest.param(i, "32-true", *c.values, id=f"32-true-{c.id}-{i}") for c in CASES for i in TRAINERS]
    + [pytest.param("lightning", p, *LOW_CASE.values, id=f"{p}-{LOW_CASE.id}") for p in ("16-mixed", "bf16-mixed")],
)
def test_efficientnet_binary_bitwise_parity_cpu(impl, precision, seed, steps, batch_size, overrides):
    reference, candidate = assert_bitwise_parity(
        "efficientnet_binary",
        impl,
        precision=precision,
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        overrides=overrides,
    )
    assert {"test_auroc", "test_f1", "test_accuracy", "test_loss"} <= set(candidate.metrics)
    assert candidate.metrics == reference.metrics


def test_efficientnet_binary_parity_positive_control_extra_dropout_draw(monkeypatch):
    """One extra global-RNG draw before training (what a stray torch.rand would do) shifts every
    later dropout and stochastic-depth mask, and must be caught."""
    reference = train("efficientnet_binary", "pytorch")
    build_loss = spec.build_loss

    def build_loss_after_extra_draw(data, cfg):
        torch.rand(1)
        return build_loss(data, cfg)

    monkeypatch.setattr(spec, "build_loss", build_loss_after_extra_draw)
    report = compare(reference, train("efficientnet_binary", "lightning"))
    # step 0 agrees: the zero-initialised head gives logits 0 whatever the masks; step 1 cannot
    assert report.verdict == "mismatch" and report.first_differing_step == 1 and not report.weights_equal


@pytest.mark.slow
def test_efficientnet_binary_learns_the_imbalanced_synthetic_task():
    # the bench's preset, half its 24 steps (within the first epoch: no validation); it learns by then
    r = train("efficientnet_binary", "pytorch", preset="quick", steps=12)
    assert 0.10 < r.data["train_positive_rate"] < 0.20
    assert r.metrics["test_auroc"] > 0.9 and r.metrics["test_f1"] > 0.6


def test_evaluation_leaves_the_trained_weights_alone():
    """Precise-BN evaluation works on a copy: evaluating twice gives the same metrics and weights."""
    cfg = spec.PRESETS["smoke"]
    data = spec.build_data(cfg, DataSource("synthetic", None))
    torch.manual_seed(0)
    model = spec.build_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first, second = (spec.evaluate(model, data, torch.device("cpu")) for _ in range(2))
    assert first == second
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_pretrained_without_cached_weights_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(DataError, match="pretrained EfficientNet-B0 weights are not in"):
        spec.build_model(spec.PRESETS["smoke"].__class__(pretrained=True))


def _image_folder(root: Path, classes: dict[str, int]) -> None:
    from PIL import Image

    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (40, 30), (i * 20 % 255, 80, 160)).save(root / name / f"{i}.png")


def test_real_image_folder_loads_two_classes(tmp_path):
    _image_folder(tmp_path, {"normal": 9, "tumour": 3})
    cfg = spec.PRESETS["smoke"].__class__(image_size=32, train_size=8, test_size=4)
    data = spec.build_data(cfg, DataSource("real", tmp_path))
    assert data.train.tensors[0].shape == (8, 3, 32, 32) and data.train.tensors[0].dtype == torch.uint8
    assert data.info["classes"] == ["normal", "tumour"] and len(data.test) == 4


def test_real_image_folder_with_three_classes_is_refused(tmp_path):
    _image_folder(tmp_path, {"a": 2, "b": 2, "c": 2})
    with pytest.raises(DataError, match="exactly two class folders"):
        spec.build_data(spec.PRESETS["smoke"], DataSource("real", tmp_path))


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize(("precision", "rtol"), sorted(CUDA_LOSS_RTOL.items()))
def test_efficientnet_binary_parity_cuda_within_tolerance(precision, rtol):
    reference = train("efficientnet_binary", "pytorch", device="cuda", precision=precision)
    candidate = train("efficientnet_binary", "lightning", device="cuda", precision=precision)
    assert compare(reference, candidate, rtol).verdict in ("bitwise", "within_tolerance")


def test_real_image_folder_too_small_for_the_split_is_refused_in_one_line(tmp_path):
    _image_folder(tmp_path, {"normal": 3, "tumour": 2})
    cfg = spec.PRESETS["smoke"].__class__(image_size=32, train_size=8, test_size=4)
    with pytest.raises(DataError, match="5 images, fewer than the 8 \\+ 4 the split needs"):
        spec.build_data(cfg, DataSource("real", tmp_path))


def test_real_image_folder_with_an_unreadable_image_is_refused_in_one_line(tmp_path):
    _image_folder(tmp_path, {"normal": 9, "tumour": 3})
    (tmp_path / "tumour" / "broken.png").write_bytes(b"not a png")
    cfg = spec.PRESETS["smoke"].__class__(image_size=32, train_size=9, test_size=3)
    with pytest.raises(DataError, match="an image could not be read"):
        spec.build_data(cfg, DataSource("real", tmp_path))
