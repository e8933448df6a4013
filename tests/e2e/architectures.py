"""Architectures topoprune did not write, built small so that pruning them takes a second.

Shared by ``tests/e2e/test_architectures.py`` and ``benchmarks/own_models.py`` (one definition).
Each :class:`Arch` builds a model with random weights (BatchNorm statistics and affine parameters
randomized too, so equivalence checks see BatchNorm), its example inputs and a larger data sample
of the same structure (for Betti pruning). Everything is seeded: two calls give the same model.

- ``resnet18b``: ResNet-18's layout (stem, 4 stages of 2 basic blocks) at widths 8-64, with
  option-B shortcuts (1x1 conv + BatchNorm) where the shape changes;
- ``mobilenetv2``: MobileNetV2 inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear
  projection), with and without the residual addition;
- ``densenet``: two DenseNet layers that concatenate their output to their input, and a
  transition (1x1 conv, average pool);
- ``se_resnet``: basic blocks with a squeeze-excitation gate (pool, 1x1 conv, ReLU, 1x1 conv,
  sigmoid) multiplying the channels;
- ``regnet``: RegNetY bottlenecks: 1x1 conv, grouped 3x3 conv (group width 8), squeeze-excitation,
  1x1 conv, residual addition;
- ``bert``, ``vit``, ``gpt2``: tiny Hugging Face models built from configs (no download).

:class:`HeadFirst` registers its classifier before its body, so "the last registered layer is the
classifier" is wrong for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Arch", "ARCHS", "CNNS", "TRANSFORMERS", "HeadFirst", "logits", "randomize_bn", "get"]

NUM_CLASSES = 10
IMAGE = (3, 16, 16)
# Hugging Face's default (0.02) gives logits of about 0.01, against which a 1e-5 tolerance is
# loose; 0.2 gives logits of order 1.
INIT_RANGE = 0.2


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, LayerNorm affine parameters too
    (fresh ones are the identity, so a check would not see them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def scale_preserving_init(model: nn.Module) -> nn.Module:
    """He-normal conv and linear weights (fan in): activations keep their scale through depth, so
    the output depends measurably on every layer. PyTorch's default init shrinks them layer after
    layer, and a deep random net's output then hardly sees a wrong BatchNorm entry early on."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.normal_(m.bias, std=0.1)
    return model


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """ResNet basic block; option B: a 1x1 conv + BN shortcut when stride or width changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1, se: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SqueezeExcite(cout) if se else None
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return torch.relu(out + self.shortcut(x))


class SqueezeExcite(nn.Module):
    """Squeeze-excitation (Hu et al. 2018): a sigmoid gate per channel, from pooled features."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, max(channels // reduction, 2), 1)
        self.fc2 = nn.Conv2d(max(channels // reduction, 2), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class ResNet(nn.Module):
    def __init__(self, widths=(8, 16, 32, 64), blocks=(2, 2, 2, 2), se: bool = False,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1, se=se))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(torch.relu(self.bn(self.stem(x))))
        return self.fc(x.mean((2, 3)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when the
    shape stays."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = conv_bn(cin, hidden, 1)
        self.depthwise = conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.project = conv_bn(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.relu6(self.expand(x))
        out = nn.functional.relu6(self.depthwise(out))
        out = self.project(out)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 2)
        self.blocks = nn.Sequential(
            InvertedResidual(8, 8, 1),     # residual
            InvertedResidual(8, 16, 2),    # no residual
            InvertedResidual(16, 16, 1),   # residual
        )
        self.last = conv_bn(16, 32, 1)
        self.classifier = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu6(self.stem(x))
        x = nn.functional.relu6(self.last(self.blocks(x)))
        return self.classifier(x.mean((2, 3)))


class DenseLayer(nn.Module):
    """BN-ReLU-conv(1x1)-BN-ReLU-conv(3x3), its output concatenated to its input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class DenseNet(nn.Module):
    def __init__(self, growth: int = 8, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.block1 = nn.Sequential(DenseLayer(16, growth), DenseLayer(16 + growth, growth))
        c = 16 + 2 * growth
        self.transition = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False),
                                        nn.AvgPool2d(2))
        self.block2 = nn.Sequential(DenseLayer(c // 2, growth), DenseLayer(c // 2 + growth, growth))
        c = c // 2 + 2 * growth
        self.norm = nn.BatchNorm2d(c)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.transition(self.block1(self.stem(x))))
        return self.classifier(torch.relu(self.norm(x)).mean((2, 3)))


class RegNetBottleneck(nn.Module):
    """RegNetY's block (torchvision ``regnet_y_400mf`` style): 1x1 conv, grouped 3x3 conv of
    group width ``group_width``, squeeze-excitation, 1x1 conv, residual addition."""

    def __init__(self, channels: int, mid: int, group_width: int = 8) -> None:
        super().__init__()
        self.a = conv_bn(channels, mid, 1)
        self.b = conv_bn(mid, mid, 3, groups=mid // group_width)
        self.se = SqueezeExcite(mid)
        self.c = conv_bn(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.b(torch.relu(self.a(x))))
        return torch.relu(x + self.c(self.se(out)))


class RegNet(nn.Module):
    """A stem and two RegNetY bottlenecks (4 and 8 groups of 8 channels), a linear head."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = conv_bn(3, 32, 3)
        self.block1 = RegNetBottleneck(32, 32)
        self.block2 = RegNetBottleneck(32, 64)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(torch.relu(self.stem(x))))
        return self.fc(x.mean((2, 3)))


class HeadFirst(nn.Module):
    """A CNN whose classifier is registered before its body (and its stem): registration order
    says nothing about which layer is the head."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.head = nn.Linear(32, num_classes)
        self.body = nn.Sequential(
            nn.Conv2d(16, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.stem = nn.Conv2d(3, 16, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(torch.relu(self.stem(x)))
        return self.head(x.mean((2, 3)))



class TimmAttention(nn.Module):
    """timm's ``Attention`` layout: one fused ``qkv`` Linear, a ``proj`` Linear, ``num_heads`` and
    ``head_dim`` attributes. ``sizes`` says where the forward takes its widths from:

    - ``"input"``: the input's channel count ``C`` (``vit_small_patch16_224``, ``deit_tiny`` in
      older timm: ``reshape(B, N, 3, self.num_heads, C // self.num_heads)``);
    - ``"head_dim"``: ``self.head_dim`` for q/k/v, but ``reshape(B, N, C)`` at the end (newer timm);
    - ``"attributes"``: ``self.head_dim`` and ``-1``, so it follows a changed head count.
    """

    def __init__(self, dim: int, num_heads: int, sizes: str = "input") -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.sizes = sizes
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        d = c // self.num_heads if self.sizes == "input" else self.head_dim
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1 if self.sizes == "attributes" else c))


class TimmBlock(nn.Module):
    """A pre-norm transformer block as timm writes it: ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, sizes: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TimmAttention(dim, heads, sizes)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, 2 * dim)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TimmViT(nn.Module):
    """A tiny ViT in timm's layout: conv patch embedding, class token, position table, blocks,
    final norm, linear head on the class token."""

    def __init__(self, sizes: str = "input", dim: int = 32, heads: int = 4, depth: int = 2,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        patches = (IMAGE[1] // 4) * (IMAGE[2] // 4)
        self.patch_embed = nn.Conv2d(IMAGE[0], dim, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, patches + 1, dim) * 0.5)
        self.blocks = nn.Sequential(*[TimmBlock(dim, heads, sizes) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def timm_vit(sizes: str = "input") -> nn.Module:
    """:class:`TimmViT`, seeded as every model here (a factory for ``save_pruned``)."""
    return _seeded(lambda: TimmViT(sizes))()


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's shuffle: ``view`` into groups, swap the two channel axes, flatten back."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's basic unit: split the channels in two, transform one half (1x1, depthwise
    3x3, 1x1), concatenate, shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(conv_bn(half, half, 1), nn.ReLU(), conv_bn(half, half, 3, groups=half),
                                    conv_bn(half, half, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, change = x.chunk(2, 1)
        return channel_shuffle(torch.cat([keep, self.branch(change)], 1), 2)


class ShuffleNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = conv_bn(IMAGE[0], 16, 3, 2)
        self.units = nn.Sequential(ShuffleUnit(16), ShuffleUnit(16))
        self.last = conv_bn(16, 32, 1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.last(self.units(torch.relu(self.stem(x)))))
        return self.fc(x.mean((2, 3)))


class TorchEncoder(nn.Module):
    """``nn.TransformerEncoder`` (``nn.MultiheadAttention`` inside) on token features: a linear
    embedding, two encoder layers, a linear head on the mean token."""

    def __init__(self, features: int = 12, dim: int = 16, heads: int = 4, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.embed = nn.Linear(features, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


class Conv1DMLP(nn.Module):
    """A GPT-2-style MLP on tokens with Hugging Face's ``Conv1D`` (weight stored ``(in, out)``)
    between a linear embedding and a linear head."""

    def __init__(self, features: int = 12, dim: int = 16, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        from transformers.pytorch_utils import Conv1D

        self.embed = nn.Linear(features, dim)
        self.c_fc = Conv1D(4 * dim, dim)  # nf (outputs), nx (inputs)
        self.c_proj = Conv1D(dim, 4 * dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        x = x + self.c_proj(nn.functional.gelu(self.c_fc(x)))
        return self.head(x.mean(1))


class TiedLM(nn.Module):
    """A token model whose output layer shares its weight with the input embedding (tied heads,
    as GPT-2's ``lm_head`` and ``wte``), with an MLP between them."""

    def __init__(self, vocab: int = 100, dim: int = 16) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids)
        x = x + self.fc2(torch.relu(self.fc1(x)))
        return self.lm_head(x)


def shufflenet() -> nn.Module:
    return _seeded(ShuffleNet)()


def torch_encoder() -> nn.Module:
    return _seeded(TorchEncoder, he_init=False)()


def conv1d_mlp() -> nn.Module:
    return _seeded(Conv1DMLP, he_init=False)()


def tied_lm() -> nn.Module:
    return _seeded(TiedLM, he_init=False)()

def logits(out: object) -> torch.Tensor:
    """The tensor a model's output stands for: itself, or a Hugging Face output's ``logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    raise TypeError(f"no logits in a {type(out).__name__}")


def _images(n: int, seed: int) -> dict | torch.Tensor:
    return torch.randn(n, *IMAGE, generator=torch.Generator().manual_seed(seed))


def _tokens(n: int, seed: int, *, mask: bool) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (n, 8), generator=g)
    if not mask:
        return {"input_ids": ids}
    attention = torch.ones(n, 8, dtype=torch.long)
    attention[::2, 6:] = 0  # every other sequence ends in two padding tokens
    return {"input_ids": ids, "attention_mask": attention}


def _seeded(build: Callable[[], nn.Module], *, he_init: bool = True) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        model = build()
        return randomize_bn(scale_preserving_init(model) if he_init else model).eval()
    return make


def _bert() -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, num_labels=3, initializer_range=INIT_RANGE))


def _vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, num_labels=5, initializer_range=INIT_RANGE))


def _gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                      bos_token_id=0, eos_token_id=0, initializer_range=INIT_RANGE))


@dataclass(frozen=True)
class Arch:
    """One architecture: how to build it, its example inputs, a data sample of the same
    structure, and its output shape for the example inputs."""

    name: str
    build: Callable[[], nn.Module]
    example: Callable[[], object]
    sample: Callable[[], object]
    out_shape: tuple[int, ...]
    transformer: bool = False  # a Hugging Face model: needs the transformers package


CNNS = (
    Arch("resnet18b", _seeded(ResNet), lambda: _images(2, 1), lambda: _images(32, 2), (2, NUM_CLASSES)),
    Arch("mobilenetv2", _seeded(MobileNetV2), lambda: _images(2, 1), lambda: _images(32, 2), (2, NUM_CLASSES)),
    Arch("densenet", _seeded(DenseNet), lambda: _images(2, 1), lambda: _images(32, 2), (2, NUM_CLASSES)),
    Arch("se_resnet", _seeded(lambda: ResNet((8, 16), (1, 1), se=True)), lambda: _images(2, 1),
         lambda: _images(32, 2), (2, NUM_CLASSES)),
    Arch("regnet", _seeded(RegNet), lambda: _images(2, 1), lambda: _images(32, 2), (2, NUM_CLASSES)),
)
TRANSFORMERS = (
    Arch("bert", _seeded(_bert, he_init=False), lambda: _tokens(2, 1, mask=True), lambda: _tokens(8, 2, mask=True), (2, 3), True),
    Arch("vit", _seeded(_vit, he_init=False), lambda: {"pixel_values": _images(2, 1)}, lambda: {"pixel_values": _images(8, 2)},
         (2, 5), True),
    Arch("gpt2", _seeded(_gpt2, he_init=False), lambda: _tokens(2, 1, mask=False), lambda: _tokens(8, 2, mask=False),
         (2, 8, 100), True),
)
ARCHS = CNNS + TRANSFORMERS


def get(name: str) -> Arch:
    return next(a for a in ARCHS if a.name == name)
