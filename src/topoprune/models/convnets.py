"""Small convolutional nets: the MNIST conv net of Balwani & Krzyston."""

from __future__ import annotations

from torch import nn

from .registry import attach_meta, register_model, scaled


@register_model(
    "mnist-conv", in_channels=1, input_size=(28, 28),
    description="conv 1->32 3x3 pad 1, conv 32->32 3x3 pad 1, linear 32*H*W -> classes",
)
def mnist_conv(num_classes=10, in_channels=1, input_size=(28, 28), width=1.0) -> nn.Module:
    c = scaled(32, width)
    h, w = input_size
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(in_channels, c, 3, padding=1))
    model.add_module("relu1", nn.ReLU())
    model.add_module("conv2", nn.Conv2d(c, c, 3, padding=1))
    model.add_module("relu2", nn.ReLU())
    model.add_module("flatten", nn.Flatten())
    model.add_module("classifier", nn.Linear(c * h * w, num_classes))
    return attach_meta(model, "mnist-conv", in_channels, (h, w), num_classes, width, "conv1",
                       "classifier")
