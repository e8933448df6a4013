"""SynFlow scores (Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020): data-free synaptic flow.

A weight's score is ``|theta * dR/dtheta|``, where ``R = 1^T (prod_l |W_l|) 1`` is the synaptic
flow: the sum of the outputs of the *linearised* network (every weight replaced by its absolute
value) on an all-ones input. The iterative schedule (prune a little, re-score, repeat) that uses
these scores lives in :func:`topoprune.prune_weights` (``method="synflow"``); this
module only scores.

How the network is linearised (on a float64 copy, in eval mode; the model itself is never
changed):

- every parameter becomes its absolute value, except biases, which become zero: ``R`` as the
  paper defines it is a product of weight matrices, and with zero biases every neuron conserves
  its flow exactly (incoming synaptic saliency = outgoing), which is what keeps SynFlow from
  cutting a layer apart;
- BatchNorm runs in eval mode with its running mean and its bias at zero: it becomes the positive
  per-channel scale ``|gamma| / sqrt(running_var + eps)``, the factor it multiplies the preceding
  layer's weights by at inference (a model with BN without running statistics normalises each
  batch, which is not linear: its flow is whatever that gives);
- masks in force (``torch.nn.utils.prune``) are applied: a pruned weight carries no flow.

All-positive activations pass ReLU, max- and average-pooling and residual additions unchanged,
so for the usual vision networks ``R`` is exactly the path sum. The score of weight ``(i, j)`` of
a dense layer is then ``|w_ij| * (flow into j) * (flow out of i)``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import TopopruneError
from ..models.inputs import Inputs, call_model, describe_inputs, example_inputs_for, first_tensor
from ..models.introspect import tied_layers
from ..models.layers import maskable_layers, weight_attr

__all__ = ["SynFlowScorer", "synflow_scores", "synflow_inputs", "keep_schedule"]

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def synflow_inputs(model: nn.Module, example_inputs: object = None) -> Inputs:
    """The all-ones float64 input (batch of one) shaped like the model's inputs: ``example_inputs``
    (a tensor or a tuple of tensors), else ``model.meta.input_shape``. Token models (a dict of
    keyword inputs, integer ids) are refused: an all-ones *signal* means nothing to them."""
    inputs = example_inputs_for(model, example_inputs)
    refuse = (f"SynFlow sends an all-ones real-valued signal through the network, which is undefined for "
              f"token or keyword inputs; got {describe_inputs(inputs)}: pass float example_inputs "
              "(a tensor or a tuple of tensors) or use another method")
    if isinstance(inputs, Mapping):
        raise TopopruneError(refuse)

    def ones(v: object) -> object:
        if not isinstance(v, torch.Tensor):
            return v
        if not v.is_floating_point():
            raise TopopruneError(refuse)
        return torch.ones_like(v[:1] if v.ndim else v, dtype=torch.float64)

    if isinstance(inputs, tuple):
        return tuple(ones(v) for v in inputs)
    return ones(inputs)


def keep_schedule(remaining: int, keep: int, iterations: int) -> list[int]:
    """How many weights stay after each of ``iterations`` rounds: the exponential schedule
    ``remaining * (keep / remaining) ** (k / iterations)``, rounded, ending exactly at ``keep``."""
    if remaining <= 0:
        return [0] * iterations
    d = keep / remaining
    out = [max(keep, min(remaining, round(remaining * d ** (k / iterations)))) for k in range(1, iterations + 1)]
    out[-1] = keep
    return out


def _pruned_names(m: nn.Module) -> list[str]:
    """The tensors of ``m`` under a ``torch.nn.utils.prune`` reparametrisation."""
    return [n[: -len("_orig")] for n, _ in m.named_parameters(recurse=False)
            if n.endswith("_orig") and hasattr(m, f"{n[: -len('_orig')]}_mask")]


def _copy_unpruned(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose pruning reparametrisations are made permanent (the masked
    weight becomes the parameter). The pruned attribute itself (``weight = weight_orig *
    weight_mask``, recomputed by every forward) is not a graph leaf, which ``deepcopy`` refuses:
    the copy gets a detached clone of it instead, and the model is left as it was."""
    memo: dict[int, object] = {}
    for m in model.modules():
        for name in _pruned_names(m):
            t = getattr(m, name)
            memo[id(t)] = t.detach().clone()
    net = copy.deepcopy(model, memo)
    for m in net.modules():
        for name in _pruned_names(m):
            prune.remove(m, name)
    return net


