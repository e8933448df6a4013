"""CIFAR-style VGG with BatchNorm (Simonyan & Zisserman 2015; the variant of Li et al. 2017 and
NNI's VGG-16 experiments): 3x3 convs, max pools, and a single linear head ``512*width -> classes``.

A max pool is kept only while the feature map is at least 2x2, and an adaptive average pool
ends the features, so the net builds for 28x28 Fashion-MNIST as well as 32x32 CIFAR and larger
inputs without changing the head.
"""

from __future__ import annotations

from torch import nn

from .registry import attach_meta, register_model, scaled

_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """``features`` (conv-BN-ReLU blocks and pools), a global average pool, ``classifier``."""

    def __init__(self, cfg, num_classes: int, in_channels: int, input_size, width: float):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        h, w = input_size
        for v in cfg:
            if v == "M":
                if min(h, w) >= 2:
                    layers.append(nn.MaxPool2d(2, 2))
                    h, w = h // 2, w // 2
                continue
            c_out = scaled(int(v), width)
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):  # noqa: D102
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _vgg(name, num_classes, in_channels, input_size, width) -> VGG:
    model = VGG(_CFGS[name], num_classes, in_channels, input_size, width)
    return attach_meta(model, name, in_channels, input_size, num_classes, width, "features.0",
                       "classifier")


@register_model("vgg11", in_channels=3, input_size=(32, 32),
                description="CIFAR VGG-11 with BatchNorm, linear 512*width head")
def vgg11(num_classes=10, in_channels=3, input_size=(32, 32), width=1.0) -> VGG:
    return _vgg("vgg11", num_classes, in_channels, input_size, width)


@register_model("vgg16", in_channels=3, input_size=(32, 32),
                description="CIFAR VGG-16 with BatchNorm, linear 512*width head")
def vgg16(num_classes=10, in_channels=3, input_size=(32, 32), width=1.0) -> VGG:
    return _vgg("vgg16", num_classes, in_channels, input_size, width)
