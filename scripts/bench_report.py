"""Regenerate the README's benchmark tables from ``benchmarks/results/*.json`` (no retraining, no
number typed by hand): ``make bench-report``.

Writes the block between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in README.md. A
results file that is missing is named as missing; a partial run says how many cells it holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from topoprune.experiments.stats import interval_verdict, t_interval

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
from _env import commit_text  # noqa: E402 - the benchmarks' own helpers
from ray_sweep import WHAT as RAY_SWEEP_RUNS  # noqa: E402 - what each run of the Ray sweep is
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


NEAR_CHANCE_POINTS = 10.0  # a recalibrated accuracy this close to chance says little about damage


def _pm(v: list[float], k: int = 2) -> str:
    """Mean ± sample standard deviation (0 for one value)."""
    import statistics

    return f"{statistics.mean(v):.{k}f} ± {statistics.stdev(v) if len(v) > 1 else 0:.{k}f}"


def _load(name: str) -> dict | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _table(rows: list[list[str]], columns: list[int] | None = None) -> str:
    if columns is not None:
        rows = [[r[i] for i in columns] for r in rows]
    head, *body = rows
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in body])


def _source(d: dict, file: str) -> str:
    m = d["machine"]
    return (f"Source: `benchmarks/results/{file}` from `{d['command']}`, {d['date'][:10]}, {commit_text(d)}, "
            f"{m['cpu']} ({m['cores']} cores){', GPU ' + m['gpu'] if m.get('gpu') else ''}, "
            f"torch {d['versions'].get('torch', '?')}.")


def _status(d: dict) -> str:
    if d.get("complete", True):
        return ""
    return (f" **Partial: {d['cells_done']} of {d['cells_total']} cells ran on this machine so far**; "
            "the rest resume with the same command.")


def _missing(file: str, how: str) -> list[str]:
    return [f"Not yet run: `benchmarks/results/{file}` is missing ({how}).", ""]


def _results(out: list[str], entries, how: str):
    """For each (results file stem, what it is): a bold heading into ``out``, then the loaded
    record, or a 'not yet run' line naming ``how`` to make it."""
    for name, what in entries:
        d = _load(name)
        out += [f"**{what}**", ""]
        if d is None:
            out += _missing(f"{name}.json", how)
            continue
        yield name, d


def _structured(title: str, intro: str, name: str, how: str) -> list[str]:
    """A structured-pruning section: heading, what it is, source line, dense accuracy, the table."""
    out = [title, "", intro, ""]
    d = _load(name)
    if d is None:
        return out + _missing(f"{name}.json", how)
    table = d["tables"]["structured"]
    old_column = any(r[-1].startswith(("wins (", "LOSES (")) for r in table[1:])
    note = (" Its last column predates the paired interval: the difference of the means after 5 epochs, "
            "wins/LOSES by its sign alone, until the config's command is run and exported again." if old_column else "")
    return out + [_source(d, f"{name}.json") + _status(d) + note, "",
                  f"Dense: {d['dense']['test_acc']:.2f}% test accuracy.", "", _table(table), ""]


def section_structured() -> list[str]:
    return _structured(
        "### 1. Structured pruning, VGG-16 (width 0.25) on Fashion-MNIST 1x32x32",
        "Our stand-in for the Topological Pruner paper's VGG-16 / CIFAR-10 experiment (no CIFAR-10 and no GPU "
        "here). Config `configs/fmnist-vgg16q-filters.yaml`; conv layers pruned uniformly, first conv and head "
        "kept. The last column compares the topological methods (and random) with the best of L1/L2/FPGM after "
        "5 recovery epochs (the baseline with the best mean), as the same-seed paired difference with a 95 % "
        "t-interval: WINS or LOSES when the interval excludes zero, TIE otherwise.",
        "fmnist-vgg16q-filters", "`make bench-structured`")


def section_fitness() -> list[str]:
    return _structured(
        "#### 1b. What the GA optimises: other fitness functions, same setting",
        "Table 1's GA keeps each layer's persistence diagram (`diagram` fitness). Here, on table 1's trained "
        "baseline, with the same recovery and seeds, the GA keeps the layer's neural persistence (`np`) or its "
        "filters' mean activations on 256 training images (`activation`), beside FPGM and L2 in the same run. "
        "Config `configs/fmnist-vgg16q-topo-fitness.yaml`.",
        "fmnist-vgg16q-topo-fitness", "`make bench-fitness`, after table 1")


def section_imp() -> list[str]:
    out = ["### 2. Unstructured: IMP vs T-IMP vs one-shot magnitude vs random, LeNet-300-100 on Fashion-MNIST", "",
           "Config `configs/fmnist-lenet300-imp.yaml`: 20% of the remaining weights per round, 10 rounds, rewind "
           "to init, 15 epochs per round. IMP/T-IMP cells show the round's accuracy (then after 5 more epochs of "
           "recovery); one-shot cells show accuracy right after pruning the trained dense model (then after 5 "
           "recovery epochs). Mean ± std over seeds [n/3 seeds done].", ""]
    d = _load("fmnist-lenet300-imp")
    if d is None:
        return out + _missing("fmnist-lenet300-imp.json", "`make bench-imp`")
    out += [_source(d, "fmnist-lenet300-imp.json") + _status(d), "", _table(d["tables"]["accuracy"]), ""]
    rounds = d["tables"].get("rounds")
    if rounds:
        out += ["Per round: tree/top-k overlap of each layer (IMP / T-IMP / the paper's lower bound / two random "
                "subsets) and neural persistence (IMP / T-IMP):", "", _table(rounds), ""]
    return out


def section_critical() -> list[str]:
    out = ["### 3. Critical compression of every registry model", ""]
    d = _load("critical_compression")
    if d is None:
        return out + _missing("critical_compression.json", "`python benchmarks/critical_compression.py`")
    rows = [["model", "input", "final, paper convention", "final, exact", "paper's final", "layers equal to a paper value"]]
    for m in d["models"]:
        ours = m["conventions"]["paper"]["layers"]
        checks = [(x["ratio"], p) for x, p in zip(ours, m["paper_layers"]) if p is not None]
        agree = sum(abs(a - p) < 1e-4 for a, p in checks)
        rows.append([m["model"], "x".join(map(str, m["input_shape"])), f"{m['conventions']['paper']['final']:.5f}",
                     f"{m['conventions']['exact']['final']:.5f}",
                     f"{m['paper']['final']:.5f}" if m["paper"] else "—",
                     f"{agree}/{len(checks)}" if checks else "—"])
    return out + [_source(d, "critical_compression.json"), "", _table(rows), ""]


def section_speed() -> list[str]:
    out = ["### 4. Speed (ratios against a peer, in one run)", ""]
    rows = [["what", "ours", "peer", "ratio", "source"]]
    d = _load("np_speed")
    if d:
        for x in d["dense"]:
            rows.append([f"max spanning tree, {x['layer']}", f"{1e3 * x['ours_s']:.1f} ms",
                         f"scipy {1e3 * x['scipy_s']:.0f} ms; sort+union-find {1e3 * x['sort_uf_s']:.0f} ms"
                         + (f"; networkx {1e3 * x['networkx_s']:.0f} ms" if x.get("networkx_s") else ""),
                         f"{x['speedup_vs_scipy']:.0f}x vs scipy", "np_speed.json"])
    d = _load("prune_time")
    if d:
        by = {r["method"]: r["seconds"] for r in d["vgg16_width1"]}
        rows.append(["Topological Pruner (GA), vgg16 width 1, sparsity 0.5, first GA call in the process",
                     f"{by['topological']:.1f} s",
                     f"L1 {by['l1']:.2f} s, FPGM {by['fpgm']:.2f} s", f"{by['topological'] / by['fpgm']:.0f}x FPGM's time",
                     "prune_time.json"])
        for r in d.get("ga_time", []):  # issue #16: the GA against FPGM on three model sizes
            rows.append([f"Topological Pruner (GA), {r['model']} ({r['params'] / 1e6:.1f} M params), median of "
                         f"{len(r['runs']['topological'])}", f"{r['topological_seconds']:.2f} s",
                         f"FPGM {r['fpgm_seconds']:.2f} s", f"{r['ratio_topological_to_fpgm']:.1f}x FPGM's time",
                         "prune_time.json"])
        ba = d.get("fitness_before_after")
        if ba:
            rows.append([f"GA fitness, one layer search ({ba['layer']}), new vs pre-#16 evaluation",
                         f"{ba['new_seconds']:.2f} s", f"{ba['reference_seconds']:.2f} s",
                         f"{ba['speedup']:.1f}x faster, max rel. difference {ba['max_relative_difference']:.0e}",
                         "prune_time.json"])
        by = {r["method"]: r["seconds"] for r in d["vgg16_width0.25_fmnist"]}
        rows.append(["Betti pruning, vgg16 w0.25, 256 inputs", f"{by['betti']:.1f} s",
                     f"L1 {by['l1']:.2f} s, FPGM {by['fpgm']:.2f} s", f"{by['betti'] / by['fpgm']:.0f}x FPGM's time",
                     "prune_time.json"])
    d = _load("train_overhead")
    if d:
        import statistics

        rows.append(["training loop, one epoch vgg16 w0.25", f"{statistics.median(d['ours_s']):.1f} s",
                     f"minimal loop {statistics.median(d['minimal_s']):.1f} s",
                     f"{d['ratio_ours_over_minimal']:.3f}x", "train_overhead.json"])
    d = _load("prune_speed")
    if d:
        for name, s in d["setups"].items():
            rows.append([f"L1-pruned vgg16 (0.5) vs dense, batch 64, {name}",
                         f"{s['median_ms']['pruned']['64']:.1f} ms", f"dense {s['median_ms']['dense']['64']:.1f} ms",
                         f"{s['speedup']['64']:.2f}x faster", "prune_speed.json"])
    if len(rows) == 1:
        return out + _missing("np_speed.json etc.", "`make bench`")
    return out + [_table(rows), ""]


def section_early_stopping() -> list[str]:
    out = ["### 5. Neural-persistence early stopping vs validation-loss early stopping (LeNet-300-100)", ""]
    d = _load("np_early_stopping")
    if d is None:
        return out + _missing("np_early_stopping.json", "`python benchmarks/np_early_stopping.py`")
    rows = [["rule", "epochs used", "final test acc %", "seeds"]]
    for rule, s in d["summary"].items():
        rows.append([rule, _pm(s["epochs"], 1), _pm(s["test_acc"]), str(len(s["epochs"]))])
    return out + [_source(d, "np_early_stopping.json"), "", _table(rows), ""]


def section_study() -> list[str]:
    out = ["### 6. The topological activation study (Kochar et al.)", ""]
    d = _load("activation_study")
    if d is None:
        return out + _missing("activation_study.json", "`make bench-study`")
    t = d["table"]
    return out + [_source(d, "activation_study.json") + _status(d), "", f"**{d['verdict']}**", "",
                  _table(t), ""]


def section_extreme() -> list[str]:
    out = ["### 7. Extreme compression, 8x to 1024x: does keeping the spanning tree pay beyond the critical ratio?", "",
           "Configs `configs/fmnist-lenet300-extreme.yaml` and `configs/fmnist-conv-extreme.yaml` (issue #15): IMP "
           "and T-IMP with half of the remaining weights per round (rewound to init, 6 epochs per round), one-shot "
           "global magnitude with and without every layer's maximum spanning tree (`preserve: mst`), SynFlow "
           "(100 rounds, data-free) and random weights; 3 recovery epochs; 3 seeds. The plot marks the dense "
           "model's critical compression ratio (beyond it, the layers' trees no longer fit the budget). Two "
           "caveats: IMP and T-IMP train 6 epochs per round (60 in all) where the one-shot methods get 3 recovery "
           "epochs, so compare T-IMP with IMP and magnitude-mst with magnitude and SynFlow; and 'tree kept' is "
           "measured against the trained dense model's trees, which IMP and T-IMP (rewound to the "
           "initialisation and retrained) do not keep by construction: T-IMP keeps its own weights' trees.", ""]
    for name, what in (("fmnist-lenet300-extreme", "LeNet-300-100"), ("fmnist-conv-extreme", "conv net (8 channels)")):
        d = _load(name)
        out += [f"**{what}**", ""]
        if d is None:
            out += _missing(f"{name}.json", "`make bench-extreme`")
            continue
        crit = f" Critical compression ratio of the dense model: {d['critical']:.0f}x." if d.get("critical") else ""
        out += [_source(d, f"{name}.json") + _status(d), "", f"Dense: {d['dense']['test_acc']:.2f}% test accuracy.{crit}",
                "", *[f"- {v}" for v in d.get("verdicts", [])], ""]
        for title, t in d["tables"].items():
            out += [f"*{title}*", "", _table(t), ""]
        if d.get("plot"):
            out += [f"![accuracy vs compression, {what}](benchmarks/results/{d['plot']})", ""]
    return out


def section_damage() -> list[str]:
    out = ["### 8. Does topology explain recoverability? (the damage study)", "",
           "`topoprune study damage` (issue #15; METHODS.md section 8): per sparsity, random candidate prunings "
           "of a trained model plus each method's choice; every candidate scored before retraining (the GA's "
           "fitness kinds, NP retained, Betti, tree kept; L1/L2 mass removed, the worst layer's share, FPGM; "
           "parameters removed) and measured after (accuracy raw, after BN recalibration, after 1 and 3 recovery "
           "epochs, epochs to recover). A score explains recoverability better than magnitude only if its "
           "|Spearman rho| beats L1 mass removed's beyond the paired 95 % bootstrap interval. The sentences "
           "below are generated from the results files, not written by hand.", ""]
    for name, d in _results(out, (("fmnist-vgg16q-damage", "VGG-16 (width 0.25), filters"),
                                  ("fmnist-lenet300-damage", "LeNet-300-100, weights")), "`make bench-damage`"):
        out += [_source(d, f"{name}.json") + _status(d), "", *[f"- {v}" for v in d["verdicts"]], ""]
        if d.get("verdicts_random_only"):
            out += ["Among the random candidates only (the method choices left out, so that a score must rank "
                    "prunings of one kind):", "", *[f"- {v}" for v in d["verdicts_random_only"]], ""]
        for title, t in d["tables"].items():
            out += [f"*{title}*", "", _table(t), ""]
    return out


def section_budgets() -> list[str]:
    out = ["### 9. Layer budgets: where topology helps (matched FLOPs)", "",
           "Issue #16: every structured method prunes to the same FLOPs (2x and 4x fewer, met within 1 %); "
           "the peers are uniform FPGM, torch-pruning's own global pruning (`tp-global`) and EagleEye "
           "(`allocation: eagleeye`, 100 candidates); ours are the topological allocation (`allocation: "
           "topological`) and the Topological Pruner v2 (`topological-v2`, 100 chromosomes). WINS / TIE / LOSES "
           "come from the same-seed paired difference with the best peer (95 % t-interval). The sentences are "
           "generated from the results files. Prune seconds and latency are measured inside the run, while another "
           "cell or job used the other core: read them as rough; section 4 (`benchmarks/prune_time.py`) is the "
           "controlled timing.", ""]
    for name, d in _results(out, (("fmnist-vgg16q-budget", "VGG-16 (width 0.25)"), ("fmnist-resnet56-budget",
                                                                                    "ResNet-56")), "`make bench-budgets`"):
        out += [_source(d, f"{name}.json") + _status(d), "", *[f"- {v}" for v in d["verdicts"]], ""]
        for title, t in d["tables"].items():
            out += [f"*{title}*", "", _table(t), ""]
        if d.get("plot"):
            out += [f"![per-layer budgets](benchmarks/results/{d['plot']})", ""]
        if name == "fmnist-vgg16q-budget":  # the diagnostic re-prunes this run's baseline
            out += _budget_caps_lines(_load("budget-caps"))
    cost = _load("train_step_cost")
    if _load("fmnist-resnet56-budget") is None and cost is not None and cost.get("model") == "resnet56":
        out += [f"What it would cost here: a ResNet-56 training step takes about {cost['ratio']:.1f}x VGG-16 width "
                f"0.25's on one core (`{cost['command']}`, {cost['date'][:10]}, {commit_text(cost)}), about "
                f"{cost['cell_training_min']['other']:.0f} min of training per cell and "
                f"{cost['run_training_core_hours']:.0f} core-hours for the {cost['cells']} cells (evaluation, pruning "
                "and the baseline not included): a run for a GPU (`--device cuda`) or a bigger machine, not for "
                "this one.", ""]
    return out


def _budget_caps_lines(d: dict | None) -> list[str]:
    """The per-layer cap diagnostic (``benchmarks/budget_caps.py``): recalibrated accuracy of the
    topological allocation at each cap against uniform FPGM, sentences and table from the file."""
    if d is None:
        return []
    import statistics

    def interval(p: dict) -> str:
        if "mean" not in p:
            return ", ".join(f"{x:+.2f}" for x in p["diffs"]) + " (one seed: no interval)"
        return f"{p['mean']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]"

    def where(p: dict) -> str:
        """Where the cap leaves the allocation against uniform FPGM, from the interval's sign."""
        if "mean" not in p:
            return "one seed, no interval"
        return {"WINS": "above uniform FPGM beyond the interval", "LOSES": "below uniform FPGM beyond the interval",
                "TIE": "no difference from uniform FPGM resolved"}[interval_verdict(p["low"], p["high"])]

    check = d.get("run_check", [])
    equal = sum(c["equal"] for c in check)
    checked = (f"The recomputed cells that the run had finished when this ran equal its rows ({equal} of {len(check)}; "
               f"{d.get('run_check_wanted', len(check))} have a counterpart in the run). " if check and equal == len(check)
               else f"Only {equal} of {len(check)} recomputed cells equal the run's rows: read with care. " if check
               else "No recomputed cell could be compared with the run's rows. ")
    same = d.get("same_filters_every_seed", {})
    seeds_note = ("FPGM and the allocations removed the same filters on every seed (one trained baseline), so "
                  "the seeds vary only the recalibration batches: the intervals measure that noise, not the spread "
                  "between trained networks. " if same and all(same.values()) else "")
    caps = [p["cap"] for p in d["paired"] if p.get("cap") is not None]
    run_caps = [v.rsplit(" ", 1)[1] for v in d.get("run_counterparts", {}) if v.startswith("topological cap ")]
    out = ["*Why the topological allocation loses: a per-layer cap (diagnostic, not a verdict).* "
           + (f"The run's topological allocation may remove up to a fraction {run_caps[0]} of a layer (`max_ratio`). "
              if run_caps else "")
           + f"`{d['command']}` ({d['date'][:10]}, {commit_text(d)}, {d['seconds'] / 60:.0f} min) prunes the run's "
           f"baseline again with caps {', '.join(f'{c:g}' for c in sorted(set(caps), reverse=True))} and measures the "
           "accuracy right after pruning and BN recalibration, as the run does, with no training: a proxy for the "
           "immediate damage, not the accuracy after recovery. A lower cap also samples each layer's sensitivity "
           "curve more finely (the curve runs from 0 to the cap). The caps were chosen after seeing the run, so "
           f"nothing here enters its verdicts. Chance is {d['chance']:.0f} %. " + (checked + seeds_note).rstrip(), ""]
    for sparsity in sorted({p["sparsity"] for p in d["paired"]}):
        ps = sorted((p for p in d["paired"] if p["sparsity"] == sparsity and p.get("cap") is not None),
                    key=lambda p: -p["cap"])
        if not ps:
            continue
        uniform = statistics.mean(ps[0]["uniform"])
        parts = [f"{statistics.mean(p['recal']):.1f} % at cap {p['cap']:g} ({interval(p)}: {where(p)})" for p in ps]
        near = max(uniform, *(statistics.mean(p["recal"]) for p in ps)) < d["chance"] + NEAR_CHANCE_POINTS
        out.append(f"- {1 / (1 - sparsity):.0f}x fewer FLOPs: uniform FPGM {uniform:.1f} %; the topological "
                   "allocation " + "; ".join(parts) + "."
                   + (f" Every one of them is within {NEAR_CHANCE_POINTS:g} points of chance: the proxy says nothing here." if near else ""))
    rows = [["FLOPs removed", "allocation", "most of one layer removed", "recalibrated acc", "uniform FPGM",
             "same-seed difference (95 % t-interval)", "target met (within 1 %)"]]
    for p in d["paired"]:
        rows.append([f"{p['sparsity']:g}", p["variant"], f"{p['max_layer_fraction']:.2f}", _pm(p["recal"]),
                     _pm(p["uniform"]), interval(p), "yes" if p["met"] else "no"])
    return out + ["", _table(rows), ""]