class SynFlowScorer:
    """A linearised float64 copy of ``model`` (see the module docstring), built once; calling it
    with the layers' current keep masks returns each layer's SynFlow scores.

    Args:
        model: the model (left untouched; its current masks are applied to the copy).
        layers: names of the weighted layers to score.
        example_inputs: what :func:`synflow_inputs` takes.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], example_inputs: object = None) -> None:
        self.inputs = synflow_inputs(model, example_inputs)
        net = _copy_unpruned(model)
        p = next(net.parameters(), None)
        device = p.device if p is not None and p.device.type != "mps" else torch.device("cpu")  # mps: no float64
        net.to(device=device, dtype=torch.float64).eval()
        self.inputs = _to(self.inputs, device)
        with torch.no_grad():
            for m in net.modules():
                for name, param in m.named_parameters(recurse=False):
                    param.requires_grad_(False)
                    if name == "bias" or name.endswith("_bias"):  # nn.MultiheadAttention's in_proj_bias
                        param.zero_()
                    else:
                        param.abs_()
                if isinstance(m, _BATCHNORMS) and m.running_mean is not None:
                    m.running_mean.zero_()
                    m.running_var.abs_()
        modules = maskable_layers(net)  # weighted layers and nn.MultiheadAttention's <module>.in_proj
        missing = [n for n in layers if n not in modules
                   or not isinstance(getattr(modules[n], weight_attr(modules[n]), None), nn.Parameter)]
        if missing:
            raise TopopruneError(f"SynFlow: no weighted layer named {missing[0]!r} in the model")
        self.net = net
        self.names = list(layers)
        self.weights = [getattr(modules[n], weight_attr(modules[n])) for n in self.names]
        self.base = [w.detach().clone() for w in self.weights]  # |W| with the model's masks applied
        for w in self.weights:
            w.requires_grad_(True)
        self.flow: float | None = None  # R of the last call

    def __call__(self, masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Scores ``|w * dR/dw|`` (float64, CPU, each layer's stored weight layout) with the keep
        masks ``masks`` (stored layout; a missing layer keeps what the model had) applied."""
        with torch.no_grad():
            for n, w, b in zip(self.names, self.weights, self.base):
                mask = None if masks is None else masks.get(n)
                w.copy_(b if mask is None else b * mask.to(device=b.device, dtype=b.dtype))
        with torch.enable_grad():
            flow = first_tensor(call_model(self.net, self.inputs)).sum()
            grads = torch.autograd.grad(flow, self.weights, allow_unused=True)
        self.flow = float(flow.detach())
        if not torch.isfinite(flow):
            raise TopopruneError(f"SynFlow: the synaptic flow R is {self.flow} in float64 (the product of "
                                 "|W| over the layers overflows): the network is too deep or its weights too "
                                 "large to score this way")
        out = {}
        with torch.no_grad():
            for n, w, g in zip(self.names, self.weights, grads):
                out[n] = (w * g).abs().cpu() if g is not None else torch.zeros_like(w, device="cpu")
        return out


def synflow_scores(model: nn.Module, example_inputs: object = None, *,
                   layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """One round of SynFlow scores of ``model`` as it is (masks applied): ``{layer: scores}``,
    float64 tensors shaped like each layer's stored weight. ``layers`` defaults to every weighted
    layer whose weight is not tied to another module's (the unstructured pruning targets)."""
    if layers is None:
        tied = tied_layers(model)
        layers = [n for n in maskable_layers(model) if n not in tied]
    return SynFlowScorer(model, layers, example_inputs)()


def _to(inputs: Inputs, device: torch.device) -> Inputs:
    if isinstance(inputs, tuple):
        return tuple(v.to(device) if isinstance(v, torch.Tensor) else v for v in inputs)
    return inputs.to(device)
