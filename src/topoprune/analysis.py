"""Model-level topology: neural persistence and critical compression of a whole network.

Thin glue: :func:`topoprune.models.extract_layers` turns the model into torch-free layer graphs,
and ``topoprune.topology`` does the maths.

Any ``nn.Module`` works: Linear, Conv and Hugging Face ``Conv1D`` layers (GPT-2's, transposed to
``(out, in)``) are graphs, so a transformer has one entry per attention projection (q, k, v or a
fused qkv, and the output projection) and per MLP layer, each with its ``role``. A model is run
(to size conv inputs, and to check it takes them) on ``example_inputs`` as given (a tensor, a
tuple, or a dict such as ``{"input_ids": ids, "attention_mask": mask}``), or, for a registry
model, on zeros of ``input_shape``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from torch import nn

from .errors import TopopruneError
from .models.dataflow import weighted_chain
from .models.introspect import (default_input_shape, effective_weight, extract_layers, layer_roles,
                                weight_parameter)
from .models.layers import maskable_layers, out_in_weight, weight_attr
from .topology import (
    ConvLayer,
    CriticalResult,
    DenseLayer,
    Layer,
    LayerPersistence,
    PersistenceResult,
    against_critical,
    channel_mask,
    channel_matrix,
    connectivity,
    critical_compression_of_network,
    neural_persistence_null_of_network,
    neural_persistence_of_network,
    tree_kept,
)

__all__ = ["CollapseResult", "betti_by_layer", "collapse_report", "critical_compression", "layer_representations",
           "layers_from_arrays", "neural_persistence", "ModelLayerPersistence"]


@dataclass(frozen=True)
class ModelLayerPersistence(LayerPersistence):
    """One layer's neural persistence, plus what the layer does (``role``): ``attention.q``,
    ``attention.k``, ``attention.v``, ``attention.qkv`` (fused), ``attention.out``, ``mlp``,
    ``classifier`` (registry models), else ``conv``, ``linear`` or ``recurrent``; see
    :func:`topoprune.models.introspect.layer_roles`."""

    role: str = "linear"
    null_z: float | None = None  # permutation null (``null=K``): z-score of the observed NP
    null_quantile: float | None = None  # and its mid-rank quantile among the K permuted NPs


def layers_from_arrays(weights: np.ndarray | Mapping[str, np.ndarray]) -> list[Layer]:
    """Dense layer graphs from one ``(n_out, n_in)`` array or a name -> array mapping, with the
    checks a user's file needs: 2-D, non-empty, finite."""
    items = weights.items() if isinstance(weights, Mapping) else [("weights", weights)]
    layers: list[Layer] = []
    for name, w in items:
        a = np.asarray(w)
        if a.ndim != 2 or a.size == 0:
            raise TopopruneError(
                f"{name}: weights must be a non-empty 2-D array (n_out, n_in), got shape {a.shape}"
            )
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise TopopruneError(f"{name}: weights must be real numbers, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise TopopruneError(f"{name}: weights contain NaN or inf; only finite values are allowed")
        layers.append(DenseLayer(str(name), a))
    if not layers:
        raise TopopruneError("no weight arrays given")
    return layers


def _check_shape(input_shape) -> tuple[int, ...] | None:
    """``input_shape`` as a tuple of positive ints (one input, no batch), or a one-line error."""
    if input_shape is None:
        return None
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or not input_shape or any(
        isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1 for x in input_shape
    ):
        raise TopopruneError(f"input_shape must be a sequence of positive ints, one input without the "
                             f"batch, e.g. (1, 28, 28); got {input_shape!r}")
    return tuple(int(x) for x in input_shape)


def _is_shape(value: object) -> bool:
    """A sequence of plain ints (the old positional ``input_shape``), never valid inputs."""
    return (isinstance(value, (tuple, list)) and bool(value)
            and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in value))


def _layers(model, input_shape, example_inputs=None) -> list[Layer]:
    input_shape = _check_shape(input_shape)
    if isinstance(model, nn.Module):
        layers = extract_layers(model, input_shape, example_inputs=example_inputs)
        if not layers:
            raise TopopruneError("the model has no Linear, Conv, Hugging Face Conv1D or recurrent layers "
                                 "to analyse")
        return layers
    import torch

    if not isinstance(model, (np.ndarray, torch.Tensor, Mapping, list, tuple)):
        raise TopopruneError(f"model must be a torch.nn.Module, a 2-D weight array or a mapping of name -> "
                             f"array, got {type(model).__name__}")
    if example_inputs is not None:
        raise TopopruneError("example_inputs is for an nn.Module; weight arrays are analysed as they are")
    return layers_from_arrays(model)


