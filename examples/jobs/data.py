"""Generated stand-ins for the downloads (MNIST, CIFAR-10, KITTI, cats-and-dogs, ImageNet folders): the same
shapes and types, deterministic, no per-item seeding."""

import torch
from PIL import Image
from torch.utils.data import Dataset


class FakeImages(Dataset):
    def __init__(self, n, shape=(1, 28, 28), classes=10, seed=0, transform=None, pil=True, mode="L"):
        g = torch.Generator().manual_seed(seed)
        self.x = (torch.rand((n, *shape), generator=g) * 255).to(torch.uint8)
        self.y = torch.randint(0, classes, (n,), generator=g)
        self.transform, self.pil, self.mode = transform, pil, mode

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.pil:
            arr = x.squeeze(0).numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
            x = Image.fromarray(arr, mode=self.mode)
        else:
            x = x.float() / 255
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.y[i])
