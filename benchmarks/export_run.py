"""Turn a finished (or partly finished) run folder into a results file in ``benchmarks/results``:
every row with its per-seed raw values, the summary table, the machine, versions, seeds and date.

    python benchmarks/export_run.py structured configs/fmnist-vgg16q-filters.yaml
    python benchmarks/export_run.py imp configs/fmnist-lenet300-imp.yaml
    python benchmarks/export_run.py study configs/study-activations.yaml
    python benchmarks/export_run.py extreme configs/fmnist-lenet300-extreme.yaml
    python benchmarks/export_run.py damage configs/fmnist-vgg16q-damage.yaml
    python benchmarks/export_run.py budget configs/fmnist-vgg16q-budget.yaml

The run folder is found from the config (``<runs>/<name>-<hash>``, default ``benchmarks/runs``),
so the file always matches the config it names. Nothing is retrained: rerun the config's
command first (it resumes) to finish missing cells. A partial run is exported with
``complete: false`` and the cells it lacks, and its tables say so.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

try:
    from _env import dense_text, environment, execution_text, provenance_lines, run_execution
except ImportError:
    from benchmarks._env import dense_text, environment, execution_text, provenance_lines, run_execution

from topoprune.experiments.report import control_meaning  # the report's words for each verdict
from topoprune.experiments.report import _markdown_table as _table_md
from topoprune.experiments.report import _short
from topoprune.experiments.stats import (PairedResult, holm_family, minimum_detectable_effect,
                                         paired_difference, t_interval)

HERE = Path(__file__).parent
EPOCHS_SHOWN = (0, 1, 2, 3, 5)


def _ms(values: list) -> tuple[float | None, float | None]:
    v = [x for x in values if x is not None]
    if not v:
        return None, None
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def _pm(values: list, digits: int = 2) -> str:
    m, s = _ms(values)
    return "—" if m is None else f"{m:.{digits}f} ± {s:.{digits}f}"


# --- table 1: structured --------------------------------------------------------------------------


def _recalibrated(rows: list[dict]) -> bool:
    """Whether the run recorded accuracy after BatchNorm recalibration."""
    return any(r.get("acc_pruned_recal") is not None for r in rows)


def structured_table(rows: list[dict], seeds_expected: int) -> list[list[str]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["sparsity"], r["method"])].append(r)
    head = ["sparsity", "method", "seeds", "params", "MACs", "FLOPs", "latency b1 ms", "latency b64 ms"]
    head += ["acc after prune"] + (["acc + BN recal."] if _recalibrated(rows) else [])
    head += [f"acc {e} ep" for e in EPOCHS_SHOWN if e]
    head += ["epochs to dense-0.5", "prune s", "vs best baseline (5 ep; same seed, 95 % t-interval)"]
    table = [head]
    baselines = ("l1", "l2", "fpgm")
    for (sparsity, method), rs in sorted(groups.items(), key=lambda kv: kv[0][0]):
        r0 = rs[0]
        lat = [r["latency_ms"] for r in rs if r.get("latency_ms") and r["latency_ms"][1]]

        def lat_cell(b: str) -> str:
            if not lat:
                return "—"
            dense = _ms([x[0][b] for x in lat if x[0]])[0]
            pruned = _ms([x[1][b] for x in lat])[0]
            return f"{dense:.2f} → {pruned:.2f}" if dense else f"{pruned:.2f}"

        # right after pruning: raw (rows before BN recalibration existed: the curve's first point),
        # then recalibrated when the run recorded it (the curve's first point is then that)
        accs = [_pm([r.get("acc_pruned_raw", r["recovery_curve"][0]) for r in rs])]
        if _recalibrated(rows):
            accs.append(_pm([r.get("acc_pruned_recal") for r in rs]))
        accs += [_pm([r["recovery_curve"][e] if e < len(r["recovery_curve"]) else None for r in rs])
                 for e in EPOCHS_SHOWN if e]
        reached = [r["epochs_to_recover"] for r in rs]
        rec = f"{_pm([e for e in reached if e is not None], 1)} ({sum(e is not None for e in reached)}/{len(rs)})"
        final = _ms([r["recovery_curve"][-1] for r in rs])[0]
        best = [(_ms([r["recovery_curve"][-1] for r in groups[(sparsity, b)]])[0], b)
                for b in baselines if groups.get((sparsity, b))]
        if r0.get("algorithm", method) in ("topological", "betti", "random") and best:
            top, name = max(best)  # the baseline with the best mean after recovery
            p = _paired(rows, sparsity, method, name)
            if p.verdict == "n/a":  # fewer than two seeds in common: the difference of means, no verdict
                verdict = f"{final - top:+.2f} vs {name} (too few seeds for an interval)"
            else:
                verdict = f"{p.verdict}: {p.mean:+.2f} [{p.low:+.2f}, {p.high:+.2f}] vs {name}"
        else:
            verdict = ""
        table.append([f"{sparsity:g}", method, f"{len(rs)}/{seeds_expected}",
                      f"{_short(r0['params'][0])} → {_short(r0['params'][1])}",
                      f"{_short(r0['macs'][0])} → {_short(r0['macs'][1])}",
                      f"{_short(r0['flops'][0])} → {_short(r0['flops'][1])}",
                      lat_cell("1"), lat_cell("64"), *accs, rec, _pm([r["prune_seconds"] for r in rs], 1), verdict])
    return table


# --- table 2: IMP / T-IMP -------------------------------------------------------------------------


def imp_tables(rows: list[dict], seeds_expected: int, recovery_epochs: int = 5) -> dict[str, list[list[str]]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["sparsity"], r["method"])].append(r)
    methods = ["imp", "timp", "magnitude", "random-weights"]
    methods += sorted({r["method"] for r in rows} - set(methods))  # the controls (<method>+<control>)
    acc = [["remaining weights %"] + [f"{m}: acc (after {recovery_epochs} ep recovery)" for m in methods]]
    for s in sorted({k[0] for k in groups}):
        line = [f"{100 * (1 - s):.1f}"]
        for m in methods:
            rs = groups.get((s, m), [])
            line.append("—" if not rs else f"{_pm([r['acc_after_prune'] for r in rs])} "
                        f"({_pm([r['acc_after_recovery'] for r in rs])}) [{len(rs)}/{seeds_expected}]")
        acc.append(line)
    tables = {"accuracy": acc}
    # per round, from the longest trajectory of each (method, seed)
    traj: dict[str, dict[int, list[dict]]] = {}
    for m in ("imp", "timp"):
        per_seed: dict[int, list[dict]] = {}
        for r in rows:
            if r["method"] == m and r.get("imp_rounds") and len(r["imp_rounds"]) > len(per_seed.get(r["seed"], [])):
                per_seed[r["seed"]] = r["imp_rounds"]
        traj[m] = per_seed
    if any(traj.values()):
        n_rounds = max(len(t) for per in traj.values() for t in per.values())
        first = next(t for per in traj.values() for t in per.values())
        layers = list(first[-1]["np"])
        head = ["round", "remaining %", "IMP test acc", "T-IMP test acc"]
        head += [f"overlap {x}: IMP / T-IMP / bound / random" for x in layers]
        head += [f"NP {x}: IMP / T-IMP" for x in layers]
        per_round = [head]
        for k in range(n_rounds):
            at = {m: [t[k] for t in traj[m].values() if len(t) > k] for m in ("imp", "timp")}
            ref = (at["imp"] or at["timp"])[0]
            line = [str(k), f"{100 * ref['remaining']:.1f}", _pm([x["test_acc"] for x in at["imp"]]),
                    _pm([x["test_acc"] for x in at["timp"]])]
            for x in layers:
                o = {m: [y["overlap"][x] for y in at[m] if x in y["overlap"]] for m in at}
                ref_o = (o["imp"] or o["timp"])
                line.append("—" if not ref_o else
                            f"{_ms([v['measured'] for v in o['imp']])[0] or 0:.3f} / "
                            f"{_ms([v['measured'] for v in o['timp']])[0] or 0:.3f} / "
                            f"{ref_o[0]['bound']:.3f} / {_ms([v['random'] for v in ref_o])[0]:.3f}")
            for x in layers:
                line.append(f"{_ms([y['np'][x] for y in at['imp']])[0] or 0:.3f} / "
                            f"{_ms([y['np'][x] for y in at['timp']])[0] or 0:.3f}")
            per_round.append(line)
        tables["rounds"] = per_round
    return tables


# --- extreme compression -------------------------------------------------------------


def _critical(run_dir: Path) -> float | None:
    """The dense model's critical compression ratio (paper convention) from the run's analysis (the
    first seed's network under ``train.seed: each``), or None before the analysis exists."""
    found = sorted((run_dir / "analysis").glob("**/*.json"))  # analysis/<model>.json, or <model>/seed<k>.json
    if not found:
        return None
    a = json.loads(found[0].read_text())
    return (a.get("critical_paper") or {}).get("final")


def extreme_tables(rows: list[dict], seeds_expected: int, methods: list[str]) -> dict[str, list[list[str]]]:
    """Accuracy after recovery per compression and method, and per cell the collapse, the
    connectivity and the share of the spanning trees kept (seeds with / seeds run)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["sparsity"], r["method"])].append(r)
    sparsities = sorted({k[0] for k in groups})
    acc = [["compression", "remaining %"] + [f"{m}" for m in methods]]
    health = [["compression"] + [f"{m}: collapsed / no path / tree kept" for m in methods]]
    for s in sparsities:
        acc.append([f"{1 / (1 - s):.0f}x", f"{100 * (1 - s):.2f}"] + [
            "—" if not groups.get((s, m)) else
            f"{_pm([r['acc_after_recovery'] for r in groups[(s, m)]])} [{len(groups[(s, m)])}/{seeds_expected}]"
            for m in methods])
        line = [f"{1 / (1 - s):.0f}x"]
        for m in methods:
            rs = [r for r in groups.get((s, m), []) if r.get("collapse") and "error" not in r["collapse"]]
            if not rs:
                line.append("—")
                continue
            collapsed = sum(bool(r["collapse"]["any_collapsed"]) for r in rs)
            cut = sum(not r["collapse"]["path"] for r in rs)
            tree = _ms([statistics.mean(r["collapse"]["tree_kept"].values()) for r in rs
                        if r["collapse"].get("tree_kept")])[0]
            line.append(f"{collapsed}/{len(rs)} / {cut}/{len(rs)} / {'—' if tree is None else f'{tree:.2f}'}")
        health.append(line)
    pairs = [(a, b) for a, b in EXTREME_PAIRS if a in methods and b in methods]
    paired = [["compression"] + [f"{a} − {b}" for a, b in pairs]]
    for s in sparsities:
        line = [f"{1 / (1 - s):.0f}x"]
        for a, b in pairs:
            by_seed = {r["seed"]: r["acc_after_recovery"] for r in groups.get((s, b), [])}
            diffs = [r["acc_after_recovery"] - by_seed[r["seed"]] for r in groups.get((s, a), []) if r["seed"] in by_seed]
            line.append(_paired_cell(diffs))
        paired.append(line)
    return {"accuracy after recovery (mean ± std over seeds)": acc,
            "paired differences after recovery, same seed (points; mean [95 % t-interval], n seeds)": paired,
            "collapse (seeds with a layer that lost every weight) / no input-output path / mean share of "
            "the layers' spanning trees kept": health}


EXTREME_PAIRS = [("timp", "imp"), ("magnitude-mst", "magnitude"), ("magnitude-mst", "synflow"), ("timp", "synflow")]


def _paired_cell(diffs: list[float]) -> str:
    """Mean paired difference with a 95 % t-interval over seeds (Student's t, n - 1 dof)."""
    if not diffs:
        return "—"
    if len(diffs) < 2:
        return f"{statistics.mean(diffs):+.2f} (n = 1)"
    m, lo, hi = t_interval(diffs)
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}] (n = {len(diffs)})"


