# Lightning tutorials, "Introduction to PyTorch Lightning" (mnist-hello-world): LitMNIST with prepare_data, setup
# with random_split, torchmetrics accuracy, validation; max_epochs=3, a progress bar refreshing every 20 batches.
import lightning as L
import torch
from lightning.pytorch.callbacks.progress import TQDMProgressBar
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, random_split
from torchmetrics import Accuracy
from torchvision import transforms

from examples.jobs.data import FakeImages


class LitMNIST(L.LightningModule):
    def __init__(self, data_dir="fake", hidden_size=64, learning_rate=2e-4):
        super().__init__()
        self.data_dir, self.hidden_size, self.learning_rate = data_dir, hidden_size, learning_rate
        self.num_classes = 10
        self.dims = (1, 28, 28)
        channels, width, height = self.dims
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        self.model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * width * height, hidden_size),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden_size, self.num_classes),
        )
        self.val_accuracy = Accuracy(task="multiclass", num_classes=10)
        self.test_accuracy = Accuracy(task="multiclass", num_classes=10)

    def forward(self, x):
        return F.log_softmax(self.model(x), dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.nll_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.nll_loss(logits, y)
        preds = torch.argmax(logits, dim=1)
        self.val_accuracy.update(preds, y)
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_acc", self.val_accuracy, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)

    def prepare_data(self):
        pass  # MNIST(self.data_dir, train=True, download=True): no network here

    def setup(self, stage=None):
        if stage == "fit" or stage is None:
            mnist_full = FakeImages(704, transform=self.transform)
            self.mnist_train, self.mnist_val = random_split(
                mnist_full, [640, 64], generator=torch.Generator().manual_seed(42)
            )

    def train_dataloader(self):
        return DataLoader(self.mnist_train, batch_size=64)

    def val_dataloader(self):
        return DataLoader(self.mnist_val, batch_size=64)


def make():
    return {"module": LitMNIST(), "trainer": {"max_epochs": 3}, "callbacks": [TQDMProgressBar(refresh_rate=20)]}
