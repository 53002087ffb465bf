"""EfficientNet-B0 binary classifier: everything both loops share.

torchvision's `efficientnet_b0` with a single-logit head (random init by default; `pretrained=True`
loads torchvision's ImageNet weights from the local torch hub cache and swaps the head), trained with
BCE-with-logits, label smoothing y * (1 - s) + 0.5 * s and `pos_weight` = negatives / positives of
the training set; AdamW with a one-cycle schedule stepped per batch (10% warm-up, div 10, final div
100, beta1 cycled 0.95 -> 0.90). Held-out loss, accuracy, AUROC and F1 come from torchmetrics.

Images are kept as uint8 (as decoded) and normalised on the device by the model's first layer: at
224 px a float32 copy of the training set would not fit in memory, and normalising on the GPU keeps
the host out of the way. Dropout and stochastic depth draw from the global RNG in the forward pass;
both loops draw identically because they run the same forward. On CUDA, AdaptiveAvgPool2d's backward
has no deterministic kernel: parity there is by tolerance, with the same determinism flags on both
sides (Lightning's `deterministic="warn"`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from implementations.common import Data, Harness, one_cycle, out_of_range
from loopbench.core.types import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_SEED = 1234  # dropout / stochastic depth while BatchNorm statistics are recomputed for evaluation


@dataclass(frozen=True)
class Config:
    steps: int = 400  # optimizer steps = batches
    batch_size: int = 256
    warmup_steps: int = 30  # steps left out of the timing window
    image_size: int = 224  # pixels, square
    channels_last: bool = True  # NHWC activations: faster convolutions on tensor cores
    pretrained: bool = False  # ImageNet weights from the local torch hub cache
    lr: float = 1e-3  # AdamW peak learning rate, for a batch of `batch_size`
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    pct_start: float = 0.1
    div_factor: float = 10.0  # initial lr = lr / div_factor
    final_div_factor: float = 100.0  # final lr = initial lr / final_div_factor
    base_momentum: float = 0.90  # AdamW beta1 at peak lr
    max_momentum: float = 0.95  # AdamW beta1 at the ends of the cycle
    dropout: float = 0.2  # before the head (torchvision's default for B0)
    stochastic_depth_prob: float = 0.2  # torchvision's default for B0
    positive_rate: float = 0.15  # synthetic data: fraction of positives
    train_size: int = 10_240
    test_size: int = 2_048
    validate_every_epoch: bool = False  # the whole job: validate after each epoch, keep the best weights
    patience: int = 0  # with validate_every_epoch: stop after this many validations without a better one (0: never)
    val_batch_size: int = 256
    data_seed: int = 0


# quick (the CPU bench) and full run the whole job: a validation after every epoch, the best weights kept
PRESETS = {
    "smoke": Config(
        steps=10, batch_size=8, warmup_steps=2, image_size=32, channels_last=False, train_size=64, test_size=64
    ),
    # 512 images / batch 32 = 16 batches per epoch: 24 steps cross an epoch boundary
    "quick": Config(
        steps=24,
        batch_size=32,
        warmup_steps=5,
        image_size=64,
        channels_last=False,
        train_size=512,
        test_size=384,
        lr=2e-3,
        validate_every_epoch=True,
    ),
    "full": Config(validate_every_epoch=True),
}

METRICS = ("test_loss", "test_accuracy", "test_auroc", "test_f1")  # what evaluate() returns, in that order
# one optimizer; a step of ~0.4 s on 2 cores is a sample of its own, and minutes under valgrind
HARNESS = Harness(segment=(2, 1), count=(3, 1), probe_shape="auto", rounds=6)  # as CIFAR's: four implementations
MONITOR = ("val_auroc", "max")  # what the epoch mode keeps the best weights by


def val_metrics() -> Any:
    """The validation metrics, as torchmetrics objects named as they are logged (AUROC over the epoch)."""
    from torchmetrics import MetricCollection
    from torchmetrics.classification import BinaryAUROC, BinaryF1Score

    return MetricCollection({"val_auroc": BinaryAUROC(), "val_f1": BinaryF1Score()})


def val_outputs(model: nn.Module, batch, batch_idx: int, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """What the validation metrics are updated with, for one batch: (probabilities, labels)."""
    x, y = batch
    return model(x).float().squeeze(1).sigmoid(), y


def check(cfg: Config) -> str | None:
    """What is wrong with a config that parses (one line for the user), or None."""
    return out_of_range(
        cfg,
        image_size=(32, math.inf),  # five stride-2 stages: smaller images vanish
        label_smoothing=(0, 1),
        pct_start=(0.01, 1),
        div_factor=(1, math.inf),
        final_div_factor=(1, math.inf),
        base_momentum=(0, 1),
        max_momentum=(0, 1),
        dropout=(0, 1),
        stochastic_depth_prob=(0, 1),
        positive_rate=(0.01, 0.99),
    )


# -- data -------------------------------------------------------------------------------------------


def synthetic_binary(n: int, size: int, positive_rate: float, seed: int) -> TensorDataset:
    """n uint8 RGB images (n, 3, size, size) and 0/1 labels, deterministic in `seed`.

    Every image: a smooth random background, noise, and two distractor discs of random colour.
    Positives also hold a small reddish ring (bright red rim, darker centre) somewhere: a shape and
    colour cue a CNN can find, rare enough (positive_rate) for pos_weight, AUROC and F1 to matter.
    """
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=g) < positive_rate).long()
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(size) / size, torch.arange(size) / size, indexing="ij")
    chunk = max(1, 2**25 // (3 * size * size))  # ~128 MiB of float32 at a time
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        m = sl.stop - sl.start
        x = 0.3 + 0.4 * F.interpolate(coarse[sl], size=size, mode="bilinear")
        for _ in range(2):  # distractors: filled discs, any colour
            c = torch.rand(m, 2, generator=g)
            r = 0.06 + 0.08 * torch.rand(m, generator=g)
            disc = (xx - c[:, 0, None, None]) ** 2 + (yy - c[:, 1, None, None]) ** 2 < r[:, None, None] ** 2
            x = torch.where(disc[:, None], torch.rand(m, 3, 1, 1, generator=g), x)
        c = 0.15 + 0.7 * torch.rand(m, 2, generator=g)
        d = ((xx - c[:, 0, None, None]) ** 2 + (yy - c[:, 1, None, None]) ** 2).sqrt()
        r = 0.07 + 0.05 * torch.rand(m, 1, 1, generator=g)
        ring = ((d - r).abs() < 0.025) & (labels[sl, None, None] == 1)
        x = torch.where(ring[:, None], torch.tensor([0.95, 0.15, 0.1]).view(1, 3, 1, 1), x)
        x = x + 0.08 * torch.randn(x.shape, generator=g)
        images[sl] = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    return TensorDataset(images, labels)


def real_image_folder(root: str, size: int, n_train: int, n_test: int, seed: int) -> tuple[TensorDataset, ...]:
    """An ImageFolder of exactly two class folders; the second in sorted order is the positive class.

    Images are resized and centre-cropped to `size` and held in memory as uint8; a seeded shuffle
    picks the held-out split.
    """
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(
            root,
            transform=transforms.Compose(
                [transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()]
            ),
        )
    except (FileNotFoundError, OSError) as e:
        raise DataError(
            f"{root}: not an image folder ({e}); expected {root}/<negative>/*.jpg and {root}/<positive>/*.jpg"
        ) from None
    if len(folder.classes) != 2:
        raise DataError(f"{root}: expected exactly two class folders, found {folder.classes}")
    if len(folder) < n_train + n_test:
        raise DataError(
            f"{root}: {len(folder)} images, fewer than the {n_train} + {n_test} the split needs; add images or "
            f"lower them (--set train_size=N --set test_size=N)"
        )
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed)).tolist()
    test_idx, train_idx = order[:n_test], order[n_test : n_test + n_train]

    def load(indices):
        try:
            pairs = [folder[i] for i in indices]
        except OSError as e:  # PIL's UnidentifiedImageError among them: a file that is no readable image
            raise DataError(f"{root}: an image could not be read ({e}); remove it or replace it") from None
        return TensorDataset(torch.stack([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]))

    return load(train_idx), load(test_idx), folder.classes


def build_data(cfg: Config, source) -> Data:
    if source.kind == "real":
        train, test, classes = real_image_folder(
            str(source.dir), cfg.image_size, cfg.train_size, cfg.test_size, cfg.data_seed
        )
        info = {"source": "real", "dataset": f"image folder {source.dir}", "classes": classes}
    else:
        x, y = synthetic_binary(
            cfg.train_size + cfg.test_size, cfg.image_size, cfg.positive_rate, cfg.data_seed
        ).tensors
        train = TensorDataset(x[: cfg.train_size], y[: cfg.train_size])
        test = TensorDataset(x[cfg.train_size :], y[cfg.train_size :])
        info = {"source": "synthetic", "dataset": "rings among discs, imbalanced", "data_seed": cfg.data_seed}
    positives = int(train.tensors[1].sum())
    return Data(
        train,
        test,
        info
        | {
            "train_size": len(train),
            "test_size": len(test),
            "image_size": cfg.image_size,
            "train_positive_rate": positives / len(train),
            "test_positive_rate": float(test.tensors[1].float().mean()),
        },
    )


# -- model, loss, optimizer ---------------------------------------------------------------------------


class Preprocess(nn.Module):
    """uint8 images -> normalised float, on the model's device (and in NHWC if asked)."""

    def __init__(self, channels_last: bool):
        super().__init__()
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def pretrained_weights_path() -> Path:
    from torchvision.models import EfficientNet_B0_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(EfficientNet_B0_Weights.IMAGENET1K_V1.url).name