def _repeat_interval(values: list[float]) -> str:
    """A 95 % t-interval over per-repeat values, and whether it resolves the sign."""
    if len(values) < 2:
        return "one repeat: no interval"
    _, lo, hi = t_interval(values)
    word = "not resolved: the interval includes zero" if interval_verdict(lo, hi) == "TIE" else "resolved"
    return f"95 % t-interval over the repeats [{lo:+.2f}, {hi:+.2f}], {word}"


def section_scale() -> list[str]:
    out = ["### 10. Running at scale: the Ray executor's overhead (local cluster)", "",
           "Issue #17: 16 small cells (mnist-conv w0.5 on 6000 Fashion-MNIST images, 2 recovery epochs) run by "
           "the local executor and by a local Ray cluster, with 1 and 2 workers, each run a fresh process; "
           "local-1 and ray-1 are pinned to one core (Ray's daemons included). A cell on a GPU is not measured "
           "(no GPU was lent).", ""]
    d = _load("ray_sweep")
    if d is None:
        return out + _missing("ray_sweep.json", "`python benchmarks/ray_sweep.py`, alone on the machine")
    rows = [["run", "what", "seconds (mean)", "s per cell", "each repeat (s)"]]
    for k, v in d["seconds"].items():
        rows.append([k, RAY_SWEEP_RUNS.get(k, k), f"{v:.1f}", f"{v / d['cells']:.2f}",
                     ", ".join(f"{t:.1f}" for t in d["seconds_each"][k])])
    start = ", ".join(f"{k} {v:.1f} s" for k, v in d["cluster_start_s"].items())
    each = d.get("overhead_per_cell_each_s", [])
    resolved = _repeat_interval(each)
    return out + [_source(d, "ray_sweep.json"), "", _table(rows), "",
                  f"A second worker: Ray {d['ratio_ray1_over_ray2']:.2f}x (ray-1 / ray-2), the local executor "
                  f"{d['ratio_local1_over_local2']:.2f}x (local-1 / local-2). Ray's overhead against the local "
                  f"executor on one core: {d['overhead_per_cell_s']:+.2f} s per cell (per repeat "
                  f"{', '.join(f'{x:+.2f}' for x in each)}: {resolved}). Starting the local cluster (not in the "
                  f"seconds above): {start}.", ""]


def main() -> None:
    block = [BEGIN, "", "Generated by `make bench-report` (`python scripts/bench_report.py`) from "
             "`benchmarks/results/*.json`; `benchmarks/README.md` says how each was produced and how long it takes.", ""]
    for section in (section_structured, section_fitness, section_imp, section_critical, section_speed, section_early_stopping,
                    section_study, section_extreme, section_damage, section_budgets, section_scale):
        block += section()
    block.append(END)
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        sys.exit("README.md has no bench markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + "\n".join(block) + tail)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
