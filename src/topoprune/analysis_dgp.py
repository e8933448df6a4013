"""Deep graph persistence of a whole model (Girrbach et al., TMLR 2023).

Thin glue, like :mod:`topoprune.analysis`: the model's weighted layers become torch-free layer
descriptions (:func:`topoprune.models.introspect.extract_layers`), in the order one forward pass
runs them, and :func:`topoprune.topology.deep_graph_persistence_of_network` does the maths.

DGP is defined for a feed-forward chain of Linear and Conv layers. One forward pass on the
example inputs checks that the layers form such a chain
(:func:`topoprune.models.dataflow.weighted_chain`: each layer reads only the previous layer's
output, none runs twice); a residual connection, a concatenation, attention or a recurrent layer
is refused with a one-line error.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .errors import TopopruneError
from .models.attention import find_attention
from .models.dataflow import weighted_chain
from .models.introspect import extract_layers
from .topology.dgp import DGPResult
from .topology.dgp import deep_graph_persistence_of_network as _chain_dgp

__all__ = ["DGPResult", "deep_graph_persistence"]

_OUT_OF_SCOPE = "deep graph persistence covers feed-forward chains of Linear and Conv layers"


def deep_graph_persistence(
    model: nn.Module,
    example_inputs: object = None,
    *,
    input_shape: Sequence[int] | None = None,
    channel_norm: float = 2.0,
) -> DGPResult:
    """Deep graph persistence of a model whose weighted layers form one feed-forward chain
    (MLPs, plain conv nets such as VGG): a single number in ``[0, 1]`` for the whole network.

    Convs enter through their channel graph (kernel-slice ``channel_norm``-norms); a linear
    layer after a flatten reads each conv channel's positions as one input (the largest of its
    standardized weights over them). Biases, normalisation layers and activations are not part
    of the graph.

    Args:
        model: an ``nn.Module``.
        example_inputs: a batch the model takes (a tensor, a tuple of tensors or a dict), used
            as given to follow the data through the layers; default zeros of ``input_shape``
            or of ``model.meta.input_shape`` (registry models).
        input_shape: instead, the shape of one float input without the batch.
        channel_norm: the p-norm of kernel slices in a conv's channel graph (default 2).

    Raises:
        TopopruneError: for a model with attention, a recurrent layer or a residual connection
            (any layer that reads more than the previous layer's output), or inputs the model
            does not take.
    """
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = tuple(input_shape) if input_shape is not None else None
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            raise TopopruneError(f"{_OUT_OF_SCOPE}; {name or 'the model'!r} is attention, which is out of its scope")
        if isinstance(module, nn.RNNBase):
            raise TopopruneError(f"{_OUT_OF_SCOPE}; {name or 'the model'!r} is a recurrent layer, which is out of "
                                 "its scope")
    blocks = find_attention(model)
    if blocks:
        raise TopopruneError(f"{_OUT_OF_SCOPE}; {blocks[0].name or 'the model'!r} is attention, which is out of its "
                             "scope")
    chain = weighted_chain(model, example_inputs, input_shape=shape)
    if not chain.is_chain:
        raise TopopruneError(f"{_OUT_OF_SCOPE} (no residual connection or concatenation); here {chain.reason}")
    layers = {x.name: x for x in extract_layers(model, shape, example_inputs=example_inputs)}
    missing = [n for n in chain.order if n not in layers]
    if missing:
        raise TopopruneError(f"{_OUT_OF_SCOPE}; layer {missing[0]!r} shares its weight with another layer")
    try:
        return _chain_dgp([layers[n] for n in chain.order], channel_norm=channel_norm)
    except ValueError as exc:
        raise TopopruneError(str(exc)) from None