def neural_persistence(
    model: nn.Module | np.ndarray | Mapping[str, np.ndarray],
    p: float = 2.0,
    *,
    normalization: str = "layer",
    include_bias: bool = False,
    essential: bool = False,
    conv_graph: str = "channel",
    input_shape: Sequence[int] | None = None,
    example_inputs: object = None,
    channel_norm: float = 2.0,
    null: int | None = None,
    null_seed: int = 0,
) -> PersistenceResult:
    """Neural persistence of every layer of a model, with total and mean normalized NP.

    Every weighted layer is one entry (a weight tied between several layers counts once), with
    its ``role`` (:class:`ModelLayerPersistence`): for a transformer, one per attention
    projection and per MLP layer.

    Args:
        model: an ``nn.Module``, one ``(n_out, n_in)`` array, or a mapping of name -> array.
        p: norm exponent, ``> 0``.
        normalization: ``"layer"`` (each layer by its own max |w|) or ``"global"`` (by the
            network's max).
        include_bias: fold biases in as one extra input vertex.
        essential: record the never-dying class as ``(1, 0)``.
        conv_graph: ``"channel"`` or ``"toeplitz"`` (exact; needs the conv input sizes:
            ``example_inputs``, ``input_shape`` or ``model.meta``).
        input_shape: ``(C, H, W)`` of one float input, for the Toeplitz graph.
        example_inputs: instead of ``input_shape``, a batch the model takes, used as given (a
            tensor, a tuple of tensors or a dict of keyword inputs).
        channel_norm: p-norm of kernel slices in the channel graph.
        null: a number of permutations ``K >= 1``: each layer's NP is also placed in its
            permutation null (its weights permuted at random inside the layer, ``K`` times;
            :func:`topoprune.topology.null.neural_persistence_null_of_network`), giving each layer's
            ``null_z`` and ``null_quantile``. None (default): no null.
        null_seed: seed of the permutations (an int ``>= 0``).
    """
    if null is not None and (isinstance(null, bool) or not isinstance(null, (int, np.integer)) or null < 1):
        raise TopopruneError(f"null must be a number of permutations >= 1 (or None for no null), got {null!r}")
    if isinstance(null_seed, bool) or not isinstance(null_seed, (int, np.integer)) or null_seed < 0:
        raise TopopruneError(f"null_seed must be an integer >= 0, got {null_seed!r}")
    try:
        layers = _layers(model, input_shape, example_inputs)
        report = neural_persistence_of_network(
            layers, p=p, normalization=normalization,
            include_bias=include_bias, essential=essential, conv_graph=conv_graph,
            channel_norm=channel_norm,
        )
        nulls = neural_persistence_null_of_network(
            layers, int(null), seed=int(null_seed), p=p, normalization=normalization, include_bias=include_bias,
            essential=essential, conv_graph=conv_graph, channel_norm=channel_norm,
        ) if null is not None else [None] * len(layers)
    except TopopruneError:
        raise
    except ValueError as exc:
        raise TopopruneError(str(exc)) from None
    roles = layer_roles(model) if isinstance(model, nn.Module) else {}
    rows = [ModelLayerPersistence(**asdict(x), role=roles.get(x.name, _kind_role(layer)),
                                  null_z=None if n is None or np.isnan(n.z) else n.z,
                                  null_quantile=None if n is None else n.quantile)
            for x, layer, n in zip(report.layers, layers, nulls)]
    return PersistenceResult(rows, report.p, report.normalization, report.conv_graph,
                             report.include_bias, report.essential)


def _kind_role(layer: Layer) -> str:
    return "conv" if isinstance(layer, ConvLayer) else ("recurrent" if layer.kind == "recurrent" else "linear")


