# Lightning tutorials, "PyTorch Lightning CIFAR10 ~94% Baseline Tutorial": LitResnet (torchvision's resnet18
# adapted to 32x32), SGD + OneCycleLR sized from self.trainer.max_epochs, LearningRateMonitor, a progress bar,
# CSVLogger (given here as the verb's own: each Trainer logs as it is set); and its SWA bonus: SWAResnet, with
# torch.optim.swa_utils' AveragedModel updated at each epoch's end and update_bn at the training's end.
import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.callbacks.progress import TQDMProgressBar
from torch.optim.lr_scheduler import OneCycleLR
from torch.optim.swa_utils import AveragedModel, update_bn
from torch.utils.data import DataLoader, random_split
from torchmetrics.functional import accuracy

from examples.jobs.data import FakeImages

BATCH_SIZE = 32
NUM_WORKERS = 0


def create_model():
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    model.maxpool = nn.Identity()
    return model


def cifar_loaders():
    norm = torchvision.transforms.Normalize(mean=[0.4914, 0.4822, 0.4465], std=[0.2470, 0.2435, 0.2616])
    train_t = torchvision.transforms.Compose(
        [
            torchvision.transforms.RandomCrop(32, padding=4),
            torchvision.transforms.RandomHorizontalFlip(),
            torchvision.transforms.ToTensor(),
            norm,
        ]
    )
    test_t = torchvision.transforms.Compose([torchvision.transforms.ToTensor(), norm])
    full = FakeImages(160, (3, 32, 32), 10, mode="RGB", transform=train_t)
    train, _ = random_split(full, [128, 32], generator=torch.Generator().manual_seed(42))
    val = FakeImages(32, (3, 32, 32), 10, seed=1, mode="RGB", transform=test_t)
    return (
        DataLoader(train, batch_size=BATCH_SIZE, shuffle=True, num_workers=NUM_WORKERS),
        DataLoader(val, batch_size=BATCH_SIZE, num_workers=NUM_WORKERS),
    )


class LitResnet(L.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model()

    def forward(self, x):
        return F.log_softmax(self.model(x), dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.nll_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def evaluate(self, batch, stage=None):
        x, y = batch
        logits = self(x)
        loss = F.nll_loss(logits, y)
        preds = torch.argmax(logits, dim=1)
        acc = accuracy(preds, y, task="multiclass", num_classes=10)
        if stage:
            self.log(f"{stage}_loss", loss, prog_bar=True)
            self.log(f"{stage}_acc", acc, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self.evaluate(batch, "val")

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=5e-4)
        steps_per_epoch = 128 // BATCH_SIZE
        scheduler_dict = {
            "scheduler": OneCycleLR(optimizer, 0.1, epochs=self.trainer.max_epochs, steps_per_epoch=steps_per_epoch),
            "interval": "step",
        }
        return {"optimizer": optimizer, "lr_scheduler": scheduler_dict}


class SWAResnet(LitResnet):
    def __init__(self, trained_model, lr=0.01):
        super().__init__()
        self.save_hyperparameters("lr")
        self.model = trained_model
        self.swa_model = AveragedModel(self.model)

    def forward(self, x):
        out = self.swa_model(x)
        return F.log_softmax(out, dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.nll_loss(F.log_softmax(self.model(x), dim=1), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.model.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=5e-4)

    def on_train_epoch_end(self):
        self.swa_model.update_parameters(self.model)

    def on_train_end(self):
        update_bn(self.trainer.datamodule.train_dataloader(), self.swa_model, device=self.device)


class CIFAR(L.LightningDataModule):
    def __init__(self):
        super().__init__()
        self.train, self.val = cifar_loaders()

    def train_dataloader(self):
        return self.train

    def val_dataloader(self):
        return self.val


def baseline():
    train, val = cifar_loaders()
    return {
        "module": LitResnet(lr=0.05),
        "data": train,
        "val_data": val,
        "trainer": {"max_epochs": 3},
        "callbacks": [LearningRateMonitor(logging_interval="step"), TQDMProgressBar(refresh_rate=10)],
    }


def swa():
    return {
        "module": SWAResnet(create_model(), lr=0.01),
        "data": CIFAR(),
        "trainer": {"max_epochs": 2},
        "callbacks": [TQDMProgressBar(refresh_rate=20)],
    }
