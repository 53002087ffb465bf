# Lightning's examples/pytorch/domain_templates/imagenet.py as LightningCLI configures it: resnet18, top-1/top-5
# accuracy metrics, ModelCheckpoint on val_acc1, TQDMProgressBar(refresh_rate=10), benchmark=True, logger=False.
# The ImageFolder of ImageNet is replaced by generated 64x64 images through the authors' transforms (crops to 56).
import torch
import torch.nn.functional as F
import torch.optim as optim
import torch.optim.lr_scheduler as lr_scheduler
import torchvision.transforms as transforms
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.strategies import ParallelStrategy
from lightning.pytorch.utilities.model_helpers import get_torchvision_model
from torchmetrics import Accuracy

from examples.jobs.data import FakeImages


class ImageNetLightningModel(LightningModule):
    def __init__(
        self,
        data_path: str = "fake",
        arch: str = "resnet18",
        weights=None,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        batch_size: int = 8,
        workers: int = 0,
    ):
        super().__init__()
        self.arch, self.weights, self.lr, self.momentum, self.weight_decay = arch, weights, lr, momentum, weight_decay
        self.data_path, self.batch_size, self.workers = data_path, batch_size, workers
        self.model = get_torchvision_model(self.arch, weights=self.weights)
        self.train_acc1 = Accuracy(task="multiclass", num_classes=1000, top_k=1)
        self.train_acc5 = Accuracy(task="multiclass", num_classes=1000, top_k=5)
        self.eval_acc1 = Accuracy(task="multiclass", num_classes=1000, top_k=1)
        self.eval_acc5 = Accuracy(task="multiclass", num_classes=1000, top_k=5)

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        images, target = batch
        output = self.model(images)
        loss_train = F.cross_entropy(output, target)
        self.log("train_loss", loss_train)
        self.train_acc1(output, target)
        self.train_acc5(output, target)
        self.log("train_acc1", self.train_acc1, prog_bar=True)
        self.log("train_acc5", self.train_acc5, prog_bar=True)
        return loss_train

    def eval_step(self, batch, batch_idx, prefix: str):
        images, target = batch
        output = self.model(images)
        loss_val = F.cross_entropy(output, target)
        self.log(f"{prefix}_loss", loss_val)
        self.eval_acc1(output, target)
        self.eval_acc5(output, target)
        self.log(f"{prefix}_acc1", self.eval_acc1, prog_bar=True)
        self.log(f"{prefix}_acc5", self.eval_acc5, prog_bar=True)
        return loss_val

    def validation_step(self, batch, batch_idx):
        return self.eval_step(batch, batch_idx, "val")

    def configure_optimizers(self):
        optimizer = optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        scheduler = lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.1 ** (epoch // 30))
        return [optimizer], [scheduler]

    def setup(self, stage: str):
        if isinstance(self.trainer.strategy, ParallelStrategy):
            num_processes = max(1, self.trainer.strategy.num_processes)
            self.batch_size = int(self.batch_size / num_processes)
        normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        if stage == "fit":
            self.train_dataset = FakeImages(
                32,
                (3, 64, 64),
                1000,
                mode="RGB",
                transform=transforms.Compose(
                    [
                        transforms.RandomResizedCrop(56),
                        transforms.RandomHorizontalFlip(),
                        transforms.ToTensor(),
                        normalize,
                    ]
                ),
            )
        self.eval_dataset = FakeImages(
            16,
            (3, 64, 64),
            1000,
            seed=1,
            mode="RGB",
            transform=transforms.Compose(
                [transforms.Resize(64), transforms.CenterCrop(56), transforms.ToTensor(), normalize]
            ),
        )

    def train_dataloader(self):
        return torch.utils.data.DataLoader(
            dataset=self.train_dataset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.workers,
            pin_memory=True,
        )

    def val_dataloader(self):
        return torch.utils.data.DataLoader(
            self.eval_dataset, batch_size=self.batch_size, num_workers=self.workers, pin_memory=True
        )


def make():
    return {
        "module": ImageNetLightningModel(),
        "trainer": {"max_epochs": 2, "logger": False, "benchmark": True},
        "callbacks": [TQDMProgressBar(refresh_rate=10), ModelCheckpoint(monitor="val_acc1", mode="max")],
    }