def critical_compression(
    model: nn.Module,
    example_inputs: object = None,
    convention: str = "paper",
    *,
    input_shape: Sequence[int] | None = None,
) -> CriticalResult:
    """Topologically critical compression ratio of every layer and of the model.

    Args:
        model: an ``nn.Module``.
        example_inputs: a batch the model takes, used as given: a tensor, a tuple of tensors or
            a dict of keyword inputs (``{"input_ids": ids, "attention_mask": mask}``). It sizes
            the conv layers' inputs. (A sequence of ints here is read as ``input_shape``, the
            old second positional parameter.)
        convention: ``"paper"`` (Balwani & Krzyston's one-channel Toeplitz count) or
            ``"exact"`` (the full multichannel unrolled graph).
        input_shape: instead of ``example_inputs``, ``(C, H, W)`` of one float input; default
            ``model.meta.input_shape``. A model without conv layers needs neither.
    """
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if _is_shape(example_inputs):
        if input_shape is not None:
            raise TopopruneError(f"example_inputs {example_inputs!r} is a shape and input_shape is given "
                                 "too; pass example_inputs (a batch the model takes) or input_shape")
        example_inputs, input_shape = None, example_inputs
    layers = _layers(model, input_shape, example_inputs)
    unsized = [x.name for x in layers if isinstance(x, ConvLayer) and x.input_size is None]
    if unsized:
        which = f"{', '.join(unsized[:3])}{' ...' if len(unsized) > 3 else ''}"
        if example_inputs is None and input_shape is None and default_input_shape(model) is None:
            raise TopopruneError(
                f"critical_compression of a conv model needs the conv layers' input sizes ({which}): "
                "pass example_inputs (a batch the model takes) or input_shape=(C, H, W)")
        raise TopopruneError(f"conv layer(s) {which} did not run on the given inputs, so their input "
                             "size is unknown; critical_compression needs every conv layer to run")
    try:
        return critical_compression_of_network(layers, convention)
    except TopopruneError:
        raise
    except ValueError as exc:
        raise TopopruneError(str(exc)) from None


def _layer_mask(module: nn.Module) -> np.ndarray:
    """The kept weights of a layer as ``(out, in, ...)`` booleans: its ``weight_mask`` under
    ``torch.nn.utils.prune``, else all kept."""
    mask = getattr(module, f"{weight_attr(module)}_mask", None)
    if mask is None:
        return np.ones(tuple(out_in_weight(module).shape), bool)
    return out_in_weight(module, mask).detach().cpu().numpy() != 0


