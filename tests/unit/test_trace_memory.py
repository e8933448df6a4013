"""The memory guard on dependency tracing: past its limit, tracing stops with one
``TopopruneError`` line (the watchdog raises in the tracing thread), the model is left without the
tracer's hooks, and nothing is left running. Every limit here is tiny (10-20 MB) and every traced
model small (about 100 MB of tracing in all), so a guard that failed could not hurt the machine.

The Swin-like model: patch embedding, windowed attention with relative position biases, a
shifted-window block with its attention mask (``torch.roll``), patch merging (four strided slices
concatenated, LayerNorm, Linear), a second stage, mean pooling and a linear head.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.pruning.surgery import Surgeon
from topoprune.pruning.trace_memory import ENV, guard_memory, resident_bytes, trace_memory_limit

pytestmark = pytest.mark.skipif(resident_bytes() is None, reason="the process's memory cannot be read here")

LOW = "0.01"  # GB: far below what tracing the Swin below on 32 images takes (about 100 MB)

def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


class WindowAttention(nn.Module):
    def __init__(self, dim, ws, heads):
        super().__init__()
        self.num_heads, self.head_dim, self.ws = heads, dim // heads, ws
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.randn((2 * ws - 1) ** 2, heads) * 0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("index", rel[..., 0] * (2 * ws - 1) + rel[..., 1], persistent=False)

    def forward(self, x, mask=None):
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
        attn = attn + self.bias_table[self.index.reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(-1, self.num_heads, n, n)
        out = attn.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, -1))


class SwinBlock(nn.Module):
    def __init__(self, dim, res, heads, ws, shift):
        super().__init__()
        self.res, self.ws, self.shift = res, ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        mask = None
        if shift:
            img = torch.zeros(1, res, res, 1)
            cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
            label = 0
            for hs in cuts:
                for wsl in cuts:
                    img[:, hs, wsl, :] = label
                    label += 1
            ids = window_partition(img, ws).squeeze(-1)
            diff = ids[:, None, :] - ids[:, :, None]
            mask = diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        b, l, c = x.shape
        h = self.norm1(x).view(b, self.res, self.res, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), (1, 2))
        h = window_reverse(self.attn(window_partition(h, self.ws), self.mask), self.ws, self.res, self.res)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), (1, 2))
        x = x + h.reshape(b, l, c)
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class PatchMerging(nn.Module):
    def __init__(self, dim, res):
        super().__init__()
        self.res = res
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        b, l, c = x.shape
        x = x.view(b, self.res, self.res, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class Swin(nn.Module):
    def __init__(self, image=32, dim=16, ws=4, heads=2, classes=10):
        super().__init__()
        res = image // 2
        self.patch_embed = nn.Conv2d(3, dim, 2, 2)
        self.stage1 = nn.Sequential(SwinBlock(dim, res, heads, ws, 0), SwinBlock(dim, res, heads, ws, ws // 2))
        self.merge = PatchMerging(dim, res)
        self.stage2 = nn.Sequential(SwinBlock(2 * dim, res // 2, 2 * heads, ws, 0),
                                    SwinBlock(2 * dim, res // 2, 2 * heads, ws, ws // 2))
        self.norm = nn.LayerNorm(2 * dim)
        self.head = nn.Linear(2 * dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.stage2(self.merge(self.stage1(x)))
        return self.head(self.norm(x).mean(1))


def swin() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return Swin(image=64).eval(), torch.randn(32, 3, 64, 64)


def _watchdogs() -> list[threading.Thread]:
    time.sleep(0.05)
    return [t for t in threading.enumerate() if t.name == "topoprune-trace-memory" and t.is_alive()]


def _in_a_fresh_process(request) -> bool:
    """Run this test again in a fresh interpreter and report its outcome (True: done there).

    The guard measures how much the process's resident memory grows. A long-lived test process
    holds memory it freed earlier, and glibc serves new allocations from it (its mmap threshold
    rises after large frees) without growing the resident size, so in the middle of a suite a
    tiny limit may never be reached. A fresh process measures what these tests mean to."""
    if os.environ.get("TOPOPRUNE_FRESH_PROCESS"):
        return False
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"{__file__}::{request.node.name}"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TOPOPRUNE_FRESH_PROCESS": "1"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return True


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_tracing_a_swin_past_a_low_limit_fails_in_one_line(monkeypatch, request):
    if _in_a_fresh_process(request):
        return
    model, x = swin()
    with torch.no_grad():
        before = model(x)
    monkeypatch.setenv(ENV, LOW)
    with pytest.raises(TopopruneError) as err:
        tp.prune_units(model, x, sparsity=0.5)
    text = str(err.value)
    assert len(text.splitlines()) == 1
    assert text.startswith("tracing the model's channel dependencies stopped: it used more than 0.01 GB")
    assert ENV in text
    assert not _watchdogs()
    with torch.no_grad():
        assert torch.equal(model(x), before)  # the original is untouched


@pytest.mark.slow  # a fresh interpreter each: about 5 s
def test_an_interrupted_in_place_trace_leaves_no_hooks_and_a_working_model(monkeypatch, request):
    if _in_a_fresh_process(request):
        return
    model, x = swin()
    with torch.no_grad():
        before = model(x)
    assert _hooks(model) == 0
    monkeypatch.setenv(ENV, LOW)
    with pytest.raises(TopopruneError, match="stopped"):
        tp.prune_units(model, x, sparsity=0.5, inplace=True)
    assert _hooks(model) == 0 and not model.training
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.slow  # a fresh interpreter each: about 5 s
def test_the_guard_stops_a_trace_in_another_thread_and_leaves_the_main_thread_alone(request):
    if _in_a_fresh_process(request):
        return
    model, x = swin()
    caught: list[BaseException] = []

    def work() -> None:
        try:
            Surgeon(model, x, memory_limit_gb=float(LOW))
        except BaseException as exc:  # noqa: BLE001 - the test looks at what arrived
            caught.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert [type(e) for e in caught] == [TopopruneError]
    assert not _watchdogs()
    time.sleep(0.05)  # nothing arrives here afterwards


def test_a_trace_within_the_limit_is_untouched(monkeypatch):
    model, x = swin()
    monkeypatch.setenv(ENV, "2")
    surgeon = Surgeon(model, x[:2])
    assert surgeon.graph is not None and _hooks(model) == 0
    assert not _watchdogs()


def test_guard_memory_stops_a_growing_python_loop(request):
    if _in_a_fresh_process(request):
        return
    kept: list[bytes] = []

    def grow() -> int:
        for i in range(200):  # at most 200 MB if the guard failed
            kept.append(bytes([i % 255 + 1]) * (1 << 20))  # written, so resident
            time.sleep(0.001)
        return len(kept)

    with pytest.raises(TopopruneError, match=r"^allocating stopped: it used more than 0\.0195 GB"):
        guard_memory(grow, limit_gb=0.0195, what="allocating")
    assert 10 <= len(kept) < 200
    kept.clear()
    assert guard_memory(lambda: 7, limit_gb=0.0195) == 7
    with pytest.raises(ValueError, match="its own"):  # the trace's own errors pass through unchanged
        guard_memory(lambda: (_ for _ in ()).throw(ValueError("its own")), limit_gb=1)
    assert not _watchdogs()


@pytest.mark.parametrize("value", ["lots", "0", "-1", "inf", "nan"])
def test_a_bad_limit_is_refused_in_one_line(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(TopopruneError, match=f"^{ENV}: bad value '{value}'; allowed: "):
        trace_memory_limit()


def test_limit_sources(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    default = trace_memory_limit()
    assert default is None or default > 0  # 80 % of the available memory
    monkeypatch.setenv(ENV, "1.5")
    assert trace_memory_limit() == int(1.5 * 1024 ** 3)
    assert trace_memory_limit(0.5) == 1024 ** 3 // 2  # the parameter wins
    monkeypatch.setenv(ENV, "off")
    assert trace_memory_limit() is None