def build_model(cfg: Config) -> nn.Module:
    """(B, 3, H, W) uint8 -> (B, 1) logits. Initial weights and the head come from the global RNG."""
    from torchvision.models import EfficientNet_B0_Weights, efficientnet_b0

    if cfg.pretrained:
        path = pretrained_weights_path()
        if not path.is_file():
            raise DataError(
                f"pretrained EfficientNet-B0 weights are not in {path}; download them once where "
                "there is network (torchvision.models.efficientnet_b0(weights='IMAGENET1K_V1')) "
                "or leave pretrained off"
            )
        net = efficientnet_b0(
            weights=EfficientNet_B0_Weights.IMAGENET1K_V1,
            dropout=cfg.dropout,
            stochastic_depth_prob=cfg.stochastic_depth_prob,
        )
        net.classifier[1] = nn.Linear(net.classifier[1].in_features, 1)
    else:
        net = efficientnet_b0(
            weights=None, num_classes=1, dropout=cfg.dropout, stochastic_depth_prob=cfg.stochastic_depth_prob
        )
    # torchvision draws a Linear head from U(-1/sqrt(out), 1/sqrt(out)) = U(-1, 1) for one output:
    # initial logits in the tens and a first loss near 10. A zero head starts every image at p = 1/2.
    nn.init.zeros_(net.classifier[1].weight)
    nn.init.zeros_(net.classifier[1].bias)
    model = nn.Sequential(Preprocess(cfg.channels_last), net)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


