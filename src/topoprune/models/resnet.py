"""CIFAR ResNets (He et al. 2016, section 4.2): 3 stages of ``n`` basic blocks at 16, 32, 64
channels (times ``width``), global average pooling and a linear head; depth ``6n + 2``.

``shortcut="A"`` (default, as in the paper's CIFAR experiments) is parameter-free: subsample and
pad the missing channels with zeros. ``shortcut="B"`` uses a 1x1 conv + BatchNorm projection when
the shape changes.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..errors import TopopruneError
from .registry import attach_meta, register_model, scaled

SHORTCUTS = ("A", "B")


class PadShortcut(nn.Module):
    """Option A: take every ``stride``-th pixel and zero-pad channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        diff = out_channels - in_channels
        self.pad = (diff // 2, diff - diff // 2)

    def forward(self, x):  # noqa: D102
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU(inplace=True)
        if stride == 1 and in_channels == channels:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(in_channels, channels, stride)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x):  # noqa: D102
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """``conv1``/``bn1`` stem, ``layer1..layer3``, average pool, ``classifier``."""

    def __init__(self, depth: int, num_classes: int, in_channels: int, width: float, shortcut: str):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise TopopruneError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        n = (depth - 2) // 6
        widths = [scaled(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        c_in = widths[0]
        for s, c in enumerate(widths):
            blocks = []
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock(c_in, c, stride, shortcut))
                c_in = c
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):  # noqa: D102
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(self.flatten(self.pool(x)))


def _resnet(name, depth, num_classes, in_channels, input_size, width, shortcut) -> CifarResNet:
    model = CifarResNet(depth, num_classes, in_channels, width, shortcut)
    return attach_meta(model, name, in_channels, input_size, num_classes, width, "conv1",
                       "classifier", shortcut=shortcut)


@register_model("resnet20", in_channels=3, input_size=(32, 32),
                description="CIFAR ResNet-20 (He et al. 2016), option-A shortcuts by default")
def resnet20(num_classes=10, in_channels=3, input_size=(32, 32), width=1.0, shortcut="A"):
    return _resnet("resnet20", 20, num_classes, in_channels, input_size, width, shortcut)


@register_model("resnet56", in_channels=3, input_size=(32, 32),
                description="CIFAR ResNet-56 (He et al. 2016), option-A shortcuts by default")
def resnet56(num_classes=10, in_channels=3, input_size=(32, 32), width=1.0, shortcut="A"):
    return _resnet("resnet56", 56, num_classes, in_channels, input_size, width, shortcut)
