"""Golden values of Balwani & Krzyston 2022 (METHODS.md section 3), to 1e-4."""

from __future__ import annotations

import numpy as np
import pytest

import topoprune as tp
from topoprune.topology import ConvLayer, critical_compression_of_layer


def test_mnist_fc_per_layer_and_final():
    r = tp.critical_compression(tp.create_model("mnist-fc"), input_shape=(1, 28, 28))
    expected = [88.78822, 50.25126, 50.25126, 50.25126, 50.25126, 9.17431]
    assert [x.ratio for x in r.layers] == pytest.approx(expected, abs=1e-4)
    assert r.final == pytest.approx(66.77852, abs=1e-4)


def test_mnist_conv_per_layer_and_final():
    r = tp.critical_compression(tp.create_model("mnist-conv"), input_shape=(1, 28, 28))
    assert [x.ratio for x in r.layers] == pytest.approx([4.19251, 4.19251, 9.99641], abs=1e-4)
    assert r.final == pytest.approx(9.31005, abs=1e-4)
    assert [x.kind for x in r.layers] == ["conv", "conv", "linear"]


@pytest.mark.parametrize("size, expected", [(32, 4.22946), (16, 3.97927)])
def test_single_conv_at_32_and_16(size, expected):
    layer = ConvLayer("c", np.ones((64, 64, 3, 3)), padding=(1, 1), input_size=(size, size))
    assert critical_compression_of_layer(layer, "paper").ratio == pytest.approx(expected, abs=1e-4)


def test_vgg16_first_layer_in_the_registry_matches_the_32x32_value():
    r = tp.critical_compression(tp.create_model("vgg16"))
    assert r.layers[0].ratio == pytest.approx(4.22946, abs=1e-4)
