"""MNIST GAN: everything both loops share (config, data, networks, the algorithm's losses, metrics).

The classic MLP GAN of the Lightning tutorial. Generator: latent -> 128 -> 256 -> 512 -> 1024 -> 784,
BatchNorm1d with eps 0.8 on the hidden layers after the first (the tutorial passes 0.8 as BatchNorm's
second positional argument, which is `eps`; we keep it so the model is the one people know: it
damps the normalisation strongly) and LeakyReLU(0.2), Tanh out. Discriminator: 784 -> 512 -> 256 -> 1
with LeakyReLU(0.2), returning logits.

The algorithm, one of several the public references use, fixed here for both loops:
  per batch, draw z once (from the run's own noise generator), generate `fake = G(z)` once;
  (1) update D on  BCE(D(real), 1) + BCE(D(fake.detach()), 0), halved;
  (2) update G on  BCE(D(fake), 1)  (the non-saturating loss), through the just-updated D.
Losses use binary_cross_entropy_with_logits (BCE on a sigmoid is refused under autocast).

Quality is measured without weights: the kernel MMD between generated digits and held-out real ones,
with the MMD between two real halves as the floor. Expect a falling MMD over training; on real MNIST
the `full` preset (5 epochs) draws recognisable digits.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from implementations.common import Data, Harness, download, out_of_range

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28
EVAL_SEED = 1234  # the evaluation noise: the same digits are drawn from every run's generator


@dataclass(frozen=True)
class Config:
    steps: int = 4_690  # batches (each: one D step and one G step); 5 epochs of MNIST at batch 64
    batch_size: int = 64
    warmup_steps: int = 50  # steps left out of the timing window
    latent_dim: int = 100
    g_widths: tuple[int, ...] = (128, 256, 512, 1024)
    d_widths: tuple[int, ...] = (512, 256)
    lr: float = 2e-4  # Adam, both networks
    beta1: float = 0.5
    beta2: float = 0.999
    bn_eps: float = 0.8
    train_size: int = 60_000
    test_size: int = 10_000  # held-out real digits for the MMD
    eval_samples: int = 1_000  # generated and real digits compared by MMD
    validate_every_epoch: bool = False  # the whole job: validate after each epoch, keep the best weights
    patience: int = 0  # with validate_every_epoch: stop after this many validations without a better one (0: never)
    val_batch_size: int = 256
    data_seed: int = 0


# quick (the CPU bench) and full run the whole job: a validation after every epoch, the best weights kept
PRESETS = {
    "smoke": Config(
        steps=12,
        batch_size=16,
        warmup_steps=2,
        latent_dim=16,
        g_widths=(16, 32, 64, 128),
        d_widths=(64, 32),
        train_size=128,
        test_size=256,
        eval_samples=128,
    ),
    "quick": Config(
        steps=120,
        batch_size=64,
        warmup_steps=10,
        train_size=4_096,
        test_size=1_000,
        eval_samples=500,
        validate_every_epoch=True,
    ),
    "full": Config(validate_every_epoch=True),
}

METRICS = ("mmd", "mmd_real_floor")  # what evaluate() returns, in that order
# two optimizers: the probe's manual shape. Half-second segments, twice the rounds: the machine's speed moves between
# neighbours a second apart, and 16 rounds of 20 steps pinned the Trainer's share of the step to +-1.0-1.6 points
# where 8 rounds of 40 gave +-1.7-5.4 in the same time (python -m experiments.segment_length); 12 with four
# implementations in a round, for the bench's 15 minutes
HARNESS = Harness(segment=(20, 5), count=(6, 2), probe_shape="manual", rounds=12)
MONITOR = ("val_mmd", "min")  # what the epoch mode keeps the best weights by


def val_metrics() -> Any:
    """The validation metric: the MMD between generated digits and the held-out real ones."""
    from torchmetrics import MetricCollection

    return MetricCollection({"val_mmd": MMD()})


def val_outputs(nets: nn.ModuleDict, batch, batch_idx: int, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """(generated, real) digits for one batch of real ones, flattened; the noise is fixed per batch index,
    drawn from its own generator, so validation draws nothing from any RNG that training uses."""
    real = batch[0]
    noise = torch.Generator().manual_seed(EVAL_SEED + 1 + batch_idx)
    z = torch.randn(len(real), cfg.latent_dim, generator=noise).to(real.device)
    return nets["generator"](z).float().flatten(1), real.float().flatten(1)


def check(cfg: Config) -> str | None:
    """What is wrong with a config that parses (one line for the user), or None."""
    return out_of_range(
        cfg, latent_dim=(1, math.inf), g_widths=(1, math.inf), d_widths=(1, math.inf), beta1=(0, 1), beta2=(0, 1)
    ) or (
        f"eval_samples must be in [2, test_size], got {cfg.eval_samples}"
        if not 2 <= cfg.eval_samples <= cfg.test_size
        else None
    )


# -- data -------------------------------------------------------------------------------------------

# Seven-segment strokes in a 1 x 2 box (x right, y up) and the segments each digit lights.
_SEGMENTS = torch.tensor(
    [
        [[0, 2], [1, 2]],  # a: top
        [[1, 2], [1, 1]],  # b: upper right
        [[1, 1], [1, 0]],  # c: lower right
        [[0, 0], [1, 0]],  # d: bottom
        [[0, 1], [0, 0]],  # e: lower left
        [[0, 2], [0, 1]],  # f: upper left
        [[0, 1], [1, 1]],  # g: middle
    ],
    dtype=torch.float32,
)
_DIGITS = ["abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg"]
_LIT = torch.tensor([[s in d for s in "abcdefg"] for d in _DIGITS])  # (10, 7)


def synthetic_digits(n: int, seed: int, chunk: int = 2_048) -> TensorDataset:
    """n 28x28 digit-like images in [-1, 1] with labels, deterministic in `seed`.

    Seven-segment glyphs drawn as soft strokes, each with its own rotation (+-15 deg), slant,
    size, position and stroke width: varied, structured, and far from noise.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    angle = torch.empty(n).uniform_(-0.26, 0.26, generator=g)
    slant = torch.empty(n).uniform_(-0.35, 0.15, generator=g)
    scale = torch.empty(n).uniform_(7.0, 9.5, generator=g)  # pixels per unit: glyphs 14-19 px tall
    aspect = torch.empty(n).uniform_(0.6, 1.0, generator=g)
    shift = torch.empty(n, 2).uniform_(-2.0, 2.0, generator=g)
    width = torch.empty(n).uniform_(0.9, 2.0, generator=g)  # stroke half-width, pixels

    # affine map of each glyph: centre the box, slant, squeeze, scale, rotate, move to the image centre
    cos, sin = angle.cos(), angle.sin()
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (n, 2, 2)
    shape = torch.zeros(n, 2, 2)
    shape[:, 0, 0], shape[:, 0, 1], shape[:, 1, 1] = aspect * scale, slant * scale, -scale  # y down in images
    affine = rot @ shape
    centre = torch.tensor([13.5, 13.5]) + shift
    ends = _SEGMENTS - torch.tensor([0.5, 1.0])  # (7, 2, 2), box centred at the origin

    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    pixels = torch.stack([xs, ys], -1).reshape(1, 1, IMAGE_PIXELS, 2)
    images = torch.empty(n, IMAGE_PIXELS)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        pts = torch.einsum("nij,skj->nski", affine[sl], ends) + centre[sl, None, None]  # (c, 7, 2, 2)
        a, b = pts[:, :, None, 0], pts[:, :, None, 1]  # (c, 7, 1, 2)
        ab = b - a
        t = (((pixels - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-6)).clamp(0, 1)  # (c, 7, 784)
        dist = (pixels - (a + t[..., None] * ab)).norm(dim=-1)
        dist = dist.masked_fill(~_LIT[labels[sl]][..., None], float("inf")).amin(1)  # nearest lit stroke
        images[sl] = (width[sl, None] + 0.5 - dist).clamp(0, 1)  # a one-pixel soft edge
    return TensorDataset(images.mul(2).sub(1).reshape(n, *IMAGE_SHAPE), labels)


def real_mnist(root: str, train: bool, n: int) -> TensorDataset:
    """The first n images of torchvision's MNIST split, scaled to [-1, 1], as in-memory tensors."""
    from torchvision.datasets import MNIST

    ds = download(MNIST, root, train, "MNIST", "MNIST/raw")
    x = ds.data[:n].float().div(127.5).sub(1).unsqueeze(1)
    return TensorDataset(x, ds.targets[:n])


def build_data(cfg: Config, source) -> Data:
    if source.kind == "real":
        root = str(source.dir)
        train, test = real_mnist(root, True, cfg.train_size), real_mnist(root, False, cfg.test_size)
        info = {"source": "real", "dataset": "MNIST", "dir": root}
    else:
        x, y = synthetic_digits(cfg.train_size + cfg.test_size, cfg.data_seed).tensors
        train = TensorDataset(x[: cfg.train_size], y[: cfg.train_size])
        test = TensorDataset(x[cfg.train_size :], y[cfg.train_size :])
        info = {"source": "synthetic", "dataset": "seven-segment digits, MNIST-shaped", "data_seed": cfg.data_seed}
    # the GAN is unconditional: it trains on images alone
    return Data(
        TensorDataset(train.tensors[0]),
        TensorDataset(test.tensors[0]),
        info | {"train_size": len(train), "test_size": len(test)},
    )


# -- networks ----------------------------------------------------------------------------------------


def generator_block(c_in: int, c_out: int, bn_eps: float | None) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(c_in, c_out)]
    if bn_eps is not None:
        layers.append(nn.BatchNorm1d(c_out, eps=bn_eps))
    return [*layers, nn.LeakyReLU(0.2)]


