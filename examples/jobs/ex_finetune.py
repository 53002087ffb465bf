# Lightning's examples/pytorch/domain_templates/computer_vision_fine_tuning.py: MilestonesFinetuning (a
# BaseFinetuning), MultiStepLR, binary accuracy; its CLI defaults (no summary, no sanity check). The backbone's
# pretrained weights (a download) are left out; the cats-and-dogs ImageFolder is generated, through its transforms.
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.callbacks.finetuning import BaseFinetuning
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.model_helpers import get_torchvision_model
from torch import nn, optim
from torch.optim.lr_scheduler import MultiStepLR
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader
from torchmetrics import Accuracy
from torchvision import transforms

from examples.jobs.data import FakeImages


class MilestonesFinetuning(BaseFinetuning):
    def __init__(self, milestones: tuple = (5, 10), train_bn: bool = False):
        super().__init__()
        self.milestones, self.train_bn = milestones, train_bn

    def freeze_before_training(self, pl_module: LightningModule):
        self.freeze(modules=pl_module.feature_extractor, train_bn=self.train_bn)

    def finetune_function(self, pl_module: LightningModule, epoch: int, optimizer: Optimizer):
        if epoch == self.milestones[0]:
            self.unfreeze_and_add_param_group(
                modules=pl_module.feature_extractor[-5:], optimizer=optimizer, train_bn=self.train_bn
            )
        elif epoch == self.milestones[1]:
            self.unfreeze_and_add_param_group(
                modules=pl_module.feature_extractor[:-5], optimizer=optimizer, train_bn=self.train_bn
            )


class CatDogImageDataModule(LightningDataModule):
    def __init__(self, num_workers: int = 0, batch_size: int = 8):
        super().__init__()
        self._num_workers, self._batch_size = num_workers, batch_size

    @property
    def normalize_transform(self):
        return transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])

    @property
    def train_transform(self):
        return transforms.Compose(
            [
                transforms.Resize((64, 64)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                self.normalize_transform,
            ]
        )

    @property
    def valid_transform(self):
        return transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor(), self.normalize_transform])

    def __dataloader(self, train: bool):
        dataset = FakeImages(
            32 if train else 16,
            (3, 80, 80),
            2,
            seed=0 if train else 1,
            mode="RGB",
            transform=self.train_transform if train else self.valid_transform,
        )
        return DataLoader(dataset=dataset, batch_size=self._batch_size, num_workers=self._num_workers, shuffle=train)

    def train_dataloader(self):
        return self.__dataloader(train=True)

    def val_dataloader(self):
        return self.__dataloader(train=False)


class TransferLearningModel(LightningModule):
    def __init__(
        self,
        backbone: str = "resnet18",
        train_bn: bool = False,
        milestones: tuple = (1, 2),
        batch_size: int = 8,
        lr: float = 1e-3,
        lr_scheduler_gamma: float = 1e-1,
        num_workers: int = 0,
        **kwargs,
    ):
        super().__init__()
        self.backbone, self.train_bn, self.milestones, self.batch_size = backbone, train_bn, milestones, batch_size
        self.lr, self.lr_scheduler_gamma, self.num_workers = lr, lr_scheduler_gamma, num_workers
        self.__build_model()
        self.train_acc = Accuracy(task="binary")
        self.valid_acc = Accuracy(task="binary")
        self.save_hyperparameters()

    def __build_model(self):
        backbone = get_torchvision_model(self.backbone, weights=None)
        self.feature_extractor = nn.Sequential(*list(backbone.children())[:-1])
        self.fc = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 32), nn.Linear(32, 1))
        self.loss_func = F.binary_cross_entropy_with_logits

    def forward(self, x):
        x = self.feature_extractor(x)
        return self.fc(x.squeeze(-1).squeeze(-1))

    def loss(self, logits, labels):
        return self.loss_func(input=logits, target=labels)

    def training_step(self, batch, batch_idx):
        x, y = batch
        y_logits = self.forward(x)
        y_scores = torch.sigmoid(y_logits)
        y_true = y.view((-1, 1)).type_as(x)
        train_loss = self.loss(y_logits, y_true)
        self.log("train_acc", self.train_acc(y_scores, y_true.int()), prog_bar=True)
        return train_loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        y_logits = self.forward(x)
        y_scores = torch.sigmoid(y_logits)
        y_true = y.view((-1, 1)).type_as(x)
        self.log("val_loss", self.loss(y_logits, y_true), prog_bar=True)
        self.log("val_acc", self.valid_acc(y_scores, y_true.int()), prog_bar=True)

    def configure_optimizers(self):
        parameters = list(self.parameters())
        trainable_parameters = list(filter(lambda p: p.requires_grad, parameters))
        rank_zero_info(f"The model will start training with only {len(trainable_parameters)} trainable parameters")
        optimizer = optim.Adam(trainable_parameters, lr=self.lr)
        scheduler = MultiStepLR(optimizer, milestones=self.milestones, gamma=self.lr_scheduler_gamma)
        return [optimizer], [scheduler]


def make():
    return {
        "module": TransferLearningModel(),
        "data": CatDogImageDataModule(),
        "trainer": {"max_epochs": 3, "enable_model_summary": False, "num_sanity_val_steps": 0},
        "callbacks": [MilestonesFinetuning(milestones=(1, 2))],
    }
