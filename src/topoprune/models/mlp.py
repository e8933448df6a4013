"""Fully connected models: LeNet-300-100 and the SynFlow/Balwani MNIST net."""

from __future__ import annotations

from torch import nn

from .activations import make_activation
from .registry import attach_meta, register_model, scaled


class MLP(nn.Module):
    """Flatten, then Linear+ReLU blocks, then a linear classifier.

    Layers are named ``fc1, fc2, ...`` and ``classifier`` so that names read well in reports.
    ``activation`` is a name from :func:`topoprune.models.activations.list_activations`; one
    module ``act`` is applied after every hidden layer.
    """

    def __init__(self, in_features: int, hidden: list[int], num_classes: int,
                 activation: str = "relu") -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        sizes = [in_features, *hidden]
        self.layers = nn.ModuleDict()
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.layers[f"fc{k}"] = nn.Linear(a, b)
        self.act = make_activation(activation)
        self.classifier = nn.Linear(sizes[-1], num_classes)

    def forward(self, x):  # noqa: D102
        x = self.flatten(x)
        for layer in self.layers.values():
            x = self.act(layer(x))
        return self.classifier(x)


def _mlp(name: str, hidden: list[int], num_classes, in_channels, input_size, width,
         activation: str = "relu") -> MLP:
    in_features = in_channels * input_size[0] * input_size[1]
    model = MLP(in_features, [scaled(h, width) for h in hidden], num_classes, activation)
    options = {} if activation == "relu" else {"activation": activation}
    return attach_meta(model, name, in_channels, input_size, num_classes, width, "layers.fc1",
                       "classifier", **options)


@register_model(
    "lenet300", in_channels=1, input_size=(28, 28),
    description="LeNet-300-100: 784-300-100-10 fully connected (LeCun et al. 1998)",
)
def lenet300(num_classes=10, in_channels=1, input_size=(28, 28), width=1.0, activation="relu") -> MLP:
    return _mlp("lenet300", [300, 100], num_classes, in_channels, input_size, width, activation)


@register_model(
    "mnist-fc", in_channels=1, input_size=(28, 28),
    description="784-100-100-100-100-100-10 fully connected (SynFlow; Balwani & Krzyston)",
)
def mnist_fc(num_classes=10, in_channels=1, input_size=(28, 28), width=1.0, activation="relu") -> MLP:
    return _mlp("mnist-fc", [100] * 5, num_classes, in_channels, input_size, width, activation)