def _graph(module: nn.Module, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A layer's ``(n_out, n_in)`` edge values and edge mask: the channel graph for a conv."""
    if values.ndim == 2:
        return np.abs(values), mask
    groups = int(getattr(module, "groups", 1))
    return (channel_matrix(ConvLayer("layer", values, groups=groups)), channel_mask(mask, groups))


def _json_float(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


@dataclass
class CollapseResult:
    """What :func:`collapse_report` measured (each field is described there). Reading it like the
    dict it used to be (``result["exact"]``) still works, with a ``DeprecationWarning``."""

    exact: bool
    reason: str | None
    level: str
    layers: list[str]
    collapsed_layers: list[str]
    any_collapsed: bool
    weights_left: dict[str, int]
    path: bool | None
    inputs_connected: int | None
    inputs_total: int | None
    outputs_connected: int | None
    outputs_total: int | None
    units_on_path: dict[str, int] | None
    tree_kept: dict[str, float | None]
    critical: dict

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str):
        from ._deprecation import warn_deprecated

        warn_deprecated(f"collapse_report(...)[{key!r}]", f"collapse_report(...).{key} (or .to_dict())")
        return self.to_dict()[key]


def collapse_report(
    model: nn.Module,
    *,
    input_shape: Sequence[int] | None = None,
    example_inputs: object = None,
    reference: nn.Module | None = None,
    convention: str = "paper",
) -> CollapseResult:
    """Layer collapse, input-to-output connectivity, spanning tree kept and the sparsity against
    the critical compression ratio of a model pruned with ``torch.nn.utils.prune``, as a
    :class:`CollapseResult` (its ``to_dict()`` is JSON-ready: no NaN or inf).

    Masks are the layers' ``weight_mask`` buffers (``in_proj_weight_mask`` for an
    ``nn.MultiheadAttention``'s ``<module>.in_proj``; a layer without one keeps every weight; a
    model after ``prune.remove`` therefore reads as dense). Hugging Face ``Conv1D`` masks are
    read as ``(out, in)``.

    What is measured:

    - ``layers``: the weighted layers in the order they run; ``weights_left`` per layer;
      ``collapsed_layers`` (none left) and ``any_collapsed``.
    - ``path``, ``inputs_connected`` / ``inputs_total``, ``outputs_connected`` /
      ``outputs_total``, ``units_on_path`` (per layer, output units on some input-to-output
      path): exact reachability through the layers' masks
      (:func:`topoprune.topology.connectivity`), **only when the weighted layers form a
      feed-forward chain** (``exact: true``; MLPs, plain conv nets, VGG). A conv counts at
      channel level (``level: "channel"``: a channel edge is kept if any weight of its kernel
      slice is, and the inputs are the input channels); a linear layer after a flatten reads
      its columns as channel-major blocks. Whether the layers form a chain is decided from the
      autograd graph of one forward pass (:func:`topoprune.models.dataflow.weighted_chain`).
      With a residual add, a concatenation or a layer run twice, ``exact`` is false,
      ``reason`` says where, and these fields are None: the chain of layers in execution
      order would miss the skip paths.
    - ``tree_kept``: per layer, the fraction of the maximum spanning tree of the dense weights
      that the mask keeps (:func:`topoprune.topology.tree_kept`; the channel graph of
      kernel-slice 2-norms for a conv, as ``preserve="mst"`` uses). The dense weights are
      ``weight_orig`` (the pruned weights' values before masking), so measure right after
      pruning; after recovery, or to ask about another model's trees, pass ``reference`` (the
      dense model, same layer names). None for a layer whose dense weights are all zero.
    - ``critical``: each layer's and the model's compression ``1 / (1 - sparsity)`` (measured
      from the masks; the model's over all its layers' weights) against the critical
      compression ratio (:func:`critical_compression` with ``convention``), from
      :func:`topoprune.topology.against_critical`.

    Args:
        model: an ``nn.Module``.
        input_shape: ``(C, H, W)`` of one float input; default ``model.meta.input_shape``.
        example_inputs: instead, a batch the model takes (tensor, tuple or dict), used as given.
        reference: the model whose weights define the spanning trees (default: this model's
            unmasked weights).
        convention: of the critical ratio, ``"paper"`` or ``"exact"``.
    """
    if not isinstance(model, nn.Module):
        raise TopopruneError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if example_inputs is not None and input_shape is not None:
        raise TopopruneError("pass example_inputs or input_shape, not both: example_inputs is a batch "
                             "the model takes, input_shape the shape of one float input")
    shape = _check_shape(input_shape)
    modules = maskable_layers(model)
    if not modules:
        raise TopopruneError("the model has no Linear, Conv or Hugging Face Conv1D layers to measure")
    if reference is not None and not isinstance(reference, nn.Module):
        raise TopopruneError(f"reference must be a torch.nn.Module, got {type(reference).__name__}")
    chain = weighted_chain(model, example_inputs, input_shape=shape)
    names = [*chain.order, *(n for n in modules if n not in chain.order)]
    masks = {n: _layer_mask(modules[n]) for n in names}
    ref_modules = maskable_layers(reference) if reference is not None else {}
    graphs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for n in names:
        m = modules[n]
        if reference is None:
            w = out_in_weight(m, weight_parameter(m))
        else:
            r = ref_modules.get(n)
            if r is None:
                raise TopopruneError(f"the reference model has no weighted layer {n!r}; it must have the "
                                     "pruned model's layer names")
            w = out_in_weight(r, effective_weight(r))
        values = w.detach().cpu().numpy()
        if values.shape != masks[n].shape:
            raise TopopruneError(f"layer {n!r}: the reference weight has shape {values.shape}, the mask "
                                 f"{masks[n].shape}")
        graphs[n] = _graph(m, values, masks[n])
    try:
        trees = tree_kept([graphs[n][0] for n in names], [graphs[n][1] for n in names])
    except ValueError as exc:
        raise TopopruneError(str(exc)) from None

    exact, reason, conn = chain.is_chain, chain.reason, None
    if exact:
        try:
            conn = connectivity([graphs[n][1] for n in names], names=names)
        except ValueError as exc:
            exact, reason = False, str(exc)
    crit = critical_compression(model, example_inputs, convention, input_shape=shape)
    measured = [x.name for x in crit.layers if x.name in masks]
    kept = sum(int(masks[n].sum()) for n in measured)
    total = sum(masks[n].size for n in measured)
    against = against_critical({n: 1.0 - masks[n].sum() / masks[n].size for n in measured}, crit,
                               overall=1.0 - kept / total)
    left = {n: int(masks[n].sum()) for n in names}
    collapsed = [n for n in names if left[n] == 0]
    return CollapseResult(
        exact=exact,
        reason=reason,
        level="channel" if any(masks[n].ndim > 2 for n in names) else "unit",
        layers=names,
        collapsed_layers=collapsed,
        any_collapsed=bool(collapsed),
        weights_left=left,
        path=conn.path if conn else None,
        inputs_connected=conn.inputs_connected if conn else None,
        inputs_total=conn.inputs_total if conn else None,
        outputs_connected=conn.outputs_connected if conn else None,
        outputs_total=conn.outputs_total if conn else None,
        units_on_path=dict(zip(conn.names, conn.units_on_path)) if conn else None,
        tree_kept={n: _json_float(t) for n, t in zip(names, trees)},
        critical=against,
    )


def _activation_types() -> tuple[type, ...]:
    from .models.activations import list_activations, make_activation

    return tuple({type(make_activation(n)) for n in list_activations()})


def layer_representations(model: nn.Module, inputs, layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The network's representation of ``inputs`` after every layer, in forward order: the input
    itself (``"input"``), then the output of each call of the named modules (default: every
    activation module of the registry's types), flattened to ``(N, features)``. A module applied
    several times (the MLPs share one ``act``) gives one entry per call: ``act#1``, ``act#2``..."""
    import torch

    from .models.hooks import inspecting

    modules = dict(model.named_modules())
    if layers is None:
        kinds = _activation_types()
        layers = [n for n, m in modules.items() if n and isinstance(m, kinds)]
    missing = [n for n in layers if n not in modules]
    if missing:
        raise TopopruneError(f"no module named {missing}; the model has {[n for n in modules if n][:12]}...")
    if not layers:
        raise TopopruneError("the model has no activation modules to track; pass layers=[...]")
    from .train.device import model_device

    calls: list[tuple[str, torch.Tensor]] = []
    hooks = [modules[n].register_forward_hook(lambda m, a, o, n=n: calls.append((n, o.detach().cpu())))
             for n in layers]
    x = torch.as_tensor(inputs)
    try:
        with inspecting(model):
            model(x.to(model_device(model)))
    finally:
        for h in hooks:
            h.remove()
    counts = {n: sum(1 for c, _ in calls if c == n) for n in layers}
    seen: dict[str, int] = {}
    out = {"input": x.reshape(x.shape[0], -1).double().numpy()}
    for name, value in calls:
        seen[name] = seen.get(name, 0) + 1
        key = f"{name}#{seen[name]}" if counts[name] > 1 else name
        out[key] = value.reshape(value.shape[0], -1).double().numpy()
    return out


def betti_by_layer(
    model: nn.Module,
    inputs,
    labels,
    *,
    max_dim: int = 1,
    method: str = "knn-geodesic",
    k: int = 10,
    quantile: float = 0.1,
    layers: Sequence[str] | None = None,
) -> dict[str, dict[str, list[int]]]:
    """Betti numbers of each class's point cloud after every layer (Kochar et al. 2021;
    Naitzat et al. 2020): ``{layer: {class: [b0, ..., b_max_dim]}}``, layers in forward order,
    starting with ``"input"``. The default ``"knn-geodesic"`` measure (1 hop on the k-NN graph)
    needs no scale, so layers whose coordinates grow or shrink are measured alike."""
    from .topology import betti_numbers

    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != len(inputs):
        raise TopopruneError(f"{len(inputs)} inputs but {y.shape[0]} labels; give one label per input")
    reps = layer_representations(model, inputs, layers)
    result: dict[str, dict[str, list[int]]] = {}
    for name, z in reps.items():
        result[name] = {}
        for label in np.unique(y):
            pts = z[y == label]
            try:
                result[name][str(int(label))] = betti_numbers(pts, max_dim, method=method, k=min(k, len(pts) - 1),
                                                              quantile=quantile)
            except ValueError as exc:
                raise TopopruneError(f"Betti numbers of class {label} after {name}: {exc}") from None
    return result
