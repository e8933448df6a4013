"""Synthetic binary datasets with many holes and known Betti numbers.

In the spirit of Naitzat, Zhitnikov and Lim (2020), "Topology of deep neural networks": two
classes that are topologically entangled, so a classifier has to change the topology of the
data to separate them. Each generator places ``n`` copies of a small motif on a grid and samples
every piece evenly (jittered lattices and Fibonacci spheres rather than uniform noise), so the
Vietoris-Rips complex at the set's ``scale`` has exactly the Betti numbers the set declares:

``rings``
    3-D. Each motif is two interlocked circles (a Hopf link) in random orientation, one per
    class. Per class: ``b0 = b1 = n``.
``disks``
    2-D. Each motif is an annulus (class 0) with a disk inside its hole (class 1), sampled
    with equal numbers of points.
    Class 0: ``b0 = b1 = n``; class 1: ``b0 = n, b1 = 0``.
``spheres``
    3-D. Each motif is a spherical shell (class 0) around a ball (class 1), about as many
    points each.
    Class 0: ``b0 = b2 = n``; class 1: ``b0 = n``.

The default sizes give Betti numbers beyond 150 in total, as in Kochar et al.'s sets.
:func:`synthetic_splits` turns a set into seeded train/val/test :class:`DataSplits` for
:func:`topoprune.train.train`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TopopruneError, unknown_name

__all__ = ["SyntheticSet", "make_synthetic", "list_synthetic", "synthetic_splits"]


@dataclass
class SyntheticSet:
    """Points ``x`` ``(N, d)`` float32, labels ``y`` ``(N,)`` in {0, 1}, the Betti numbers
    ``[b0, b1, b2]`` of each class, and the Rips ``scale`` at which a sample shows them."""

    name: str
    x: np.ndarray
    y: np.ndarray
    betti: dict[int, list[int]]
    scale: float

    @property
    def total_betti(self) -> int:
        """Sum of every Betti number of both classes (the paper's measure of complexity)."""
        return int(sum(sum(b) for b in self.betti.values()))

    def points(self, label: int) -> np.ndarray:
        return self.x[self.y == label]


def _grid_centres(n: int, dim: int, spacing: float) -> np.ndarray:
    side = int(np.ceil(n ** (1 / dim) - 1e-9))
    axes = np.meshgrid(*[np.arange(side) * spacing] * dim, indexing="ij")
    centres = np.stack([a.reshape(-1) for a in axes], axis=1)[:n]
    return centres - centres.mean(axis=0)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _circle(m: int, rng: np.random.Generator, jitter: float) -> np.ndarray:
    t = (np.arange(m) + rng.uniform(-jitter, jitter, m)) * 2 * np.pi / m
    return np.stack([np.cos(t), np.sin(t), np.zeros(m)], axis=1)


def _lattice_in(radius_in: float, radius_out: float, dim: int, h: float,
                rng: np.random.Generator) -> np.ndarray:
    """A jittered square lattice of spacing ``h`` restricted to ``radius_in <= |p| <= radius_out``."""
    k = int(np.ceil(radius_out / h))
    axes = np.meshgrid(*[np.arange(-k, k + 1) * h] * dim, indexing="ij")
    p = np.stack([a.reshape(-1) for a in axes], axis=1)
    r = np.linalg.norm(p, axis=1)
    p = p[(r >= radius_in) & (r <= radius_out)]
    return p + rng.uniform(-0.1 * h, 0.1 * h, p.shape)


def _fibonacci_sphere(m: int, rng: np.random.Generator) -> np.ndarray:
    i = np.arange(m) + 0.5
    phi = np.arccos(1 - 2 * i / m)
    theta = np.pi * (1 + 5 ** 0.5) * i + rng.uniform(0, 2 * np.pi)
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def _rings(n: int, density: int, rng: np.random.Generator) -> SyntheticSet:
    m = max(12, density)  # points per circle of radius 1: spacing 2 pi / m
    a_all, b_all = [], []
    for c in _grid_centres(n, 3, 5.0):
        rot = _random_rotation(rng)
        a = _circle(m, rng, 0.2)
        b = _circle(m, rng, 0.2)[:, [0, 2, 1]] + np.array([1.0, 0.0, 0.0])  # xz-plane, linked
        a_all.append((a - [0.5, 0, 0]) @ rot.T + c)
        b_all.append((b - [0.5, 0, 0]) @ rot.T + c)
    x = np.concatenate(a_all + b_all)
    y = np.repeat([0, 1], n * m)
    return SyntheticSet("rings", x, y, {0: [n, n, 0], 1: [n, n, 0]}, scale=3.0 * 2 * np.pi / m)


def _disks(n: int, density: int, rng: np.random.Generator) -> SyntheticSet:
    h = 1.0 / max(6, density)  # lattice spacing of the annulus 0.6 <= r <= 1; the disk r <= 0.4
    a_all, b_all = [], []  # has a quarter of its area, so half the spacing: balanced classes
    for c in _grid_centres(n, 2, 3.0):
        a_all.append(_lattice_in(0.6, 1.0, 2, h, rng) + c)
        b_all.append(_lattice_in(0.0, 0.4, 2, h / 2, rng) + c)
    x = np.concatenate(a_all + b_all)
    y = np.concatenate([np.zeros(sum(map(len, a_all)), int), np.ones(sum(map(len, b_all)), int)])
    return SyntheticSet("disks", x, y, {0: [n, n, 0], 1: [n, 0, 0]}, scale=2.0 * h)


def _spheres(n: int, density: int, rng: np.random.Generator) -> SyntheticSet:
    m = max(60, 8 * density)  # points per unit shell
    h = (4 / 3 * np.pi * 0.4 ** 3 / m) ** (1 / 3)  # a lattice of about m points in the ball r <= 0.4
    a_all, b_all = [], []
    for c in _grid_centres(n, 3, 3.0):
        a_all.append(_fibonacci_sphere(m, rng) + c)
        b_all.append(_lattice_in(0.0, 0.4, 3, h, rng) + c)
    x = np.concatenate(a_all + b_all)
    y = np.concatenate([np.zeros(sum(map(len, a_all)), int), np.ones(sum(map(len, b_all)), int)])
    spacing = np.sqrt(4 * np.pi / m)
    return SyntheticSet("spheres", x, y, {0: [n, 0, n], 1: [n, 0, 0]}, scale=max(1.6 * spacing, 2.0 * h))


_GENERATORS = {"rings": (_rings, 80, 24), "disks": (_disks, 64, 10), "spheres": (_spheres, 64, 9)}


def list_synthetic() -> list[str]:
    """Names of the synthetic generators."""
    return sorted(_GENERATORS)


def make_synthetic(name: str, n: int | None = None, *, density: int | None = None, seed: int = 0,
                   noise: float = 0.0) -> SyntheticSet:
    """Generate a synthetic set.

    Args:
        name: ``"rings"``, ``"disks"`` or ``"spheres"``.
        n: motifs (default 80 rings, 64 disks, 64 spheres: total Betti 320, 192, 192).
        density: sampling density of each piece (default: 24 points per circle; 1/10 lattice
            spacing for disks; about 72 points per shell for spheres); larger is denser.
        seed: the generator's seed (orientations, jitter).
        noise: standard deviation of Gaussian noise added to every coordinate. With noise the
            declared Betti numbers hold for the noise-free shape only.
    """
    if name not in _GENERATORS:
        raise unknown_name("synthetic dataset", name, _GENERATORS)
    build, n_default, d_default = _GENERATORS[name]
    n = n_default if n is None else n
    density = d_default if density is None else density
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise TopopruneError(f"n (motifs) must be an integer >= 1, got {n!r}")
    if not isinstance(density, int) or isinstance(density, bool) or density < 1:
        raise TopopruneError(f"density must be an integer >= 1, got {density!r}")
    if not noise >= 0:
        raise TopopruneError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    s = build(n, density, rng)
    if noise:
        s.x = s.x + rng.normal(0, noise, s.x.shape)
    s.x = s.x.astype(np.float32)
    return s


def synthetic_splits(s: SyntheticSet, seed: int = 0, *, val_fraction: float = 0.1,
                     test_fraction: float = 0.2):
    """Seeded, stratified train/val/test :class:`DataSplits` of a synthetic set. Coordinates are
    centred and scaled by one scalar mean and std of the training split (a similarity: the
    topology is untouched); ``input_shape`` is ``(1, 1, d)`` so the registry MLPs take them."""
    import torch

    from .registry import DataSplits

    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise TopopruneError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be "
                             "fractions with val in [0, 1), test in (0, 1) and a sum below 1")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in (0, 1):
        idx = rng.permutation(np.flatnonzero(s.y == label))
        n_test, n_val = int(round(test_fraction * idx.size)), int(round(val_fraction * idx.size))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    train_x = s.x[np.concatenate(parts["train"])]
    mean, std = train_x.mean(), train_x.std()  # one scalar each: a similarity, shapes unchanged
    tensors = {}
    for split, chunks in parts.items():
        idx = np.sort(np.concatenate(chunks))
        tensors[f"{split}_x"] = torch.from_numpy(((s.x[idx] - mean) / std).astype(np.float32))
        tensors[f"{split}_y"] = torch.from_numpy(s.y[idx].astype(np.int64))
    d = s.x.shape[1]
    return DataSplits(name=s.name, input_shape=(1, 1, d), num_classes=2, mean=(float(mean),),
                      std=(float(std),), **tensors)
