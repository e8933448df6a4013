"""Multi-head attention blocks of any model, so heads can be pruned as whole units.

An attention module is recognised by an integer head count (``num_attention_heads``,
``num_heads``, ``n_head`` or ``n_heads``) and its query/key/value projections among its direct
children: three separate layers (``query``/``key``/``value``, ``q_proj``/``k_proj``/``v_proj``,
``q``/``k``/``v``, ``q_lin``/``k_lin``/``v_lin``) or one fused layer (``c_attn``, ``qkv``,
``query_key_value``, ``Wqkv``) whose output is q, k and v one after the other. The head size
comes from ``head_dim``/``attention_head_size``/``head_size``, else projection width / heads.

This covers Hugging Face BERT, RoBERTa, ViT, DeiT, GPT-2 and DistilBERT (their forward infers
the head count with ``-1`` or reads the updated attributes). An attention whose forward reshapes
to the *input's* width (timm's ``Attention``: ``x.transpose(1, 2).reshape(B, N, C)``) cannot lose
heads: :mod:`topoprune.pruning.head_trial` finds it by removing a head from a throwaway copy, and
its projections are left alone with a note. Grouped-query attention (k/v narrower than q) is not
handled: its projections are left alone, and the pruning record says so. ``nn.MultiheadAttention``
keeps its heads (``num_heads * head_dim`` must equal ``embed_dim``, its input and output width),
and the channels of its embedding width stay too; its packed ``in_proj_weight`` is a layer for
masks and analyses (:mod:`topoprune.models.layers`). A Hugging Face
model's ``config.num_attention_heads`` is shared by all layers and is not changed: the modules
carry the per-layer counts (``save_pretrained`` of a head-pruned model does not round-trip).

Removing heads keeps q, k, v (and the output projection's inputs) consistent because the removed
features are whole heads; :func:`sync_head_counts` then writes the new head count (and the
derived widths ``all_head_size``/``split_size``) into the module, which is what torch-pruning's
``num_heads`` handling does for its users by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .layers import is_weighted_layer, out_units

__all__ = ["AttentionBlock", "find_attention", "sync_head_counts", "HEAD_ATTRS"]

HEAD_ATTRS = ("num_attention_heads", "num_heads", "n_head", "n_heads")
_DIM_ATTRS = ("attention_head_size", "head_dim", "head_size")
_SEPARATE = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"), ("q", "k", "v"),
             ("q_lin", "k_lin", "v_lin"), ("to_q", "to_k", "to_v"))
_FUSED = ("c_attn", "qkv", "query_key_value", "Wqkv", "in_proj")
_WIDTH_ATTRS = ("all_head_size", "split_size", "inner_dim")  # = heads * head_dim, kept in step


@dataclass(frozen=True)
class AttentionBlock:
    """One attention module: its head count and size, and the q/k/v projections (qualified names).

    ``fused``: one layer gives q, k and v as three equal segments (GPT-2's ``c_attn``)."""

    name: str
    heads_attr: str
    heads: int
    head_dim: int
    projections: tuple[str, ...]
    fused: bool

    @property
    def parts(self) -> int:
        """Segments of each projection's output: 3 for a fused q/k/v layer, else 1."""
        return 3 if self.fused else 1


def _children(module: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in module.named_children() if is_weighted_layer(m)}


def _block(name: str, module: nn.Module) -> AttentionBlock | None:
    attr = next((a for a in HEAD_ATTRS if isinstance(getattr(module, a, None), int)
                 and not isinstance(getattr(module, a), bool)), None)
    if attr is None or getattr(module, attr) < 1:
        return None
    heads = getattr(module, attr)
    kids = _children(module)
    prefix = f"{name}." if name else ""
    dim = next((getattr(module, a) for a in _DIM_ATTRS if isinstance(getattr(module, a, None), int)), None)
    for triple in _SEPARATE:
        if all(t in kids for t in triple):
            widths = {out_units(kids[t]) for t in triple}
            if len(widths) != 1:
                return None  # grouped-query attention: k/v narrower than q
            width = widths.pop()
            d = dim or width // heads
            if d < 1 or d * heads != width:
                return None
            return AttentionBlock(name, attr, heads, d, tuple(prefix + t for t in triple), False)
    for fused in _FUSED:
        if fused in kids:
            width = out_units(kids[fused])
            d = dim or width // (3 * heads)
            if d < 1 or 3 * d * heads != width:
                return None
            return AttentionBlock(name, attr, heads, d, (prefix + fused,), True)
    return None


def find_attention(model: nn.Module) -> list[AttentionBlock]:
    """Every recognised multi-head attention block of ``model``, in module order."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            continue
        block = _block(name, module)
        if block is not None:
            found.append(block)
    return found


def sync_head_counts(model: nn.Module, blocks: list[AttentionBlock]) -> dict[str, int]:
    """After heads were removed, write each block's new head count (projection width / head
    size) and derived widths into its module; returns ``{block name: heads}``."""
    modules = dict(model.named_modules())
    counts = {}
    for b in blocks:
        module = modules[b.name]
        width = out_units(modules[b.projections[0]]) // b.parts
        heads = width // b.head_dim
        old = getattr(module, b.heads_attr)
        for attr in _WIDTH_ATTRS:
            if getattr(module, attr, None) == old * b.head_dim:
                setattr(module, attr, heads * b.head_dim)
        setattr(module, b.heads_attr, heads)
        counts[b.name] = heads
    return counts