class Generator(nn.Sequential):
    def __init__(self, latent_dim: int, widths: tuple[int, ...], bn_eps: float):
        dims = (latent_dim, *widths)
        blocks = [
            generator_block(a, b, None if i == 0 else bn_eps) for i, (a, b) in enumerate(itertools.pairwise(dims))
        ]
        super().__init__(
            *[m for block in blocks for m in block],
            nn.Linear(widths[-1], IMAGE_PIXELS),
            nn.Tanh(),
            nn.Unflatten(1, IMAGE_SHAPE),
        )  # (B, 1, 28, 28)


class Discriminator(nn.Sequential):
    def __init__(self, widths: tuple[int, ...]):
        dims = (IMAGE_PIXELS, *widths)
        layers = [m for a, b in itertools.pairwise(dims) for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))]
        super().__init__(nn.Flatten(), *layers, nn.Linear(widths[-1], 1))  # (B, 1) logits


def build_nets(cfg: Config) -> nn.ModuleDict:
    """Generator then discriminator, both from the global RNG: seed it first."""
    return nn.ModuleDict(
        {
            "generator": Generator(cfg.latent_dim, cfg.g_widths, cfg.bn_eps),
            "discriminator": Discriminator(cfg.d_widths),
        }
    )


def build_optimizers(nets: nn.ModuleDict, cfg: Config) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    betas = (cfg.beta1, cfg.beta2)
    return (
        torch.optim.Adam(nets["generator"].parameters(), lr=cfg.lr, betas=betas),
        torch.optim.Adam(nets["discriminator"].parameters(), lr=cfg.lr, betas=betas),
    )


