# Lightning's examples/pytorch/basics/transformer.py: the demo Transformer on WikiText2 (tokens generated here),
# with its 'trainer' settings: gradient clipping at 0.25.
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.demos import Transformer
from torch.utils.data import DataLoader, TensorDataset


class LanguageModel(LightningModule):
    def __init__(self, vocab_size: int = 33278):
        super().__init__()
        self.model = Transformer(vocab_size=vocab_size)

    def training_step(self, batch, batch_idx):
        input, target = batch
        output = self.model(input, target)
        loss = torch.nn.functional.nll_loss(output, target.view(-1))
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        input, target = batch
        output = self.model(input, target)
        self.log("val_loss", torch.nn.functional.nll_loss(output, target.view(-1)), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def make():
    vocab, block = 256, 16
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (160, block + 1), generator=g)
    train = DataLoader(TensorDataset(tokens[:128, :-1], tokens[:128, 1:]), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(tokens[128:, :-1], tokens[128:, 1:]), batch_size=16)
    return {
        "module": LanguageModel(vocab_size=vocab),
        "data": train,
        "val_data": val,
        "trainer": {"gradient_clip_val": 0.25, "max_epochs": 2},
    }
