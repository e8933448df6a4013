"""The comparison report: ``report.md`` and a self-contained ``report.html`` (plots embedded),
built only from ``results.jsonl`` and the stage artefacts of a run folder, so it can be rebuilt
at any time (``topoprune report RUN_DIR``)."""

from __future__ import annotations

import base64
import html
import statistics
from collections import defaultdict
from pathlib import Path

from ..errors import TopopruneError
from .peers import adjusted_words, peer_comparisons, peer_sentences
from .stats import holm_family, paired_difference
from .store import read_json_file

__all__ = ["build_report", "chance_warnings", "control_verdicts", "mean_std", "summarize", "winners", "write_pages"]


def mean_std(values: list[float | None]) -> tuple[float, float]:
    """``(mean, sample standard deviation)`` of the values that are not ``None`` (the spread
    over seeds every report quotes); the std of one value is 0, and of none ``(nan, nan)``."""
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pm(values: list[float], digits: int = 2) -> str:
    m, s = mean_std(values)
    return "—" if m != m else f"{m:.{digits}f} ± {s:.{digits}f}"


def _short(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (model, method, sparsity), with seeds aggregated."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["method"], r["sparsity"])].append(r)
    out = []
    for (model, method, sparsity), rs in groups.items():
        first = rs[0]
        lat_after = [r["latency_ms"][1] for r in rs if r["latency_ms"][1]]
        out.append({
            "model": model, "method": method, "kind": first["kind"], "sparsity": sparsity,
            "seeds": len(rs), "control": first.get("control"),
            "params": (first["params"][0], statistics.mean(
                r["params"][1] if r["kind"] == "structured" else r["nonzero_params"][1] for r in rs)),
            "macs": (first["macs"][0], statistics.mean(r["macs"][1] for r in rs)),
            "flops": (first["flops"][0], statistics.mean(r["flops"][1] for r in rs)),
            "latency": (first["latency_ms"][0],
                        {b: statistics.mean(x[b] for x in lat_after) for b in lat_after[0]} if lat_after else None),
            "dense": [r["dense_acc"] for r in rs],
            "after_prune": [r.get("acc_pruned_raw", r["acc_after_prune"]) for r in rs],
            "after_prune_recal": [r.get("acc_pruned_recal") for r in rs],  # None: a row without recalibration
            "after_recovery": [r["acc_after_recovery"] for r in rs],
            "epochs_to_recover": [r["epochs_to_recover"] for r in rs],
            "recovered": sum(r["epochs_to_recover"] is not None for r in rs),
            "seconds_to_recover": [r["seconds_to_recover"] for r in rs],
            "prune_seconds": [r["prune_seconds"] for r in rs],
            "np_retained": [r["np_retained"] for r in rs],
            # budget comparisons: seeds whose pruned count missed the target (compared unfairly)
            "missed": sum(bool(r.get("budget")) and not r["budget"].get("met", True) for r in rs),
        })
    return out


def _joined(values) -> str:
    """``a and b`` for values that differ; one value said once when the tied ones are equal."""
    values = list(values)
    return values[0] if len(set(values)) == 1 else " and ".join(values)


def _names(entries: list[dict]) -> str:
    """``**a**``, ``**a** and **b**``, ``**a**, **b** and **c**``."""
    names = [f"**{e['method']}**" for e in entries]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def winners(summary: list[dict], at_chance: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """One computed sentence per (model, sparsity): best recovered accuracy, fastest recovery
    (among the methods: controls are compared with their method in a section of their own).

    Methods that tie are all named: on accuracy when their means agree to the two decimals the
    report prints, on speed when their mean epochs to recover are equal (the seconds, which vary
    with the machine's load, are quoted for each but do not break the tie). A model in
    ``at_chance`` (its baseline is at chance accuracy) is not ranked: every method "recovers" to
    such a baseline at once."""
    sentences = []
    by_cell: dict[tuple, list[dict]] = defaultdict(list)
    for s in summary:
        if not s.get("control"):
            by_cell[(s["model"], s["sparsity"])].append(s)
    for (model, sparsity), entries in sorted(by_cell.items()):
        if model in at_chance:
            sentences.append(f"{model} at sparsity {sparsity:g}: not ranked: the baseline is at chance accuracy, "
                             "so every method reaches it at once and the comparison says nothing.")
            continue
        entries = sorted(entries, key=lambda e: e["method"])
        best = max(round(mean_std(e["after_recovery"])[0], 2) for e in entries)
        top = [e for e in entries if round(mean_std(e["after_recovery"])[0], 2) == best]
        recovered = [e for e in entries if e["recovered"] == e["seeds"]]
        if recovered:
            fewest = min(mean_std(e["epochs_to_recover"])[0] for e in recovered)
            fast = [e for e in recovered if mean_std(e["epochs_to_recover"])[0] == fewest]
            seconds = _joined(f"{mean_std(e['seconds_to_recover'])[0]:.1f} s" for e in fast)
            speed = (f"the fastest to recover (every seed) {'was' if len(fast) == 1 else 'were, tied,'} "
                     f"{_names(fast)}, after {fewest:.1f} epochs ({seconds}) on average")
        else:
            speed = "no method recovered to the dense accuracy within the tolerance on every seed"
        missed = [e["method"] for e in entries if e.get("missed")]
        note = (f" Note: {', '.join(missed)} missed the budget's target on some seeds (see the table), so "
                "their accuracy is not at the same count." if missed else "")
        accuracy = _joined(f"{_pm(e['after_recovery'])} %" for e in top)
        sentences.append(
            f"{model} at sparsity {sparsity:g}: {_names(top)} recovered the highest accuracy"
            f"{'' if len(top) == 1 else ', tied'} ({accuracy}); {speed}.{note}"
        )
    return sentences


def chance_warnings(config: dict, rows: list[dict]) -> dict[str, str]:
    """Model -> the warning sentence, for each model whose dense baseline is at chance accuracy
    (:mod:`.chance`); the number of classes is the config's dataset's. Where each seed trained its
    own baseline (the rows' ``train_seed``), each is checked on its own: one network at chance
    among good ones makes that seed's differences noise, so the model is flagged, naming the seed."""
    from ..data import dataset_info
    from .chance import chance_warning

    try:
        classes = dataset_info(config["dataset"]["name"]).num_classes
    except (KeyError, TypeError, ValueError):  # a dataset registered by a script that is not loaded
        return {}
    out = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model and r.get("dense_acc") is not None]
        if len({r.get("train_seed") for r in mine}) > 1:  # one baseline per seed
            by_seed: dict = {}
            for r in mine:
                by_seed.setdefault(r.get("train_seed"), []).append(r["dense_acc"])
            said = [chance_warning(f"{model} (seed {seed})", statistics.mean(acc), classes)
                    for seed, acc in sorted(by_seed.items(), key=lambda kv: str(kv[0]))]
            said = [w for w in said if w]
            if said:
                out[model] = "; ".join(said)
            continue
        dense = [r["dense_acc"] for r in mine]
        warning = chance_warning(model, statistics.mean(dense), classes) if dense else None
        if warning:
            out[model] = warning
    return out


def _table(summary: list[dict]) -> list[list[str]]:
    head = ["model", "method", "sparsity", "params", "MACs", "FLOPs", "latency b1 / b64 (ms)",
            "acc dense", "acc pruned", "acc pruned + BN recal.", "acc recovered", "epochs to recover", "s to recover",
            "prune s", "NP retained"]
    rows = [head]
    for s in sorted(summary, key=lambda e: (e["model"], e["sparsity"], e["method"])):
        lat0, lat1 = s["latency"]
        if lat0 and lat1:
            lat = (f"{lat0['1']:.2f} → {lat1['1']:.2f} / {lat0['64']:.1f} → {lat1['64']:.1f}")
        elif lat0:
            lat = f"{lat0['1']:.2f} / {lat0['64']:.1f} (masked: unchanged)"
        else:
            lat = "—"
        ep = [e for e in s["epochs_to_recover"] if e is not None]
        ep_text = (_pm(ep, 1) if ep else "—") + (f" ({s['recovered']}/{s['seeds']} recovered)"
                                                 if s["recovered"] < s["seeds"] else "")
        rows.append([
            s["model"], s["method"] + (f" (target missed on {s['missed']}/{s['seeds']} seeds)" if s.get("missed") else ""),
            f"{s['sparsity']:g}",
            f"{_short(s['params'][0])} → {_short(s['params'][1])}",
            f"{_short(s['macs'][0])} → {_short(s['macs'][1])}",
            f"{_short(s['flops'][0])} → {_short(s['flops'][1])}", lat,
            _pm(s["dense"]), _pm(s["after_prune"]), _pm(s["after_prune_recal"]), _pm(s["after_recovery"]), ep_text,
            _pm([x for x in s["seconds_to_recover"] if x is not None], 1),
            _pm(s["prune_seconds"], 2), _pm(s["np_retained"], 3),
        ])
    return rows


def _markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


# --- controls ------------------------------------------------------------------------------------


_MEANING = {
    "shuffle": {"WINS": "its choice inside layers matters", "TIE": "no effect of its choice inside layers found",
                "LOSES": "its choice inside layers is worse than random"},
    "magnitude-at-budget": {"WINS": "it beats the plainest choice at the same budget",
                            "TIE": "it ties the plainest choice at the same budget",
                            "LOSES": "it loses to the plainest choice at the same budget"},
}


def control_meaning(control: str, verdict: str, *, read_from_baseline: bool = False) -> str | None:
    """What a method-vs-control verdict says, in words (None where there is no verdict). A control
    read from a baseline's cells is a uniform budget's shuffle (the random baseline): the budget
    its TIE speaks of is the peers' own, and the words add that. A TIE says no effect was found,
    not that there is none (the detectable difference beside it says how large one could hide)."""
    words = _MEANING.get(control, {}).get(verdict)
    if words is None:
        return None
    return words + ("; a uniform budget, as the peers'" if read_from_baseline else "")


def control_verdicts(config: dict, rows: list[dict]) -> list[str]:
    """The controls section: for every method and control of the config's ``controls``, per
    (model, sparsity), the same-seed paired difference of the accuracy after recovery (method
    minus control), its 95 % t-interval and verdict, the verdict adjusted with Holm's method over
    the family of every method-vs-control comparison of the run, the detectable-effect sentence
    beside a TIE, and which controls were not run because they would repeat cells the config
    runs anyway."""
    from .config import control_plan

    plans = control_plan(config)
    if not plans:
        return []
    coverage = _coverage(config, short=True)
    acc: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in rows:
        acc[(r["model"], r["method"], r["sparsity"])][r["seed"]] = r["acc_after_recovery"]
    cells = sorted({(r["model"], r["sparsity"]) for r in rows if not r.get("control")})
    lines: list[str | tuple] = []  # a sentence, or (where, control, comparison key) filled in below
    results = {}
    for plan in plans:
        m, c = plan.method, plan.control
        if plan.coincides == "self":
            lines.append(f"{m}'s {c} control is {m} itself (the same layer budget, chosen the same way): "
                         "not run, no verdict.")
            continue
        reference, named = plan.key, f"its {c} control ({plan.key})"
        if plan.coincides is not None:
            lines.append(f"{m}'s {c} control is the {plan.coincides} method at the same budget (a uniform layer "
                         f"budget filled at random): not run twice; {plan.coincides}'s cells serve as it.")
            reference, named = plan.coincides, f"its {c} control ({plan.coincides} at the same budget)"
        for model, sparsity in cells:
            key = f"{model} at sparsity {sparsity:g}: {m} vs {c}"
            results[key] = paired_difference(acc.get((model, m, sparsity), {}),
                                             acc.get((model, reference, sparsity), {}))
            lines.append((f"{model} at sparsity {sparsity:g}: **{m}** vs {named}", c, key))
    family = holm_family("every method-vs-control row of this run", results) if results else None
    adjusted = {a.name: a for a in family.comparisons} if family else {}
    out = []
    if family and family.m:
        out.append(f"Holm's adjustment runs over the family of {family.m} method-vs-control comparison"
                   f"{'' if family.m == 1 else 's'} with at least 2 seeds: {family.family}.")
    for line in lines:
        if isinstance(line, str):
            out.append(line)
            continue
        where, c, key = line
        p = results[key]
        if p.n == 0:
            out.append(f"{where}: no seed with both rows yet.")
        elif p.n == 1:
            out.append(f"{where}: {p.mean:+.2f} points with 1 seed: no interval, no verdict (a verdict needs "
                       "at least 2 seeds).")
        else:
            a = adjusted[key]
            v = p.verdict
            after = ("" if a.verdict_adjusted == v else
                     f" (after Holm's adjustment: {_MEANING[c][a.verdict_adjusted]})")
            out.append(f"{where}: {p.mean:+.2f} points, 95 % t-interval [{p.low:+.2f}, {p.high:+.2f}] over "
                       f"{p.n} seeds (same-seed paired, method minus control, accuracy after recovery; "
                       f"{coverage}): **{v}**: {_MEANING[c][v]}{after}. Verdicts: "
                       f"{adjusted_words(a, family.m)}.")
    return out


def _coverage(config: dict, *, short: bool = False) -> str:
    """What the seeds of a run vary, so what its intervals and spreads cover."""
    each = (config.get("train") or {}).get("seed") == "each"
    if short:
        return ("seeds vary the trained network, pruning and recovery" if each else
                "one trained network; seeds vary pruning and recovery only")
    if each:
        return ("Intervals and spreads over seeds: seeds vary the trained network, pruning and recovery "
                "(train.seed: each: every seed trains its own dense baseline, and its cells start from it).")
    return ("Intervals and spreads over seeds: one trained network; seeds vary pruning and recovery only "
            "(the dense baseline is trained once, with the config's train.seed, or loaded).")


# --- plots ---------------------------------------------------------------------------------------


def _plots(run_dir: Path, rows: list[dict], summary: list[dict]) -> list[tuple[str, Path]]:
    from matplotlib.ticker import MaxNLocator

    from .plots import new_figure, plot_ga_trajectories, save_figure

    out: list[tuple[str, Path]] = []
    models = sorted({r["model"] for r in rows})
    methods = sorted({r["method"] for r in rows})
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}

    def save(fig, name: str, title: str) -> None:
        out.append((title, save_figure(fig, run_dir / name, dpi=100)))

    for model in models:
        analysis = _analysis(run_dir, model)
        entries = [s for s in summary if s["model"] == model]
        # accuracy vs sparsity
        fig, ax = new_figure(figsize=(6, 3.6))
        for method in methods:
            es = sorted((e for e in entries if e["method"] == method), key=lambda e: e["sparsity"])
            if es:
                xs = [e["sparsity"] for e in es]
                m = [mean_std(e["after_recovery"])[0] for e in es]
                sd = [mean_std(e["after_recovery"])[1] for e in es]
                ax.errorbar(xs, m, yerr=sd, marker="o", capsize=3, label=method, color=colors[method])
        if entries:
            ax.axhline(mean_std(entries[0]["dense"])[0], color="k", ls=":", label="dense")
        ax.set_xlabel("sparsity")
        ax.set_ylabel("test accuracy after recovery (%)")
        ax.set_title(f"{model}: accuracy vs sparsity (mean ± std over seeds)")
        ax.legend(fontsize=7, ncol=2)
        save(fig, f"{model}_accuracy_vs_sparsity.png", f"{model}: accuracy vs sparsity")
        # recovery curves, one panel per sparsity
        sparsities = sorted({r["sparsity"] for r in rows if r["model"] == model})
        fig, axes = new_figure(1, len(sparsities), figsize=(4.5 * len(sparsities), 3.4), squeeze=False)
        for ax, sp in zip(axes[0], sparsities):
            for method in methods:
                curves = [r["recovery_curve"] for r in rows if r["model"] == model and r["method"] == method
                          and r["sparsity"] == sp]
                if curves:
                    n = min(len(c) for c in curves)
                    ax.plot(range(n), [statistics.mean(c[i] for c in curves) for i in range(n)],
                            marker=".", label=method, color=colors[method])
            dense = [r["dense_acc"] for r in rows if r["model"] == model]
            ax.axhline(statistics.mean(dense), color="k", ls=":", label="dense")
            ax.set_title(f"sparsity {sp:g}", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("recovery epoch")
            ax.set_ylabel("test accuracy (%)")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{model}: recovery curves (mean over seeds)", fontsize=10)
        save(fig, f"{model}_recovery.png", f"{model}: recovery curves")
        # per-layer NP before / after at the highest sparsity
        top = max(sparsities)
        layers = list(analysis["np"])
        fig, ax = new_figure(figsize=(7, 3.6))
        ax.plot(layers, [analysis["np"][n] for n in layers], "k-o", label="dense")
        for method in methods:
            rs = [r for r in rows if r["model"] == model and r["method"] == method and r["sparsity"] == top]
            if rs:
                ax.plot(layers, [statistics.mean(r["np_after"].get(n, float("nan")) for r in rs) for n in layers],
                        marker=".", label=method, color=colors[method])
        ax.set_ylabel("normalized NP")
        ax.set_title(f"{model}: per-layer neural persistence, dense vs sparsity {top:g}")
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.legend(fontsize=7, ncol=2)
        save(fig, f"{model}_np_layers.png", f"{model}: per-layer NP before and after")
        # persistence diagram of one layer
        rs = [r for r in rows if r["model"] == model and r["sparsity"] == top and r["seed"] == rows[0]["seed"]]
        if rs:
            layer = rs[0]["diagram_layer"]
            fig, ax = new_figure(figsize=(5, 3.6))
            dense_deaths = analysis["layers"].get(layer, {}).get("deaths", [])
            ax.scatter(range(len(dense_deaths)), sorted(dense_deaths), s=6, color="k", label="dense")
            for r in rs:
                d = sorted(r["diagram_deaths"])
                ax.scatter(range(len(d)), d, s=4, label=r["method"], color=colors[r["method"]])
            ax.set_xlabel("diagram point (births all 1), sorted")
            ax.set_ylabel("death = normalized tree edge")
            ax.set_title(f"{model} {layer}: 0-dim diagram, dense vs sparsity {top:g}", fontsize=9)
            ax.legend(fontsize=6, ncol=2)
            save(fig, f"{model}_diagram.png", f"{model}: persistence diagram of {layer}")
        # critical compression vs achieved
        if "critical_paper" in analysis:
            crit = analysis["critical_paper"]["layers"]
            names = list(crit)
            fig, ax = new_figure(figsize=(7, 3.6))
            ax.plot(names, [crit[n] for n in names], "k-o", label="critical ratio (paper)")
            for method in methods:
                rs = [r for r in rows if r["model"] == model and r["method"] == method and r["sparsity"] == top]
                if rs:
                    ax.plot(names, [statistics.mean(r["compression"].get(n, float("nan")) for r in rs) for n in names],
                            marker=".", label=f"{method} achieved", color=colors[method])
            ax.set_yscale("log")
            ax.set_ylabel("compression (edges before / after)")
            ax.set_title(f"{model}: critical vs achieved compression at sparsity {top:g}", fontsize=9)
            ax.tick_params(axis="x", rotation=45, labelsize=7)
            ax.legend(fontsize=6, ncol=2)
            save(fig, f"{model}_critical.png", f"{model}: critical vs achieved compression")
        # GA fitness trajectories
        ga = [r for r in rows if r["model"] == model and r.get("ga") and r["sparsity"] == top]
        if ga:
            path = plot_ga_trajectories(ga[0]["ga"], run_dir / f"{model}_ga_fitness.png",
                                        f"{model}: Topological Pruner, sparsity {top:g}, seed {ga[0]['seed']}")
            out.append((f"{model}: GA fitness trajectories", path))
    return out


def _analysis(run_dir: Path, model: str) -> dict:
    """The dense model's analysis the plots draw: ``analysis/<model>.json``, or under
    ``train.seed: each`` that of the lowest seed's baseline (``analysis/<model>/seed<k>.json``)."""
    record = read_json_file(run_dir / "analysis" / f"{model}.json", "analysis")
    if record is None:
        per_seed = sorted((run_dir / "analysis" / model).glob("seed*.json"), key=lambda p: int(p.stem[4:]))
        record = read_json_file(per_seed[0], "analysis") if per_seed else None
    return record or {}


def _recalibration_note(batches: int | None) -> str:
    """What the two 'acc pruned' columns mean under the run's ``recovery.recalibrate_bn``."""
    if batches is None:
        return ("This run predates BatchNorm recalibration: 'acc pruned + BN recal.' was not measured "
                "and recovery started from the pruned model as it was.")
    if batches == 0:
        return ("BatchNorm recalibration was off (recovery.recalibrate_bn: 0): both 'acc pruned' columns "
                "are the pruned model as it was, and recovery started from it.")
    return (f"'acc pruned' is right after pruning; 'acc pruned + BN recal.' after re-estimating every "
            f"BatchNorm layer's running statistics on {batches} training batches (equal for a model "
            "without BatchNorm). Recovery starts from the recalibrated model, and its curve's first "
            "point is that accuracy. Training-mode BatchNorm normalizes with each batch's own statistics, "
            "so recalibration changes no weight of the recovery: only the running statistics differ, "
            "by (1 - momentum)^steps of their first difference, so the trajectory is the same beyond "
            "its first steps.")


def _schedule_note(config: dict) -> str:
    """What the iterative methods did, and that every one-shot cell recovered as long."""
    scheduled = [m for m in config.get("methods", []) if isinstance(m, dict) and m.get("schedule")]
    if not scheduled:
        return ""
    extra = max((m["schedule"]["steps"] - 1) * m["schedule"]["epochs"] for m in scheduled)
    epochs = config["recovery"]["epochs"]
    parts = [f"{m.get('label') or m['name']} prunes in {m['schedule']['steps']} steps with "
             f"{m['schedule']['epochs']} epoch(s) of fine-tuning between them" for m in scheduled]
    return (f" {'; '.join(parts)}. The one-shot methods and the controls recover for {epochs + extra} epochs "
            f"instead of {epochs}, so every method trains {epochs + extra} epochs after its first removal.")


def _budget_note(budget: dict | None) -> str:
    if not budget:
        return ""
    metric = {"flops": "FLOPs", "macs": "MACs", "params": "parameters"}.get(budget.get("metric"), "count")
    return (f" This is a budget comparison: 'sparsity' is the fraction of the dense model's {metric} removed, "
            f"every structured method prunes to that count (at most the target, within 1 % below), and each "
            "row's allocation and per-layer removals are in results.jsonl (`budget`).")


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; returns both paths."""
    from .store import RunStore

    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    config = store.read_json("config.json")
    if config is None:
        raise TopopruneError(f"{run_dir} is not a run folder (no config.json)")
    try:  # the report needs these of config.json; a damaged one is named, not a KeyError
        _ = (config["name"], config["seeds"], config["dataset"]["name"], config["recovery"]["epochs"],
             config["recovery"]["lr"], config["recovery"]["tolerance"])
    except (KeyError, TypeError):
        raise TopopruneError(f"{run_dir / 'config.json'} is damaged (it lacks the config's name, seeds, "
                             "dataset or recovery); rerun `topoprune compare CONFIG --out ... --repair`") from None
    rows = store.read_results()
    if not rows:
        raise TopopruneError(f"{run_dir} has no results.jsonl rows yet; run `topoprune compare` first")
    summary = summarize(rows)
    table = _table(summary)
    warned = chance_warnings(config, rows)
    sentences = winners(summary, set(warned))
    plots = _plots(run_dir, rows, summary)
    seeds = ", ".join(str(s) for s in config["seeds"])
    intro = (f"Config `{config['name']}` on `{config['dataset']['name']}`; seeds {seeds}; "
             f"recovery: {config['recovery']['epochs']} epochs at lr {config['recovery']['lr']}, "
             f"tolerance {config['recovery']['tolerance']} points. Accuracy is test accuracy in %, "
             "mean ± std over seeds. " + _coverage(config) + " MACs follow NNI's rule, FLOPs torch's flop counter. For "
             "unstructured methods, parameters are nonzero weights and the model is masked, not smaller. "
             + _recalibration_note(config["recovery"].get("recalibrate_bn"))
             + _budget_note(config.get("budget")) + _schedule_note(config))
    sections: list[tuple[str, list]] = [("Warning", [f"**{w}**" for w in warned.values()])] if warned else []
    sections.append(("Which method won", sentences))
    paired = peer_sentences(peer_comparisons(rows, at_chance=set(warned)), _coverage(config, short=True))
    if paired:
        sections.append(("Paired comparisons", paired))
    controls = control_verdicts(config, rows)
    if controls:
        sections.append(("Controls: its choice inside layers, or only its layer budget?", controls))
    sections.append(("Summary", table))
    return write_pages(run_dir, f"topoprune comparison: {config['name']}", intro, sections, plots)


def write_pages(run_dir: Path, title: str, intro: str, sections: list[tuple[str, list]],
                plots: list[tuple[str, Path]], *, stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.md`` and a self-contained ``<stem>.html`` (plots inlined as base64, no
    network) into ``run_dir``. A section is a list of sentences (a bullet list, ``**bold**``
    allowed) or a table (a list of rows, the first the header)."""

    def is_table(body: list) -> bool:
        return bool(body) and isinstance(body[0], list)

    md = [f"# {title}", "", intro, ""]
    for heading, body in sections:
        md += [f"## {heading}", ""]
        md += [_markdown_table(body)] if is_table(body) else [f"- {s}" for s in body]
        md += [""]
    if plots:
        md += ["## Plots", ""]
        md += [f"### {t}\n\n![{t}]({path.name})\n" for t, path in plots]
    md_path = run_dir / f"{stem}.md"
    md_path.write_text("\n".join(md) + "\n")

    def bold(text: str) -> str:
        """The Markdown the pages use inline (``**bold**``, ```code```) as HTML, the rest escaped."""
        parts = html.escape(str(text)).split("**")
        text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
        parts = text.split("`")
        if len(parts) % 2 == 0:  # an unpaired backtick stays as it is
            return text
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    def cell(text: str, tag: str = "td") -> str:
        return f"<{tag}>{bold(text)}</{tag}>"

    blocks = []
    for heading, body in sections:
        if is_table(body):
            rows_html = "".join("<tr>" + "".join(cell(c, "th" if i == 0 else "td") for c in r) + "</tr>"
                                for i, r in enumerate(body))
            blocks.append(f"<h2>{html.escape(heading)}</h2><table>{rows_html}</table>")
        else:
            blocks.append(f"<h2>{html.escape(heading)}</h2><ul>{''.join(f'<li>{bold(s)}</li>' for s in body)}</ul>")
    images = "".join(
        f"<h3>{html.escape(t)}</h3><img alt='{html.escape(t)}' src='data:image/png;base64,"
        f"{base64.b64encode(p.read_bytes()).decode()}'/>" for t, p in plots)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#eee}}img{{max-width:100%;margin:1em 0}}</style>
</head><body><h1>{html.escape(title)}</h1><p>{bold(intro)}</p>
{''.join(blocks)}{"<h2>Plots</h2>" + images if plots else ""}</body></html>"""
    html_path = run_dir / f"{stem}.html"
    html_path.write_text(page)
    return md_path, html_path
