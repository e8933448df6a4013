"""More architectures topoprune did not write, each through what a user does with it: prune
(structured L1, sparsity 0.5), run, compare with the masked original, save with a factory and
reload in one call, export to ONNX.

- ``shufflenet``: ShuffleNetV2 units (channel split, depthwise conv, concatenation, channel
  shuffle by view + transpose);
- ``timm_vit``: timm's ``Attention`` (fused ``qkv``, reshapes sized from the input's width): its
  heads stay, its MLP is pruned;
- ``torch_encoder``: ``nn.TransformerEncoder`` with ``nn.MultiheadAttention``: heads and the
  embedding width stay, the feed-forward layers are pruned;
- ``conv1d_mlp``: Hugging Face's ``Conv1D`` (weight stored ``(in, out)``) in a residual MLP;
- ``tied_lm``: an output layer sharing its weight with the input embedding.

``KNOWN_LIMITS`` names the architectures that ``prune_units`` cannot prune, with the one-line
message that says why; the test then checks that this is still the message (an architecture that
starts to work fails the test, so the entry is removed). None at present.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import topoprune as tp
from topoprune.errors import TopopruneError

from . import architectures as arch
from .test_architectures import Case, masked_original, run


@dataclass(frozen=True)
class Reach:
    build: Callable[[], torch.nn.Module]
    example: Callable[[], torch.Tensor]
    out_shape: tuple[int, ...]
    pruned: dict[str, tuple[int, int]]  # layer -> (units before, after)
    kept: dict[str, str]  # layer left alone -> a phrase of its note


def _tokens() -> torch.Tensor:
    return torch.randn(2, 8, 12, generator=torch.Generator().manual_seed(1))


REACH = {
    "shufflenet": Reach(arch.shufflenet, lambda: arch._images(2, 1), (2, 10),
                        {"units.0.branch.0.0": (8, 4), "units.1.branch.0.0": (8, 4), "last.0": (32, 16)},
                        {"units.0.branch.3.0": "coupled with stem.0"}),
    "timm_vit": Reach(arch.timm_vit, lambda: arch._images(2, 1), (2, 10),
                      {"blocks.0.mlp.fc1": (64, 32), "blocks.1.mlp.fc1": (64, 32)},
                      {"blocks.0.attn.qkv": "keeps its heads", "blocks.1.attn.qkv": "keeps its heads"}),
    "torch_encoder": Reach(arch.torch_encoder, _tokens, (2, 10),
                           {"encoder.layers.0.linear1": (32, 16), "encoder.layers.1.linear1": (32, 16)},
                           {"encoder.layers.0.self_attn.out_proj": "keeps its heads",
                            "encoder.layers.1.linear2": "embedding width of nn.MultiheadAttention"}),
    "conv1d_mlp": Reach(arch.conv1d_mlp, _tokens, (2, 10), {"c_fc": (64, 32)}, {"c_proj": "coupled with embed"}),
    "tied_lm": Reach(arch.tied_lm, lambda: torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(1)),
                     (2, 8, 100), {"fc1": (64, 32)}, {"fc2": "shared with the embedding 'wte'"}),
}
NEEDS_TRANSFORMERS = {"conv1d_mlp"}
KNOWN_LIMITS: dict[str, str] = {}  # architecture -> the start of prune_units' one-line refusal


@pytest.mark.parametrize("name", list(REACH))
def test_prune_run_reload_and_export(name, tmp_path):
    if name in NEEDS_TRANSFORMERS:
        pytest.importorskip("transformers")
    reach = REACH[name]
    model, x = reach.build(), reach.example()
    if name in KNOWN_LIMITS:
        with pytest.raises(TopopruneError) as err:
            tp.prune_units(model, x, sparsity=0.5)
        assert str(err.value).startswith(KNOWN_LIMITS[name]) and len(str(err.value).splitlines()) == 1
        return
    before = run(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm_vit warns that its heads stay (tests/e2e/test_attention_heads.py)
        pruned, info = tp.prune_units(model, x, method="l1", sparsity=0.5)
    pruned.eval()
    records = {r.name: r for r in info.layers}
    assert {n: (records[n].before, records[n].after) for n in reach.pruned} == reach.pruned
    for layer, phrase in reach.kept.items():
        assert records[layer].after == records[layer].before and phrase in records[layer].note, records[layer]
    out = run(pruned, x)
    assert out.shape == reach.out_shape and torch.isfinite(out).all()
    assert info.params[1] < info.params[0]
    # exact: the pruned model computes the original with the removed units' readers zeroed
    masked = masked_original(Case(model, {}, before, x, pruned, info))
    assert not torch.equal(run(masked, x), before), "the mask changed nothing: a test that cannot fail"
    torch.testing.assert_close(out, run(masked, x), atol=1e-5, rtol=1e-4)
    # save with a factory: load_model rebuilds it alone
    folder = tp.save_pruned((pruned, info), tmp_path / name, factory=f"tests.e2e.architectures:{name}")
    loaded = tp.load_model(folder)
    assert torch.equal(run(loaded, x), out)
    if name == "tied_lm":
        assert loaded.lm_head.weight is loaded.wte.weight and pruned.lm_head.weight is pruned.wte.weight
    exported = tp.export_model(loaded, x, tmp_path / f"{name}.onnx", format="onnx")
    assert exported.ok and exported.max_abs_diff <= 1e-5


def test_channels_through_a_shuffle_are_left_alone_even_when_targeted():
    # every conv named, the stem too: the stem's channels reach the concatenation and shuffle,
    # whose index mapping torch-pruning does not model one to one; they stay, with the reason
    model, x = arch.shufflenet(), arch._images(2, 1)
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    pruned, info = tp.prune_units(model, x, sparsity=0.5, layers=convs)
    records = {r.name: r for r in info.layers}
    for name in ("stem.0", "units.0.branch.3.0", "units.1.branch.3.0"):
        assert records[name].after == records[name].before
        assert "through a concatenation or channel shuffle" in records[name].note
    assert (records["units.0.branch.0.0"].before, records["units.0.branch.0.0"].after) == (8, 4)
    assert run(pruned.eval(), x).shape == (2, 10)
