"""Surgeon: torch-pruning groups, consumers and coupling through its public API."""

from __future__ import annotations

import torch
from torch import nn

import topoprune as tp
from topoprune.pruning.surgery import Surgeon


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 5 * 5, 3),
    )


def test_consumers_are_the_next_layers_only():
    net = small_net()
    surgeon = Surgeon(net, torch.zeros(1, 1, 5, 5))
    assert surgeon.consumers("0") == [net[3]]  # not the BatchNorm, not the conv itself
    assert surgeon.consumers("3") == [net[6]]  # through the flatten
    assert surgeon.consumers("6") == []  # the head feeds nothing


def test_group_removes_the_given_units_and_everything_coupled():
    net = small_net()
    surgeon = Surgeon(net, torch.zeros(1, 1, 5, 5))
    group = surgeon.group("0", [1, 3])
    assert [int(i) for i in group[0].idxs] == [1, 3]  # the root: layer "0", units 1 and 3
    keep = net[0].weight[[0, 2]].detach().clone()
    surgeon.remove("0", [1, 3])
    assert net[0].weight.shape[0] == 2 and net[1].num_features == 2 and net[3].weight.shape[1] == 2
    torch.testing.assert_close(net[0].weight, keep)
    assert net(torch.zeros(2, 1, 5, 5)).shape == (2, 3)


def test_option_b_resnet_coupling_and_consumers():
    model = tp.create_model("resnet20", shortcut="B", width=0.5)
    surgeon = Surgeon(model, torch.zeros(1, 3, 32, 32))
    info = surgeon.inspect("layer2.0.conv2")
    assert set(info.coupled) == {"layer2.0.shortcut.0", "layer2.1.conv2", "layer2.2.conv2"}
    assert not info.through_padding
    names = {surgeon.names[m] for m in surgeon.consumers("layer2.0.conv2")}
    # every block reading the layer-2 residual stream, and layer 3's projection shortcut
    assert names == {"layer2.1.conv1", "layer2.2.conv1", "layer3.0.conv1", "layer3.0.shortcut.0"}
    assert {surgeon.names[m] for m in surgeon.consumers("layer2.0.conv1")} == {"layer2.0.conv2"}


def test_option_a_coupling_is_flagged_as_padding():
    surgeon = Surgeon(tp.create_model("resnet20", width=0.5), torch.zeros(1, 3, 32, 32))
    assert surgeon.inspect("layer2.0.conv2").through_padding
    assert not surgeon.inspect("layer2.0.conv1").through_padding