# -- the algorithm -------------------------------------------------------------------------------------


def noise_generator(seed: int, device: torch.device) -> torch.Generator:
    """The latent noise's own RNG: both loops draw z identically, and nothing else draws from it."""
    return torch.Generator(device=device).manual_seed(seed)


def sample_noise(n: int, cfg: Config, noise: torch.Generator) -> torch.Tensor:
    return torch.randn(n, cfg.latent_dim, generator=noise, device=noise.device)


def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Real -> 1, fake -> 0; pass `fake` detached so that no gradient reaches the generator.

    One D forward over real and fake together (D has no BatchNorm, so this is the same function):
    each D weight is used once per autocast region, so PyTorch's default weight-cast cache and
    Lightning's `cache_enabled=False` give the same bits. (With two forwards in one cached region the
    two gradients of a weight's single cached cast are summed in low precision before the cast back,
    and the bits differ from per-use casts summed in float32.)
    """
    logits_real, logits_fake = discriminator(torch.cat([real.flatten(1), fake.flatten(1)])).split(len(real))
    return 0.5 * (
        F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
        + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    )


def generator_loss(discriminator: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss: make D call the fakes real."""
    logits_fake = discriminator(fake)
    return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))


# -- evaluation ----------------------------------------------------------------------------------------


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: torch.Tensor) -> float:
    """Unbiased squared MMD with a sum of Gaussian kernels; x, y: (n, d) and (m, d)."""
    xx, yy, xy = torch.cdist(x, x).pow(2), torch.cdist(y, y).pow(2), torch.cdist(x, y).pow(2)

    def k(d2: torch.Tensor) -> torch.Tensor:
        return sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)

    n, m = len(x), len(y)
    kxx = (k(xx).sum() - k(xx).diagonal().sum()) / (n * (n - 1))
    kyy = (k(yy).sum() - k(yy).diagonal().sum()) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(xy).mean())


