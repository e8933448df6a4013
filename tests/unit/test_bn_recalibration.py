"""BatchNorm recalibration (issue #15, item 1): ``recalibrate_bn`` and its use by the runner.

Stale BatchNorm statistics, not the weights, are what sink a pruned BN network right after
pruning; re-estimating them on training batches brings it back well above chance without
changing one weight. In train-mode BatchNorm the recovery that follows is unchanged: training
normalizes with each batch's statistics, so the running ones never reach a weight update.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import topoprune as tp
from topoprune.errors import TopopruneError
from topoprune.train import RecalibrationResult, TrainConfig, evaluate, recalibrate_bn, recover, train

CHANCE = 10.0  # digits has ten balanced classes


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    return tp.prepare_data("digits")


@pytest.fixture(scope="module")
def trained(digits):
    model = _bn_net()
    train(model, digits, TrainConfig(epochs=2, lr=0.1, batch_size=64, seed=0), progress=False)
    return model


@pytest.fixture(scope="module")
def pruned_once(trained, digits):
    """Half of every inner conv's filters removed by L1 (first conv and head kept)."""
    pruned, _ = tp.prune_filters(trained, digits.train_x[:2], method="l1", sparsity=0.5)
    return pruned


@pytest.fixture
def pruned(pruned_once):
    return copy.deepcopy(pruned_once)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _bn_buffers(model: nn.Module) -> set[str]:
    return {f"{n}.{b}" for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in ("running_mean", "running_var", "num_batches_tracked")}


def test_recalibration_lifts_a_collapsed_pruned_model_above_chance(trained, pruned, digits):
    dense = evaluate(trained, digits.test_x, digits.test_y)[1]
    raw = evaluate(pruned, digits.test_x, digits.test_y)[1]
    assert dense > 80 and raw < dense - 30  # pruning sank it: the setting this test is about
    record = recalibrate_bn(pruned, digits, batches=20, batch_size=64, seed=0)
    recal = evaluate(pruned, digits.test_x, digits.test_y)[1]
    assert record == RecalibrationResult(bn_layers=3, batches=20, samples=1280, note="")
    assert recal > 2 * CHANCE and recal > raw + 10, (raw, recal)


def test_only_batchnorm_statistics_change(pruned, digits):
    before = _snapshot(pruned)
    params = {n: p for n, p in pruned.named_parameters()}
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    recalibrate_bn(pruned, digits, batches=5, batch_size=64, seed=3)
    after = pruned.state_dict()
    stats = _bn_buffers(pruned)
    for name, value in before.items():
        if name in stats:
            continue
        assert torch.equal(after[name], value), name  # bit-identical
    assert all(not torch.equal(after[n], before[n]) for n in stats if n.endswith("running_mean"))
    assert all(p is params[n] for n, p in pruned.named_parameters())  # the same tensors, not copies
    assert all(p.grad is None for p in pruned.parameters())
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads


@pytest.mark.parametrize("mode", ["eval", "train", "mixed"])
def test_mode_and_momentum_are_restored(pruned, digits, mode):
    bns = [m for m in pruned.modules() if isinstance(m, nn.BatchNorm2d)]
    bns[0].momentum, bns[1].momentum = 0.3, None
    pruned.train(mode != "eval")
    if mode == "mixed":
        bns[2].eval()
    modes = {n: m.training for n, m in pruned.named_modules()}
    recalibrate_bn(pruned, digits, batches=2, batch_size=32)
    assert {n: m.training for n, m in pruned.named_modules()} == modes
    assert [b.momentum for b in bns] == [0.3, None, 0.1]


def test_dropout_stays_off_and_no_global_random_number_is_drawn():
    """Only the BatchNorm layers are in train mode: the statistics are those evaluation sees, and
    a dropout layer (in train mode in the caller's model) neither changes them nor draws."""
    xs = [torch.randn(16, 6, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    plain, dropped = nn.BatchNorm1d(6), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(6)).train()
    rng = torch.get_rng_state()
    recalibrate_bn(plain, xs, batches=3)
    recalibrate_bn(dropped, xs, batches=3)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.testing.assert_close(dropped[1].running_var, plain.running_var, rtol=0, atol=0)
    assert dropped[0].training and dropped.training


def test_deterministic_for_a_seed(pruned_once, digits):
    a, b, c = (copy.deepcopy(pruned_once) for _ in range(3))
    for model, seed in ((a, 1), (b, 1), (c, 2)):
        recalibrate_bn(model, digits, batches=3, batch_size=32, seed=seed)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_statistics_are_the_cumulative_average_of_the_batches():
    """An iterable of (x, y) batches: the running mean is the mean of the batch means and the
    running variance the mean of the (unbiased) batch variances; only ``batches`` are used."""
    bn = nn.BatchNorm1d(3, momentum=0.5)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(8, 3, generator=g) * (i + 1) + i for i in range(4)]
    pairs = iter([(x, torch.zeros(8)) for x in xs])
    record = recalibrate_bn(bn, pairs, batches=3)
    assert (record.bn_layers, record.batches, record.samples) == (1, 3, 24)
    assert next(pairs)[0] is xs[3]  # nothing beyond the batches asked for was taken
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in xs[:3]]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([x.var(0) for x in xs[:3]]).mean(0))
    assert bn.momentum == 0.5 and bn.num_batches_tracked.item() == 3
    recalibrate_bn(bn, iter(xs), batches=10)  # plain tensors; fewer batches than asked: all of them
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))


