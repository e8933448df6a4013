"""Parameter, MAC and FLOP counts against hand computation."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

import topoprune as tp
from topoprune.metrics import (
    count_flops,
    count_macs,
    count_parameters,
    measure_latency,
    model_cost,
    model_size_bytes,
)


def test_vgg16_macs_by_the_nni_rule():
    # sum over convs of C_out*H_out*W_out*9*C_in at 32/16/8/4/2, plus the 512x10 head.
    assert count_macs(tp.create_model("vgg16"), (3, 32, 32)) == 313_201_664


def test_small_models_by_hand():
    assert count_macs(tp.create_model("lenet300"), (1, 28, 28)) == 784 * 300 + 300 * 100 + 100 * 10
    conv = 32 * 28 * 28 * 9 * 1 + 32 * 28 * 28 * 9 * 32 + 32 * 28 * 28 * 10
    assert count_macs(tp.create_model("mnist-conv"), (1, 28, 28)) == conv
    grouped = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    assert count_macs(grouped, (4, 5, 5)) == 8 * 25 * 9 * 2


def test_flops_are_torch_counter_flops_not_macs():
    model = tp.create_model("lenet300")
    assert count_flops(model, (1, 28, 28)) == 2 * count_macs(model, (1, 28, 28))


def test_parameters_total_and_nonzero_respect_prune_masks():
    model = tp.create_model("lenet300")
    total, nonzero = count_parameters(model)
    assert total == 266_610 and nonzero == total
    prune.l1_unstructured(model.layers["fc1"], "weight", amount=0.5)
    total2, nonzero2 = count_parameters(model)
    assert total2 == total and nonzero2 == total - 784 * 300 // 2


def test_size_latency_and_cost_record():
    model = tp.create_model("mnist-fc")
    # float32 weights plus the zip container's headers (a few KiB), nothing more
    assert 4 * 119_910 < model_size_bytes(model) < 4 * 119_910 + 16_384
    lat = measure_latency(model, (1, 28, 28), batch_sizes=(1, 4), warmup=1, repeats=5)
    assert set(lat) == {1, 4} and lat[1]["median_ms"] > 0 and lat[4]["iqr_ms"] >= 0
    cost = model_cost(model, (1, 28, 28))
    assert cost.params == 119_910 and cost.flops == 2 * cost.macs
    assert set(cost.to_dict()) == {"params", "nonzero_params", "macs", "flops", "size_bytes"}


def test_optimize_for_inference_keeps_outputs():
    import torch

    from topoprune.inference import optimize_for_inference

    torch.manual_seed(0)
    model = tp.create_model("vgg16", width=0.125).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last)), model(x),
                               atol=1e-4, rtol=1e-4)
    lat = measure_latency(fast, (3, 32, 32), batch_sizes=(2,), warmup=1, repeats=3, channels_last=True)
    assert lat[2]["median_ms"] > 0