def _paired(rows: list[dict], s: float, a: str, b: str) -> PairedResult:
    """The same-seed difference a - b of the accuracy after recovery at sparsity s (95 %
    t-interval; verdict "n/a" with fewer than two seeds in common)."""
    def acc(m: str) -> dict:
        return {r["seed"]: r["acc_after_recovery"] for r in rows if r["method"] == m and r["sparsity"] == s}

    return paired_difference(acc(a), acc(b))


def extreme_verdicts(rows: list[dict], methods: list[str], critical: float | None) -> list[str]:
    """Computed sentences: beyond the critical ratio, where each tree-preserving method is above,
    below or not distinguishable from its peers (same-seed differences, 95 % t-intervals)."""
    if not critical:
        return ["No critical compression ratio was recorded, so nothing is said about beyond it."]
    beyond = sorted({r["sparsity"] for r in rows if 1 / (1 - r["sparsity"]) > critical})
    if not beyond:
        return [f"No cell lies beyond the critical ratio ({critical:.0f}x) yet."]
    span = f"{1 / (1 - beyond[0]):.0f}x-{1 / (1 - beyond[-1]):.0f}x"
    out = []
    for tree, peers in (("timp", ("imp", "magnitude", "synflow")), ("magnitude-mst", ("magnitude", "imp", "synflow"))):
        if tree not in methods:
            continue
        parts, wins_all = [], True
        for peer in peers:
            if peer not in methods:
                continue
            above, below, tied = [], [], []
            for s in beyond:
                d = _paired(rows, s, tree, peer)
                label = f"{1 / (1 - s):.0f}x"
                if d.verdict == "n/a":
                    tied.append(label + " (too few seeds)")
                elif d.verdict == "WINS":
                    above.append(label)
                elif d.verdict == "LOSES":
                    below.append(label)
                else:
                    tied.append(label)
            wins_all &= len(above) == len(beyond)
            parts.append(f"vs {peer}: above at {', '.join(above) or 'none'}; below at {', '.join(below) or 'none'}; "
                         f"not distinguishable at {', '.join(tied) or 'none'}")
        out.append(f"Beyond the critical ratio ({critical:.0f}x; cells {span}), {tree} " + "; ".join(parts) + ". "
                   + ("It beats every peer at every such compression." if wins_all else
                      "So it does not beat all of them there."))
    return out