def test_a_failed_pass_leaves_the_old_statistics(pruned, digits):
    before = _snapshot(pruned)
    pruned.eval()
    good = digits.train_x[:16]
    with pytest.raises(RuntimeError):
        recalibrate_bn(pruned, [good, torch.zeros(16, 3, 8, 8)], batches=2)  # 3 channels: refused
    after = pruned.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not pruned.training and all(m.momentum == 0.1 for m in pruned.modules()
                                       if isinstance(m, nn.BatchNorm2d))


def test_no_batchnorm_is_a_no_op_that_says_so(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    before = _snapshot(model)
    with pytest.warns(UserWarning, match="no BatchNorm: nothing to recalibrate"):
        record = recalibrate_bn(model, digits)
    assert record.to_dict() == {"bn_layers": 0, "batches": 0, "samples": 0,
                                "note": "no BatchNorm: nothing to recalibrate"}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    # BatchNorm without running statistics always uses the batch's: nothing to recalibrate either
    with pytest.warns(UserWarning, match="no BatchNorm"):
        assert recalibrate_bn(nn.BatchNorm1d(4, track_running_stats=False), [torch.randn(4, 4)]).bn_layers == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"batches": 0}, "batches: bad value 0; allowed: an integer in [1, 10000]"),
    ({"batches": 10_001}, "batches: bad value 10001"),
    ({"batches": True}, "batches: bad value True"),
    ({"batches": 2.0}, "batches: bad value 2.0"),
    ({"batch_size": 0}, "batch_size: bad value 0; allowed: an integer >= 1"),
    ({"seed": -1}, "seed: bad value -1; allowed: an integer >= 0"),
    ({"data": torch.zeros(4, 1, 8, 8)}, "data: bad value Tensor; allowed: a DataSplits"),
    ({"data": None}, "data: bad value NoneType"),
    ({"data": []}, "data: bad value an empty iterable"),
    ({"data": [["x", 1]]}, "data batch 0: bad value str"),
    ({"model": "vgg16"}, "model: bad value str; allowed: a torch nn.Module"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message, digits):
    args = {"model": nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64)), "data": digits, **kwargs}
    model, data = args.pop("model"), args.pop("data")
    with pytest.raises(TopopruneError) as exc:
        recalibrate_bn(model, data, **args)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_recovery_weights_do_not_depend_on_recalibration(pruned_once, digits):
    """The true statement behind "recalibration does not change the recovery trajectory beyond
    its first steps": training-mode BatchNorm normalizes with each batch's own statistics, so
    every weight update is the same and the weights after an epoch are bit-identical. Only the
    running statistics differ, and that difference decays as ``(1 - momentum) ** steps``; the
    accuracy right after pruning (the curve's first point) is what recalibration changes."""
    raw, recal = copy.deepcopy(pruned_once), copy.deepcopy(pruned_once)
    start = [p.detach().clone() for p in raw.parameters()]
    recalibrate_bn(recal, digits, batches=20, batch_size=64)
    gap = {n: (a.running_mean - b.running_mean) for (n, a), b in zip(
        ((n, m) for n, m in raw.named_modules() if isinstance(m, nn.BatchNorm2d)),
        (m for m in recal.modules() if isinstance(m, nn.BatchNorm2d)))}
    config = TrainConfig(epochs=1, lr=0.01, batch_size=64, seed=0)
    runs = [recover(m, digits, 90.0, epochs=1, config=config, progress=False) for m in (raw, recal)]
    assert runs[1].accuracy[0] > runs[0].accuracy[0] + 10  # the start differs ...
    for (name, p), q in zip(raw.named_parameters(), recal.parameters()):
        assert torch.equal(p, q), name  # ... every weight after the epoch is bit-identical
    assert not any(torch.equal(p, p0) for p, p0 in zip(raw.parameters(), start))  # and they did train
    steps = len(digits.loader("train", 64))
    for n, m in raw.named_modules():
        if n in gap:
            left = m.running_mean - dict(recal.named_modules())[n].running_mean
            torch.testing.assert_close(left, gap[n] * 0.9 ** steps, rtol=1e-3, atol=1e-5)


# --- the runner ---------------------------------------------------------------------------------

TINY = {
    "name": "bn-recal",
    "dataset": "digits",
    "model": {"name": "vgg11", "width": 0.125, "input_shape": [1, 8, 8]},  # BatchNorm after every conv
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 64},
    "methods": ["l1"],
    "sparsities": [0.5],
    "seeds": [0],
    "recovery": {"epochs": 1, "batch_size": 64, "recalibrate_bn": 10},
    "analyses": {"persistence": False, "critical": False, "overlap": False, "latency": False},
}