def _mmd_metric_class() -> type:
    from torchmetrics import Metric
    from torchmetrics.utilities import dim_zero_cat

    class MMD(Metric):
        """MMD between all generated and all real samples of an epoch (median-heuristic bandwidths)."""

        higher_is_better = False

        def __init__(self) -> None:
            super().__init__()
            self.add_state("fake", default=[], dist_reduce_fx="cat")
            self.add_state("real", default=[], dist_reduce_fx="cat")

        def update(self, fake: torch.Tensor, real: torch.Tensor) -> None:
            self.fake.append(fake)
            self.real.append(real)

        def compute(self) -> torch.Tensor:
            fake, real = dim_zero_cat(self.fake).cpu(), dim_zero_cat(self.real).cpu()
            bandwidths = torch.cdist(real, real).median() * torch.tensor([0.5, 1.0, 2.0])
            return torch.tensor(mmd2(fake, real, bandwidths))

    return MMD


def MMD():
    return _mmd_metric_class()()


@torch.no_grad()
def generate(generator: nn.Module, n: int, cfg: Config, device: torch.device) -> torch.Tensor:
    """n digits from the fixed evaluation noise, in eval mode (BatchNorm running statistics), fp32."""
    z = torch.randn(n, cfg.latent_dim, generator=torch.Generator().manual_seed(EVAL_SEED)).to(device)
    return generator.to(device).eval()(z).float().cpu()


def evaluate(nets: nn.ModuleDict, data: Data, cfg: Config, device: torch.device) -> dict[str, float]:
    """MMD between generated and held-out real digits; the floor is MMD between two real halves."""
    real = data.test.tensors[0]
    n = min(cfg.eval_samples, len(real) // 2)
    real_a, real_b = real[:n].flatten(1), real[n : 2 * n].flatten(1)
    bandwidths = torch.cdist(real_a, real_b).median() * torch.tensor([0.5, 1.0, 2.0])  # median heuristic
    fake = generate(nets["generator"], n, cfg, device).flatten(1)
    return {"mmd": mmd2(fake, real_a, bandwidths), "mmd_real_floor": mmd2(real_b, real_a, bandwidths)}


def sample_grid(nets: nn.ModuleDict, cfg: Config, device: torch.device, n: int = 64) -> str:
    """An 8 x 8 grid of generated digits from the fixed evaluation noise, as a base64 PNG."""
    from PIL import Image
    from torchvision.utils import make_grid

    images = generate(nets["generator"], n, cfg, device)
    grid = make_grid(images, nrow=8, padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0)
    buf = io.BytesIO()
    Image.fromarray(grid[0].mul(255).round().byte().numpy(), mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