def extreme_plot(rows: list[dict], methods: list[str], critical: float | None, dense: float, title: str, path: Path) -> None:
    from topoprune.experiments.plots import new_figure, save_figure

    fig, ax = new_figure(figsize=(7, 4.2))
    for i, m in enumerate(methods):
        pts = defaultdict(list)
        for r in rows:
            if r["method"] == m:
                pts[1 / (1 - r["sparsity"])].append(r["acc_after_recovery"])
        if not pts:
            continue
        xs = sorted(pts)
        means = [statistics.mean(pts[x]) for x in xs]
        ax.plot(xs, means, marker="o", ms=3, color=f"C{i}", label=m)
        ax.fill_between(xs, [min(pts[x]) for x in xs], [max(pts[x]) for x in xs], color=f"C{i}", alpha=0.12)
    ax.set_xscale("log", base=2)
    ax.axhline(dense, color="k", lw=0.8, ls=":", label=f"dense {dense:.1f} %")
    if critical:
        ax.axvline(critical, color="k", lw=1, ls="--", label=f"critical ratio {critical:.0f}x")
    ax.set_xlabel("compression (dense weights / remaining), log scale")
    ax.set_ylabel("test accuracy % after recovery\n(mean; band: min-max over seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


# --- damage study ----------------------------------------------------------------------


# --- layer budgets at matched FLOPs ----------------------------------------------------

BUDGET_PEERS = ("fpgm", "tp-global", "fpgm-eagleeye")  # uniform FPGM, torch-pruning global, EagleEye
BUDGET_OURS = ("fpgm-topological", "topological-v2")  # topological allocation, the Topological Pruner v2
BUDGET_EPOCHS = (1, 3, 10)


def _reduction(sparsity: float) -> str:
    return f"{1 / (1 - sparsity):.3g}x"


_METRIC = {"flops": "FLOPs", "macs": "MACs", "params": "parameters"}


def budget_tables(rows: list[dict], methods: list[str], seeds_expected: int,
                  metric: str = "flops") -> dict[str, list[list[str]]]:
    """The matched-FLOPs table (accuracy raw, recalibrated, after 1/3/10 epochs, epochs to recover,
    FLOPs kept, params, latency, prune seconds) and the paired comparison with the best peer."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["sparsity"], r["method"])].append(r)
    what = _METRIC[metric]
    head = [f"{what} reduction", "method", "seeds", f"{what} kept", "target met", "params", "latency b1 ms", "prune s",
            "raw", "recalibrated", *[f"after {k}" for k in BUDGET_EPOCHS], "epochs to recover"]
    table = [head]
    for s in sorted({r["sparsity"] for r in rows}):
        for m in methods:
            rs = groups.get((s, m), [])
            if not rs:
                continue
            curve = lambda k: [r["recovery_curve"][k] if len(r["recovery_curve"]) > k else None for r in rs]  # noqa: E731
            never = sum(r["epochs_to_recover"] is None for r in rs)
            etr = [r["epochs_to_recover"] for r in rs if r["epochs_to_recover"] is not None]
            lat = [(r.get("latency_ms") or [None, None])[1] for r in rs]
            lat = [x.get("1") if isinstance(x, dict) else None for x in lat]
            table.append([
                _reduction(s), m, f"{len(rs)}/{seeds_expected}",
                f"{statistics.mean(r[metric][1] / r[metric][0] for r in rs):.3f}",
                f"{sum(bool((r.get('budget') or {}).get('met')) for r in rs)}/{len(rs)}",
                f"{statistics.mean(r['params'][1] for r in rs):,.0f}", _pm(lat, 3), _pm([r["prune_seconds"] for r in rs], 1),
                _pm([r["acc_pruned_raw"] for r in rs]), _pm([r.get("acc_pruned_recal") for r in rs]),
                *[_pm(curve(k)) for k in BUDGET_EPOCHS],
                (_pm(etr, 1) if etr else "—") + (f" ({never} never)" if never else "")])
    return {f"matched {what}": table}


def budget_verdicts(rows: list[dict], methods: list[str], peers: Sequence[str], ours: Sequence[str],
                    metric: str = "flops") -> tuple[list[list[str]], list[str]]:
    """Per reduction: each method against the best peer (the peer with the highest mean accuracy
    after recovery), same-seed paired differences with a 95 % t-interval, and WINS / TIE / LOSES
    from the interval; plus one computed sentence per reduction for ours."""
    what = _METRIC[metric]
    table = [[f"{what} reduction", "method", "best peer", "difference (points) [95 % t-interval]", "verdict"]]
    sentences = []
    for s in sorted({r["sparsity"] for r in rows}):
        means = {m: statistics.mean([r["acc_after_recovery"] for r in rows if r["method"] == m and r["sparsity"] == s])
                 for m in peers if any(r["method"] == m and r["sparsity"] == s for r in rows)}
        if not means:
            continue
        best = max(means, key=means.get)
        for m in methods:
            if m == best:
                continue
            p = _paired(rows, s, m, best)
            if p.verdict == "n/a":
                table.append([_reduction(s), m, best, "— (fewer than 2 paired seeds)", "—"])
                continue
            verdict = p.verdict
            table.append([_reduction(s), m, best, f"{p.mean:+.2f} [{p.low:+.2f}, {p.high:+.2f}]", verdict])
            if m in ours:
                word = {"WINS": "beats", "LOSES": "loses to", "TIE": "is not distinguishable from"}[verdict]
                sentences.append(f"At {_reduction(s)} fewer {what}, {m} {word} the best peer ({best}) after recovery: "
                                 f"{p.mean:+.2f} points [{p.low:+.2f}, {p.high:+.2f}].")
    return table, sentences


def budget_plot(rows: list[dict], methods: list[str], path: Path, title: str, what: str = "FLOPs") -> None:
    """The per-layer budget (fraction of each layer's units removed, seed mean) per method, one
    panel per FLOPs reduction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({r["sparsity"] for r in rows})
    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 3.6), squeeze=False)
    for ax, s in zip(axes[0], levels):
        for m in methods:
            rs = [r for r in rows if r["method"] == m and r["sparsity"] == s and r.get("budget")]
            if not rs:
                continue
            layers = list(rs[0]["budget"]["removed"])
            frac = [statistics.mean(r["budget"]["removed"][n] / r["budget"]["units"][n] for r in rs) for n in layers]
            ax.plot(range(len(layers)), frac, marker="o", ms=3, label=m)
        ax.set_title(f"{_reduction(s)} fewer {what}")
        ax.set_xlabel("prunable layer (input to output)")
        ax.set_ylabel("fraction of units removed")
        ax.set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def damage_record(run_dir: Path) -> dict:
    from topoprune.experiments.study.damage import damage_summary
    from topoprune.experiments.study.damage_report import correlation_table

    s = damage_summary(run_dir)
    corr = s["correlations"]
    tables = {}
    for key, block in corr["sparsities"].items():
        tables[f"sparsity {key}: Spearman rho [95 % CI], n = {block['n']}"] = correlation_table(
            block, corr["outcomes"], corr["families"])
        if block.get("random_only"):
            alone = block["random_only"]
            tables[f"sparsity {key}, random candidates only: Spearman rho [95 % CI], n = {alone['n']}"] = (
                correlation_table(alone, corr["outcomes"], corr["families"]))
    return {"summary": s, "tables": tables}


