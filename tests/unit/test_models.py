"""The model registry: counts, shapes, metadata and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.models import model_defaults


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lenet300", 266_610),  # 784*300+300 + 300*100+100 + 100*10+10
        ("mnist-fc", 119_910),
        ("vgg16", 14_728_266),  # CIFAR VGG-16 with BN, one linear head
        ("resnet20", 269_722),  # He et al. 2016, option A
        ("resnet56", 853_018),
    ],
)
def test_parameter_counts(name, expected):
    assert n_params(tp.create_model(name, num_classes=10)) == expected


def test_every_model_is_listed_and_runs_at_its_default_and_mnist_shapes():
    assert tp.list_models() == [
        "lenet300", "mnist-conv", "mnist-fc", "resnet20", "resnet56", "vgg11", "vgg16"
    ]
    for name in tp.list_models():
        for shape in [model_defaults(name)[:2], (1, (28, 28)), (3, (32, 32))]:
            c, size = shape
            model = tp.create_model(name, num_classes=7, in_channels=c, input_size=size, width=0.25)
            out = model.eval()(torch.zeros(2, c, *size))
            assert out.shape == (2, 7), name
            assert model.meta.input_shape == (c, *size)


def test_metadata_names_real_first_layer_and_classifier():
    for name in tp.list_models():
        model = tp.create_model(name)
        modules = dict(model.named_modules())
        first, head = modules[model.meta.first_layer], modules[model.meta.classifier]
        assert isinstance(first, (nn.Conv2d, nn.Linear))
        assert isinstance(head, nn.Linear) and head.out_features == 10
        # the first layer really is the first weighted layer
        weighted = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert weighted[0] == model.meta.first_layer and weighted[-1] == model.meta.classifier


def test_width_scales_hidden_layers_and_the_vgg_head():
    assert tp.create_model("vgg16", width=0.25).classifier.in_features == 128
    assert tp.create_model("lenet300", width=0.5).layers["fc1"].out_features == 150
    assert tp.create_model("mnist-conv", input_size=8, width=0.5).classifier.in_features == 16 * 64


def test_vgg_skips_pools_on_small_inputs():
    model = tp.create_model("vgg16", in_channels=1, input_size=8)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert model.eval()(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_resnet_shortcut_b_adds_projections():
    a = tp.create_model("resnet20")
    b = tp.create_model("resnet20", shortcut="B")
    assert n_params(b) > n_params(a)
    assert b(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(tp.TopopruneError, match="shortcut must be one of"):
        tp.create_model("resnet20", shortcut="C")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "vgg19"}, "unknown model 'vgg19'; did you mean 'vgg16'\\? available: lenet300"),
        ({"name": "vgg16", "num_classes": 0}, "num_classes must be"),
        ({"name": "vgg16", "width": -1}, "width must be"),
        ({"name": "vgg16", "in_channels": 0}, "in_channels must be"),
        ({"name": "vgg16", "input_size": (0, 3)}, "input_size must be"),
    ],
)
def test_bad_arguments_name_the_value_and_what_is_allowed(kwargs, message):
    with pytest.raises(tp.TopopruneError, match=message):
        tp.create_model(**kwargs)


def test_public_api_names_resolve_lazily():
    import subprocess
    import sys

    for name in tp.__all__:
        assert getattr(tp, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'prune_everything'"):
        tp.prune_everything  # noqa: B018
    code = "import sys, topoprune; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    # regression: building the CLI's options read experiments.config, whose package imports
    # pulled in torch through experiments/ and train/ (~3 s before every command's first line)
    code = "import sys, topoprune.cli; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
