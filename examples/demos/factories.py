"""Factories for `loopbench module`: Lightning's own demo modules (pytorch_lightning.demos), which nobody here
wrote, and a torchvision model in a minimal module. Each returns a LightningModule, or (module, data).

    loopbench module examples.demos.factories:boring
"""

from __future__ import annotations

import torch
from pytorch_lightning import LightningModule
from pytorch_lightning.demos.boring_classes import BoringModel, DemoModel, ManualOptimBoringModel, RandomDataset
from pytorch_lightning.demos.transformer import LightningTransformer
from torch.utils.data import DataLoader, TensorDataset


def boring() -> BoringModel:
    """As shipped: SGD with a StepLR per epoch, its own train_dataloader of 64 random samples."""
    return BoringModel()


def manual_boring() -> ManualOptimBoringModel:
    """Manual optimization: self.optimizers(), manual_backward, opt.step() in its training step."""
    return ManualOptimBoringModel()


def demo_model() -> tuple[DemoModel, DataLoader]:
    """DemoModel (Adam, no scheduler), which has no loader of its own, on the random samples its size takes."""
    return DemoModel(), DataLoader(RandomDataset(32, 256), batch_size=16)


def transformer() -> tuple[LightningTransformer, DataLoader]:
    """The demo Transformer on generated tokens (its WikiText2 download replaced: no network here)."""
    vocab, block, samples = 256, 16, 256
    module = LightningTransformer(vocab_size=vocab)
    module.prepare_data = lambda: None  # it would download WikiText2
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (samples, block + 1), generator=g)
    return module, DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=16)


class VisionModule(LightningModule):
    """The minimal module a user writes around a torchvision model: cross-entropy, SGD with momentum."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 2),
                                                         "interval": "step", "frequency": 2}}  # fmt: skip


def torchvision_resnet() -> tuple[VisionModule, DataLoader]:
    """torchvision's resnet18 (10 classes) on generated 32x32 images."""
    import torchvision

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)
    return VisionModule(torchvision.models.resnet18(num_classes=10)), DataLoader(TensorDataset(x, y), batch_size=16)