# --- main -------------------------------------------------------------------------------------------


def _model_words(model: dict) -> tuple[str, str]:
    """``(name, detail)`` of a config's model for the page's sentences: a registry model's name
    and width; a factory model's key, as the run folder names it (its label, or its callable's
    name), and the factory it comes from."""
    if model.get("factory") is None:
        return model["name"], f"width {model.get('width', 1):g}"
    from topoprune.experiments.factory import factory_key

    return model.get("label") or factory_key(model["factory"]), f"factory {model['factory']}"


def _run_dir(kind: str, config_path: Path, runs: Path) -> tuple[Path, dict]:
    if kind == "study":
        from topoprune.experiments.study import load_study_config

        cfg = load_study_config(config_path)
        return runs / f"{cfg.name}-{cfg.digest()}", cfg.to_dict()
    if kind == "damage":
        from topoprune.experiments.study.damage import load_damage_config

        cfg = load_damage_config(config_path)
        return runs / f"{cfg.name}-{cfg.digest()}", {**cfg.to_dict(), "name": cfg.name,
                                                      "seeds": list(cfg.experiment.seeds)}
    from topoprune.experiments.config import load_config
    from topoprune.experiments.runner import run_dir_for

    cfg = load_config(config_path)
    return run_dir_for(cfg, runs), cfg.to_dict()