class SmoothedBCEWithLogits(nn.BCEWithLogitsLoss):
    """BCE-with-logits on targets smoothed towards 1/2: y * (1 - s) + 0.5 * s; pos_weight as a buffer. The targets
    are float32 whatever the logits' dtype (bfloat16 would round 0.95 to 0.9492; autocast runs the loss in float32)."""

    def __init__(self, smoothing: float, pos_weight: float):
        super().__init__(pos_weight=torch.tensor(pos_weight))
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(torch.float32) * (1 - self.smoothing) + 0.5 * self.smoothing
        return super().forward(logits.squeeze(1), targets)


def build_loss(data: Data, cfg: Config) -> nn.Module:
    """pos_weight = negatives / positives of the training set: each class weighs the same in total."""
    rate = data.info["train_positive_rate"]
    if not 0 < rate < 1:
        raise DataError(f"the training split has positive rate {rate}: both classes are needed")
    return SmoothedBCEWithLogits(cfg.label_smoothing, (1 - rate) / rate)


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle over the run's length in batches, stepped per batch; cycles AdamW's beta1 too."""
    return one_cycle(
        optimizer,
        cfg.lr,
        cfg.steps,
        cfg.pct_start,
        div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor,
        base_momentum=cfg.base_momentum,
        max_momentum=cfg.max_momentum,
    )


# -- evaluation ------------------------------------------------------------------------------------------


def precise_bn(model: nn.Module, data: Data, device: torch.device, batches: int, batch_size: int) -> nn.Module:
    """A copy of `model` whose BatchNorm statistics are recomputed on the first training batches.

    BatchNorm's running variance starts from the huge activations of the random network and, at
    momentum 0.1, short runs (the CPU presets) do not forget them: eval mode then squashes every
    image to nearly the same logit, and held-out metrics measure that lag, not the model. Averaging
    the statistics afresh over a few batches ("precise BN", torch's swa_utils.update_bn) fixes that.
    It runs on a copy, so the trained weights are untouched, under its own fixed seed (dropout and
    stochastic depth are active while it runs), so it neither draws from nor depends on training's RNG.
    """
    from torch.optim.swa_utils import update_bn

    model = copy.deepcopy(model).to(device)
    images = data.train.tensors[0][: batches * batch_size]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(EVAL_SEED)
        update_bn(((xb,) for xb in images.split(batch_size)), model, device)
    return model


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Data, device: torch.device, batch_size: int = 256, bn_batches: int = 4
) -> dict[str, float]:
    """Held-out BCE (pos_weight as in training, no smoothing), accuracy, AUROC, F1 at p = 0.5; fp32."""
    from torchmetrics.functional.classification import binary_accuracy, binary_auroc, binary_f1_score

    model = precise_bn(model, data, device, bn_batches, batch_size).eval()
    x, y = data.test.tensors
    logits = torch.cat([model(xb.to(device)).float().squeeze(1).cpu() for xb in x.split(batch_size)])
    rate = data.info["train_positive_rate"]
    loss = F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=torch.tensor((1 - rate) / rate))
    probs = logits.sigmoid()
    return {
        "test_loss": float(loss),
        "test_accuracy": float(binary_accuracy(probs, y)),
        "test_auroc": float(binary_auroc(probs, y)),
        "test_f1": float(binary_f1_score(probs, y)),
    }
