"""The model zoo: a registry of LeNet-300-100, the Balwani MNIST nets, CIFAR VGG and ResNet."""

from . import convnets, mlp, resnet, vgg  # noqa: F401  (registers the models)
from .introspect import default_input_shape, extract_layers, parse_shape
from .registry import ModelMeta, create_model, list_models, model_defaults, register_model

__all__ = [
    "ModelMeta",
    "create_model",
    "default_input_shape",
    "extract_layers",
    "list_models",
    "model_defaults",
    "parse_shape",
    "register_model",
]