def dense_baselines(run_dir: Path) -> list[dict]:
    """Every dense baseline of a run folder (``baseline/<model>/``, or one per seed under
    ``train.seed: each`` in ``baseline/<model>/seed<k>/``), each with its ``model`` folder name and
    ``train_seed`` (None for one baseline per model), in (model, seed) order."""
    found = []
    for path in sorted(run_dir.glob("baseline/**/baseline.json")):
        b = json.loads(path.read_text())
        name = path.parent.name
        per_seed = name.startswith("seed") and name[4:].isdigit()
        model = path.parent.parent.name if per_seed else name
        found.append({**b, "model": model, "train_seed": int(name[4:]) if per_seed else None})
    if not found:
        raise SystemExit(f"{run_dir} has no dense baseline yet: rerun its `topoprune compare` command")
    return sorted(found, key=lambda b: (b["model"], b["train_seed"] is None, b["train_seed"] or 0))


def control_table(rows: list[dict], plan: list, *, target: tuple[str, Callable[[float], str]] | None = None
                  ) -> list[list[str]]:
    """Each method against each of its controls per (model, sparsity): same-seed paired
    difference of the accuracy after recovery (method minus control, points), its 95 % t-interval
    and the verdict, Holm's verdict over every comparison of the table, the smallest difference the
    seeds could detect (beside a tie), and what the verdict means for the method's choice inside
    layers. A control that coincides with another method's cells (a uniform budget's shuffle is
    ``random``) is read from that method's rows, and the table says so; one that is the method
    itself is left out. ``target``: the first column's heading and words for a sparsity (a
    budget run's ``("FLOPs reduction", "2x")``), instead of the sparsity itself."""
    heading, words = target or ("sparsity", lambda s: f"{s:g}")
    per: dict[tuple, dict] = defaultdict(dict)
    for r in rows:
        if r.get("acc_after_recovery") is not None:
            per[(r.get("model"), r["method"], r["sparsity"])][r["seed"]] = r["acc_after_recovery"]
    models = sorted({r.get("model") for r in rows}, key=str)
    several = len(models) > 1
    found = []
    for model in models:
        for s in sorted({r["sparsity"] for r in rows if r.get("model") == model}):
            for c in plan:
                if c.coincides == "self":
                    continue
                other = c.coincides or f"{c.method}+{c.control}"
                found.append((model, s, c, paired_difference(per.get((model, c.method, s), {}),
                                                             per.get((model, other, s), {}))))
    family = holm_family("controls", {str(k): res for k, (*_, res) in enumerate(found)})
    out = [(["model"] if several else []) + [heading, "method", "control", "method - control (points, 95 % interval)",
                                            "verdict", f"Holm over the {family.m}" if family.m else "Holm",
                                            "detectable", "meaning"]]
    for (model, s, c, res), adjusted in zip(found, family.comparisons):
        text = (f"fewer than 2 paired seeds ({res.n})" if res.n < 2 else
                f"{res.mean:+.2f} [{res.low:+.2f}, {res.high:+.2f}] (n={res.n})" + (f"; {res.reason}" if res.reason else ""))
        detectable = (f"{minimum_detectable_effect(res.sd, res.n):.2f}" if res.verdict == "TIE" and res.n >= 2 and res.sd > 0
                      else "—")
        shown = c.control if c.coincides is None else f"{c.control} (= the {c.coincides} rows)"
        out.append(([str(model)] if several else []) + [
            words(s), c.method, shown, text, res.verdict, adjusted.verdict_adjusted, detectable,
            control_meaning(c.control, res.verdict, read_from_baseline=c.coincides is not None) or "—"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["structured", "imp", "study", "extreme", "damage", "budget"])
    ap.add_argument("--peers", default=",".join(BUDGET_PEERS), help="budget: the peers' method labels, comma-separated")
    ap.add_argument("--ours", default=",".join(BUDGET_OURS), help="budget: the topological methods' labels, comma-separated")
    ap.add_argument("config", type=Path)
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default=None, help="results file stem (default: the config's name)")
    args = ap.parse_args()
    run_dir, config = _run_dir(args.kind, args.config, args.runs)
    if not (run_dir / "results.jsonl").exists() and args.kind != "study":
        raise SystemExit(f"{run_dir} has no results yet: run `topoprune compare {args.config} --out {args.runs}`")
    name = args.name or config["name"]
    env = environment()
    import os

    runs_shown = os.path.relpath(args.runs)
    run_command = {"study": f"topoprune study activations {args.config} --out {runs_shown}",
                   "damage": f"topoprune study damage {args.config} --out {runs_shown}"}.get(
        args.kind, f"topoprune compare {args.config} --out {runs_shown}")
    named = f" --name {args.name}" if args.name else ""
    record = {"command": f"{run_command} && python benchmarks/export_run.py {args.kind} {args.config}{named}", **env,
              "run_dir": run_dir.name, "seeds": list(config["seeds"]), "config": config}
    if args.kind == "damage":
        if not (run_dir / "correlations.json").exists():
            raise SystemExit(f"{run_dir} has no results yet: run `{run_command}`")
        d = damage_record(run_dir)
        s = d["summary"]
        exp = config["experiment"]
        expected = len(exp["sparsities"]) * (config["damage"]["random"]["count"] + len(exp["methods"]))
        record.update({"kind": "damage", "rows": s["rows"], "correlations": s["correlations"], "run": s["run"],
                       "verdicts": s["verdicts"], "verdicts_random_only": s["verdicts_random_only"], "cells_done": len(s["rows"]), "cells_total": expected,
                       "complete": len(s["rows"]) == expected, "dense_acc": s["rows"][0]["dense_acc"]})
        tables = d["tables"]
        intro = ["**Verdicts (computed):**", "", *[f"- {v}" for v in s["verdicts"]], "",
                 *(["**Among the random candidates only** (the method choices left out):", "",
                    *[f"- {v}" for v in s["verdicts_random_only"]], ""] if s["verdicts_random_only"] else []),
                 "Model {} ({}) on ".format(*_model_words(exp["models"][0])) +
                 f"{exp['dataset']['name']}, dense test accuracy {s['rows'][0]['dense_acc']:.2f} %; "
                 f"{config['damage']['random']['count']} random candidates per sparsity (layer spread "
                 f"{config['damage']['random']['spread']:g}) plus each method's choice; seed {exp['seeds'][0]}; "
                 f"recovery {exp['recovery']['epochs']} epochs at lr {exp['recovery']['lr']:g}. Rows: scores (before "
                 "retraining) x outcomes; cells: Spearman rho [95 % percentile-bootstrap interval]. The run folder's "
                 "report.md has Kendall's tau, the paired differences with L1 and the scatter plots."]
    elif args.kind == "study":
        from topoprune.experiments.study import summary_dict

        if not (run_dir / "results.jsonl").exists():
            raise SystemExit(f"{run_dir} has no results yet: run `topoprune study activations {args.config} "
                             f"--out {args.runs}`")
        s = summary_dict(run_dir)
        expected = len(config["seeds"]) * len(config["activations"])
        record.update({"kind": "study", "rows": s["rows"], "summary": s["summary"], "table": s["table"],
                       "verdict": s["verdict"], "dataset": s["dataset"], "cells_done": len(s["rows"]),
                       "cells_total": expected, "complete": len(s["rows"]) == expected})
        tables = {"activations": s["table"]}
        intro = [f"**Verdict:** {s['verdict']}", "",
                 f"Synthetic set `{s['dataset']['name']}`: {s['dataset']['points']} points, Betti numbers per class "
                 f"{s['dataset']['betti']} (total {s['dataset']['total_betti']}); MLP hidden "
                 f"{config['hidden']}; target {config['target_accuracy']:g}% test accuracy; "
                 f"the `b0+b1` columns are both classes' Betti numbers after each layer at the end of training."]
    else:
        from topoprune.experiments.store import read_results

        from topoprune.experiments.config import control_plan

        rows = read_results(run_dir)
        plan = control_plan(config)
        expected = (len(config["seeds"]) * (len(config["methods"]) + sum(c.runs for c in plan))
                    * len(config["sparsities"]) * len(config["models"]))
        record.update({"kind": args.kind, "rows": rows, "cells_done": len(rows), "cells_total": expected,
                       "complete": len(rows) == expected})
        dense = dense_baselines(run_dir)
        baseline = dense[0]
        record["dense"] = baseline
        first = [b for b in dense if b["model"] == baseline["model"]]  # the first model's, as the text says
        if first[0]["train_seed"] is not None:
            record["dense_per_train_seed"] = {str(b["train_seed"]): b["test_acc"] for b in first}
        if args.kind == "structured":
            tables = {"structured": structured_table(rows, len(config["seeds"]))}
        elif args.kind == "extreme":
            methods = [m.get("label") or m["name"] for m in config["methods"]]
            tables = extreme_tables(rows, len(config["seeds"]), methods)
            record["critical"] = _critical(run_dir)
            record["methods"] = methods
            record["verdicts"] = extreme_verdicts(rows, methods, record["critical"])
            intro_extra = ["**Computed:**", "", *[f"- {v}" for v in record["verdicts"]], ""]
        elif args.kind == "budget":
            methods = [m.get("label") or m["name"] for m in config["methods"]]
            metric = (config.get("budget") or {}).get("metric", "flops")
            peers, ours = args.peers.split(","), args.ours.split(",")
            tables = budget_tables(rows, methods, len(config["seeds"]), metric)
            paired, sentences = budget_verdicts(rows, methods, peers, ours, metric)
            tables["against the best peer, after recovery (same seed)"] = paired
            record.update(methods=methods, peers=peers, ours=ours, verdicts=sentences, metric=metric)
            intro_extra = ["**Computed:**", "", *([f"- {v}" for v in sentences] or
                                                ["- no paired comparison yet (fewer than 2 seeds per cell)"]), ""]
        else:
            tables = imp_tables(rows, len(config["seeds"]), config["recovery"]["epochs"])
        if any(c.coincides != "self" for c in plan):
            target = ((f"{_METRIC[record['metric']]} reduction", _reduction) if args.kind == "budget" else None)
            tables["against its own controls, after recovery (same seed)"] = control_table(rows, plan, target=target)
        intro = ["Dense baseline ({}, {}): ".format(*_model_words(config["models"][0])) + dense_text(record) + ". " +
                 f"Accuracy in % on the test split, mean ± std over the seeds listed; recovery {config['recovery']['epochs']} "
                 f"epochs at lr {config['recovery']['lr']:g}."
                 + (f" Training ran on {baseline['device']}." if baseline.get("device") not in (None, "cpu") else "")]
        if args.kind in ("extreme", "budget"):
            intro = intro_extra + intro
    record["tables"] = tables
    args.out.mkdir(parents=True, exist_ok=True)
    import shutil

    for png in sorted(run_dir.glob("*.png")):  # the run's plots, beside the results file
        shutil.copyfile(png, args.out / f"{name}_{png.name}")
    if args.kind == "extreme":
        plot = args.out / f"{name}_accuracy_vs_compression.png"
        model, detail = _model_words(config["models"][0])
        extreme_plot(record["rows"], record["methods"], record["critical"], record["dense"]["test_acc"],
                     f"{model} ({detail}) on {config['dataset']['name']}, "
                     f"{len(config['seeds'])} seeds", plot)
        record["plot"] = plot.name
    if args.kind == "budget":
        plot = args.out / f"{name}_layer_budgets.png"
        model, detail = _model_words(config["models"][0])
        budget_plot(record["rows"], record["methods"], plot,
                    f"{model} ({detail}): per-layer budgets, seed mean",
                    _METRIC[record["metric"]])
        record["plot"] = plot.name
    execution = run_execution(run_dir, record.get("rows") or [])
    record["execution"] = execution
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    status = ("complete" if record["complete"] else
              f"**PARTIAL: {record['cells_done']} of {record['cells_total']} cells finished**; rerun the config's "
              "command to resume, then this export")
    md = [f"# {name}", "", *provenance_lines(record), f"Run folder `{run_dir.name}` ({status}).",
          *([execution_text(execution)] if execution["executors"] else []), "", *intro, ""]
    for title, t in tables.items():
        md += [f"## {title}", "", _table_md(t), ""]
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