def _compare(tmp_path, report: bool, **changes):
    from topoprune.experiments.config import parse_config
    from topoprune.experiments.runner import run_experiment
    from topoprune.experiments.store import read_results

    run_dir = run_experiment(parse_config({**TINY, **changes}), tmp_path, quiet=True, report=report)
    return run_dir, read_results(run_dir)


def test_the_runner_records_raw_and_recalibrated_accuracy(tmp_path):
    run_dir, rows = _compare(tmp_path, True, methods=["l1", "magnitude"])
    for r in rows:
        assert r["acc_after_prune"] == r["acc_pruned_raw"]
        assert r["recovery_curve"][0] == r["acc_pruned_recal"]  # recovery starts from the recalibrated model
        assert r["bn_recalibration"] == {"bn_layers": 8, "batches": 10, "samples": 640, "note": ""}
    l1 = rows[0]
    assert l1["method"] == "l1" and l1["acc_pruned_recal"] > max(2 * CHANCE, l1["acc_pruned_raw"] + 10)
    report = (run_dir / "report.md").read_text()
    head = next(line for line in report.splitlines() if line.startswith("| model"))
    assert "| acc pruned | acc pruned + BN recal. | acc recovered |" in head
    assert "on 10 training batches" in report and "no weight of the recovery" in report


def test_recalibration_off_gives_equal_columns(tmp_path):
    _, rows = _compare(tmp_path, False, recovery={**TINY["recovery"], "recalibrate_bn": 0})
    (r,) = rows
    assert r["acc_pruned_raw"] == r["acc_pruned_recal"] == r["recovery_curve"][0] == r["acc_after_prune"]
    assert r["bn_recalibration"]["batches"] == 0 and "off" in r["bn_recalibration"]["note"]


@pytest.mark.parametrize("value, allowed", [(-1, "greater than or equal to 0"), (10_001, "less than or equal to 10000"),
                                            (1.5, "a valid integer"), (True, "a valid integer")])
def test_a_bad_recalibrate_bn_is_a_config_error(value, allowed):
    from topoprune.experiments.config import parse_config

    with pytest.raises(TopopruneError, match=rf"config field recovery.recalibrate_bn: bad value {value}; "
                       rf"allowed: {allowed}"):
        parse_config({**TINY, "recovery": {"recalibrate_bn": value}})
    assert parse_config(TINY).recovery.recalibrate_bn == 10
    assert parse_config({**TINY, "recovery": {}}).recovery.recalibrate_bn == 50  # the default


def test_reports_of_rows_from_before_recalibration_still_build():
    from topoprune.experiments.report import _table, summarize

    row = {"model": "m", "method": "l1", "kind": "structured", "sparsity": 0.5, "seed": 0,
           "params": [10, 5], "nonzero_params": [10, 5], "macs": [10, 5], "flops": [20, 10],
           "latency_ms": [None, None], "dense_acc": 90.0, "acc_after_prune": 10.0, "acc_after_recovery": 80.0,
           "epochs_to_recover": None, "seconds_to_recover": None, "prune_seconds": 0.1, "np_retained": 1.0}
    table = _table(summarize([row]))
    line = dict(zip(table[0], table[1]))
    assert line["acc pruned"] == "10.00 ± 0.00" and line["acc pruned + BN recal."] == "—"


def test_a_recovery_interrupted_after_recalibration_resumes_to_the_same_row(tmp_path, monkeypatch):
    """Stopped in the middle of recovery, a cell measures and recalibrates the pruned model again
    and resumes from the epoch checkpoint: the row equals an uninterrupted run's."""
    from topoprune.train.recovery import _RecoveryWatch

    recovery = {**TINY["recovery"], "epochs": 3}
    _, reference = _compare(tmp_path / "ref", False, recovery=recovery)
    watch = _RecoveryWatch.on_epoch_end

    def stop_in_epoch_two(self, model, record, history):
        if record["epoch"] == 2:  # epoch 1's checkpoint is on disk, epoch 2's is not
            raise KeyboardInterrupt
        return watch(self, model, record, history)

    monkeypatch.setattr(_RecoveryWatch, "on_epoch_end", stop_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        _compare(tmp_path / "run", False, recovery=recovery)
    monkeypatch.setattr(_RecoveryWatch, "on_epoch_end", watch)
    (metrics,) = (tmp_path / "run").glob("*/cells/*/*/*/*/recovery/metrics.json")
    assert json.loads(metrics.read_text())["epochs_done"] == 1
    _, rows = _compare(tmp_path / "run", False, recovery=recovery)
    timing = {"prune_seconds", "seconds_to_recover", "latency_ms", "started", "finished", "threads"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows] == [
        {k: v for k, v in r.items() if k not in timing} for r in reference]
    assert rows[0]["acc_pruned_recal"] != rows[0]["acc_pruned_raw"]
