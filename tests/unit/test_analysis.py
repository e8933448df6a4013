"""Model-level neural persistence and critical compression, and checkpoint loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.experiments import load_checkpoint_into
from topoprune.models import extract_layers
from topoprune.topology import neural_persistence_of_layer as matrix_np


def test_report_per_layer_totals_and_matrix_agreement():
    torch.manual_seed(0)
    model = tp.create_model("lenet300")
    r = tp.neural_persistence(model)
    assert [x.name for x in r.layers] == ["layers.fc1", "layers.fc2", "classifier"]
    assert [x.n_vertices for x in r.layers] == [1084, 400, 110]
    assert r.total == pytest.approx(sum(x.np for x in r.layers))
    assert r.mean_normalized == pytest.approx(np.mean([x.normalized for x in r.layers]))
    w = model.layers["fc2"].weight.detach().numpy()
    assert r.layers[1].np == pytest.approx(matrix_np(w))
    assert r.layers[1].normalized == pytest.approx(matrix_np(w, normalized=True))
    d = r.to_dict()
    assert set(d) == {"p", "normalization", "conv_graph", "include_bias", "essential", "layers",
                      "total", "mean_normalized"}


def test_global_normalization_never_lowers_np():
    # Dividing by the network's max gives smaller deaths, hence more persistence, per layer.
    model = tp.create_model("mnist-fc")
    local = tp.neural_persistence(model, normalization="layer")
    glob = tp.neural_persistence(model, normalization="global")
    for a, b in zip(local.layers, glob.layers):
        assert b.np >= a.np - 1e-12
    assert any(b.np > a.np + 1e-9 for a, b in zip(local.layers, glob.layers))


def test_bias_adds_one_vertex():
    model = tp.create_model("lenet300")
    with_bias = tp.neural_persistence(model, include_bias=True)
    assert [x.n_vertices for x in with_bias.layers] == [1085, 401, 111]


def test_conv_graphs_channel_and_toeplitz():
    model = tp.create_model("mnist-conv", input_size=8, width=0.25)
    ch = tp.neural_persistence(model)
    assert [x.graph for x in ch.layers] == ["channel", "channel", "dense"]
    assert ch.layers[1].n_vertices == 16
    tz = tp.neural_persistence(model, conv_graph="toeplitz")
    assert tz.layers[1].n_vertices == 2 * 8 * 64
    assert all(0 <= x.normalized <= 1 for x in tz.layers)
    with pytest.raises(tp.TopopruneError, match="conv_graph must be one of"):
        tp.neural_persistence(model, conv_graph="pixel")
    with pytest.raises(tp.TopopruneError, match="normalization must be one of"):
        tp.neural_persistence(model, normalization="batch")


def test_arrays_and_mappings_are_accepted_and_checked():
    w = np.random.default_rng(0).standard_normal((5, 4))
    assert tp.neural_persistence(w).layers[0].np == pytest.approx(matrix_np(w))
    assert len(tp.neural_persistence({"a": w, "b": w.T}).layers) == 2
    with pytest.raises(tp.TopopruneError, match="2-D"):
        tp.neural_persistence({"v": np.ones(3)})


def test_recurrent_layers_are_graphs():
    lstm = nn.LSTM(4, 6)
    layers = extract_layers(lstm)
    kinds = [(x.name, x.kind, x.weight.shape) for x in layers]
    assert kinds[0] == ("weight_ih_l0", "linear", (24, 4))
    assert [k for _, k, _ in kinds[1:]] == ["recurrent"] * 4
    assert all(s == (6, 6) for _, _, s in kinds[1:])
    r = tp.critical_compression(nn.RNN(3, 8), input_shape=(1, 3))
    assert r.layers[1].ratio == pytest.approx(64 / 15)


def test_critical_compression_follows_input_shape_and_conv1d():
    model = tp.create_model("mnist-conv", in_channels=3, input_size=(32, 32))
    assert tp.critical_compression(model).layers[0].ratio == pytest.approx(4.22946, abs=1e-4)
    conv1d = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1))
    r = tp.critical_compression(conv1d, input_shape=(2, 10), convention="exact")
    assert r.layers[0].edges == 4 * 2 * (3 * 10 - 2)
    with pytest.raises(tp.TopopruneError, match="does not accept inputs of shape"):
        tp.critical_compression(tp.create_model("lenet300"), input_shape=(1, 5, 5))


def test_checkpoint_round_trip_and_errors(tmp_path):
    src = tp.create_model("lenet300")
    torch.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    dst = load_checkpoint_into(tp.create_model("lenet300"), tmp_path / "ckpt.pt")
    assert torch.equal(dst.classifier.weight, src.classifier.weight)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(tp.TopopruneError, match="bad.pt' is corrupt"):
        load_checkpoint_into(tp.create_model("lenet300"), tmp_path / "bad.pt")
    with pytest.raises(tp.TopopruneError, match="does not fit the model"):
        load_checkpoint_into(tp.create_model("mnist-fc"), tmp_path / "ckpt.pt")
    with pytest.raises(tp.TopopruneError, match="does not exist"):
        load_checkpoint_into(src, tmp_path / "missing.pt")
