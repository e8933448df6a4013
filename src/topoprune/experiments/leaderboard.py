"""The leaderboard of an evaluation: per task and target, every method's accuracy, the
candidate against the best baseline and against its own controls, with Holm-adjusted verdicts.

Rules fixed before any run:

- **The best baseline** of a (task, target) is the baseline with the highest mean accuracy after
  recovery (the candidate and the controls excluded; equal means go to the first name in
  alphabetical order).
- **The candidate's family**: every comparison of the candidate in the evaluation (against the
  best baseline, and against each control that ran, at every task and target). Holm's method
  adjusts their p-values together, so "WINS" after adjustment holds for the evaluation as a whole.
- **A baseline's family**: the baselines against the best baseline at one (task, target).
- Beside each TIE: the smallest difference the seeds could have detected (80 % power, 5 %
  two-sided, from the spread of the paired differences).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .peers import best_peer
from .report import _coverage, chance_warnings, control_meaning  # the same words as a comparison report
from .stats import AdjustedComparison, PairedResult, holm_family, minimum_detectable_effect, paired_difference

__all__ = ["TaskRows", "leaderboard_sections", "write_leaderboard", "target_label"]


@dataclass
class TaskRows:
    """One task of an evaluation as the leaderboard reads it."""

    name: str
    description: str
    config: dict  # the task's config as saved in its run folder
    rows: list[dict]
    baselines: list[str]  # method keys
    run_dir: Path
    failures: list[dict] = field(default_factory=list)
    candidates: list[str] | None = None  # the candidates this task ran (None: every non-baseline method)


def target_label(config: dict, sparsity: float) -> str:
    """``"2x fewer FLOPs"`` under a budget, else ``"sparsity 0.9 (10x)"``."""
    ratio = 1 / (1 - sparsity)
    words = f"{ratio:.3g}x"
    budget = config.get("budget")
    if budget:
        metric = {"flops": "FLOPs", "macs": "MACs", "params": "parameters"}.get(budget.get("metric", "flops"), "FLOPs")
        return f"{words} fewer {metric}"
    return f"sparsity {sparsity:g} ({words})"


def _pm(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _interval(r: PairedResult) -> str:
    if r.n < 2:
        return "—" if r.n == 0 else f"{r.mean:+.2f} (1 seed)"
    flat = " (every seed the same: no spread)" if r.sd == 0 else ""
    return f"{r.mean:+.2f} [{r.low:+.2f}, {r.high:+.2f}]{flat}"


def _detectable(a: AdjustedComparison, m: int) -> float | None:
    """Beside a Holm-adjusted TIE, the smallest true difference the seeds could have detected
    (80 % power, two-sided, from the spread of the paired differences); None beside a verdict,
    with fewer than 2 seeds, or with no spread. Beside a raw TIE it is sized at 5 %; beside a TIE
    that only the adjustment made of a raw WINS or LOSES, at the family's strictest level,
    5 % / ``m`` (the level Holm's first step tests at): at 5 % that difference was seen, so a size
    at 5 % would claim the seeds could detect less than they just failed to confirm."""
    r = a.result
    if a.verdict_adjusted != "TIE" or r.n < 2 or r.sd == 0:
        return None
    alpha = 1 - r.level
    return minimum_detectable_effect(r.sd, r.n, alpha=alpha if r.verdict == "TIE" else alpha / max(m, 1))


def _mde(a: AdjustedComparison, m: int) -> str:
    r = a.result
    if r.n < 2 or a.verdict_adjusted != "TIE":
        return ""
    if r.sd == 0:  # every seed gave the same difference: no spread to size an effect from
        return "n/a"
    return f"{_detectable(a, m):.2f}" + ("*" if r.verdict != "TIE" else "")


def _tie_words(ties: list, m: int) -> str:
    """What a count of TIEs can say: the range of differences the seeds could have detected."""
    sizes = [x for a in ties for x in [_detectable(a, m)] if x is not None]
    if not sizes:
        return ""
    return (f" (a TIE means no difference was found, not that there is none: these seeds could detect "
            f"{min(sizes):.2f} to {max(sizes):.2f} points)" if len(sizes) > 1 else
            f" (a TIE means no difference was found, not that there is none: these seeds could detect "
            f"{sizes[0]:.2f} points)")


def _task_candidates(task: TaskRows, candidates: list[str]) -> list[str]:
    return [c for c in candidates if task.candidates is None or c in task.candidates]


def leaderboard_sections(tasks: list[TaskRows], candidates: str | list[str], *,
                         collect: list[dict] | None = None) -> tuple[list[str], list[tuple[str, list]]]:
    """The summary bullets and the sections (tables and bullets) of the leaderboard. ``collect``,
    when given, receives every comparison of the candidates as a dict (task, target, method,
    against, reference, n, mean, low, high, verdict, p_holm, verdict_holm, detectable)."""
    candidates = [candidates] if isinstance(candidates, str) else list(candidates)
    comparisons: dict[str, dict[str, PairedResult]] = {c: {} for c in candidates}
    where: dict[str, tuple] = {}
    per_task = []
    for task in tasks:
        acc: dict[float, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
        for r in task.rows:
            acc[r["sparsity"]][r["method"]][r["seed"]] = r["acc_after_recovery"]
        targets = sorted({r["sparsity"] for r in task.rows} | set(task.config.get("sparsities", [])))
        blocks = []
        for s in targets:
            methods = acc.get(s, {})
            target = target_label(task.config, s)
            means = {m: statistics.mean(v.values()) for m, v in methods.items() if m in task.baselines and v}
            best = best_peer(means) if means else None
            baseline_results = {}
            if best is not None:
                for m in task.baselines:
                    if m != best and m in methods:
                        baseline_results[m] = paired_difference(methods[m], methods[best])
            for c in _task_candidates(task, candidates):
                if best is not None and c in methods:
                    key = f"{task.name} at {target}: {c} vs best baseline {best}"
                    comparisons[c][key] = paired_difference(methods[c], methods[best])
                    where[key] = (task.name, s, "best", best)
                for control, reference in _control_refs(task.config, c):
                    if reference in methods and c in methods:
                        key = f"{task.name} at {target}: {c} vs its {control} control"
                        comparisons[c][key] = paired_difference(methods[c], methods[reference])
                        where[key] = (task.name, s, "control", control)
            family = holm_family(f"the baselines against the best baseline ({best}) of {task.name} at {target}",
                                 baseline_results) if baseline_results else None
            blocks.append((s, methods, best, family))
        per_task.append((task, blocks))
    families = {c: holm_family(f"every comparison of {c} in this evaluation", comparisons[c])
                for c in candidates if comparisons[c]}
    adjusted = {name: a for f in families.values() for a in f.comparisons for name in [a.name]}
    if collect is not None:
        for c, family in families.items():
            for a in family.comparisons:
                task_name, s, kind, ref = where[a.name]
                r = a.result
                config = next(t.config for t in tasks if t.name == task_name)
                size = _detectable(a, family.m)
                collect.append({"task": task_name, "sparsity": s, "target": target_label(config, s), "method": c,
                                "against": "best baseline" if kind == "best" else f"{ref} control",
                                "reference": ref if kind == "best" else f"{c}+{ref}", "n": r.n, "mean": r.mean,
                                "low": r.low, "high": r.high, "verdict": r.verdict, "p_holm": a.p_adjusted,
                                "verdict_holm": a.verdict_adjusted, "detectable": size})
    summary, sections = [], []
    for c in candidates:
        own = families.get(c)
        names = {a.name for a in own.comparisons} if own is not None else set()
        mine = {k: a for k, a in adjusted.items() if k in names}
        best_n = [a for k, a in mine.items() if where[k][2] == "best" and a.p_adjusted is not None]
        wins = sum(a.verdict_adjusted == "WINS" for a in best_n)
        loses = sum(a.verdict_adjusted == "LOSES" for a in best_n)
        failed = any(str(f.get("method", "")).split("+")[0] == c for t in tasks for f in t.failures)
        none = "its cells failed: see \"Failed cells\"" if failed else "no comparison has two seeds yet"
        summary.append(f"Against the best baseline, after Holm's adjustment over {own.m if own else 0} comparison(s) "
                       f"({own.family if own else none}): **{c}** wins at {wins}, loses "
                       f"at {loses} and ties at {len(best_n) - wins - loses} of {len(best_n)} targets with a verdict.")
        shuffles = [a for k, a in mine.items() if where[k][2] == "control" and where[k][3] == "shuffle"
                    and a.p_adjusted is not None]
        if shuffles:
            counts = defaultdict(int)
            for a in shuffles:
                counts[a.verdict_adjusted] += 1
            ties = [a for a in shuffles if a.verdict_adjusted == "TIE"]
            summary.append(f"**{c}** against its shuffle control (its own layer budget, units or weights drawn at "
                           f"random): its choice inside layers matters at {counts['WINS']}, no effect of its choice "
                           f"was found at {counts['TIE']}{_tie_words(ties, own.m)}, and it is worse than random inside "
                           f"layers at {counts['LOSES']} of {len(shuffles)} targets (Holm-adjusted).")
    for task in tasks:  # a dense network at chance makes its task's differences noise
        for warning in chance_warnings(task.config, task.rows).values():
            summary.append(f"**Warning ({task.name}):** {warning}.")
    failures = [f for t in tasks for f in t.failures]
    if failures:
        failed = [f for f in failures if not f.get("skipped")]
        summary.append(f"**{len(failed)} cell(s) failed** and {len(failures) - len(failed)} control cell(s) were "
                       "skipped because their method cell failed: see \"Failed cells\"; their rows are missing "
                       "from the tables.")
    for task, blocks in per_task:
        mine = _task_candidates(task, candidates)
        table = [["target", "method", "seeds", "accuracy after recovery (%)", "minus best baseline [95 % CI]",
                  "verdict (raw / Holm)", "detectable (points)"]]
        controls_table = [["target", "method", "control", "method minus control [95 % CI]", "verdict (raw / Holm)",
                           "meaning (Holm)", "detectable (points)"]]
        failed_at = defaultdict(int)
        for f in task.failures:
            failed_at[(f["sparsity"], f["method"])] += 1
        for s, methods, best, family in blocks:
            fam = {c.name: c for c in family.comparisons} if family else {}
            target = target_label(task.config, s)
            for m in [*task.baselines, *mine]:
                seeds = methods.get(m, {})
                note = f" ({failed_at[(s, m)]} failed)" if failed_at.get((s, m)) else ""
                shown = f"**{m}**" if m in mine else m
                cells = [target, shown, f"{len(seeds)}{note}", _pm(list(seeds.values()))]
                if m == best:
                    table.append([target, f"{m} (best baseline)", *cells[2:], "—", "—", ""])
                    continue
                a = adjusted.get(f"{task.name} at {target}: {m} vs best baseline {best}") if m in mine else fam.get(m)
                if a is None:
                    table.append([*cells, "—", "—", ""])
                    continue
                r = a.result
                m_family = families[m].m if m in mine else family.m
                table.append([*cells, _interval(r), f"{r.verdict} / {a.verdict_adjusted}", _mde(a, m_family)])
            for c in mine:
                for control, reference in _control_refs(task.config, c):
                    a = adjusted.get(f"{task.name} at {target}: {c} vs its {control} control")
                    if a is None:
                        continue
                    r = a.result
                    own = reference == f"{c}+{control}"
                    meaning = control_meaning(control, a.verdict_adjusted, read_from_baseline=not own) or "no verdict"
                    shown = control if own else f"{control} (= {reference})"
                    controls_table.append([target, f"**{c}**", shown, _interval(r), f"{r.verdict} / {a.verdict_adjusted}",
                                           meaning, _mde(a, families[c].m)])
        intro = [f"{task.description.rstrip('.')}. Run folder: {task.run_dir.name}; intervals over seeds: "
                 f"{_coverage(task.config, short=True)}."]
        sections.append((f"{task.name}", intro))
        sections.append((f"{task.name}: against the baselines", table))
        if len(controls_table) > 1:
            sections.append((f"{task.name}: against {'its' if len(mine) == 1 else 'their'} own controls",
                             controls_table))
        coincide = [line for c in mine for line in _coinciding(task.config, c)]
        if coincide:
            sections.append((f"{task.name}: controls not run twice", coincide))
    if failures:
        lines = []
        for t in tasks:
            for f in t.failures:
                what = "skipped: its method cell failed" if f.get("skipped") else f["error"]
                lines.append(f"{t.name}: {f['method']} at {target_label(t.config, f['sparsity'])}, seed {f['seed']}: "
                             f"{what}")
        sections.append(("Failed cells", lines))
    return summary, sections


def _control_refs(config: dict, candidate: str) -> list[tuple[str, str]]:
    """(control, the row label that serves as it): the control's own cells, or the baseline whose
    cells it would repeat (a uniform structured method's shuffle is random pruning)."""
    from .config import control_plan

    return [(p.control, p.key if p.coincides is None else p.coincides) for p in control_plan(config)
            if candidate == p.method and p.coincides != "self"]


def _coinciding(config: dict, candidate: str) -> list[str]:
    """The candidate's controls that repeat a baseline's cells, said once."""
    from .config import control_plan

    out = []
    for plan in control_plan(config):
        if plan.method != candidate or plan.coincides is None:
            continue
        if plan.coincides == "self":
            out.append(f"{candidate}'s {plan.control} control is {candidate} itself (the same layer budget, filled the "
                       "same way): not run, no verdict.")
        else:
            out.append(f"{candidate}'s {plan.control} control is the {plan.coincides} baseline at the same budget: not "
                       f"run twice; {plan.coincides}'s cells serve as it in the controls table.")
    return out


def write_leaderboard(folder: Path, *, title: str, intro: str, tasks: list[TaskRows],
                      candidates: str | list[str], collect: list[dict] | None = None) -> tuple[Path, Path]:
    """Write ``leaderboard.md`` and ``leaderboard.html`` into ``folder`` (``collect``: see
    :func:`leaderboard_sections`)."""
    from .report import write_pages

    names = [candidates] if isinstance(candidates, str) else list(candidates)
    summary, sections = leaderboard_sections(tasks, names, collect=collect)
    rules = [
        "The best baseline of a target is the baseline with the highest mean accuracy after recovery (the "
        "candidates and their controls excluded). Differences are paired by seed (same seed, same trained network "
        "under `train.seed: each`), with 95 % t-intervals; WINS / LOSES when the interval excludes 0.",
        f"Holm's adjustment runs over every comparison of {'the candidate' if len(names) == 1 else 'each candidate'} "
        "in this evaluation together; a baseline's verdict is adjusted over the baselines of its own target.",
        "\"detectable\": beside a TIE, the smallest difference the seeds could have detected (80 % power, two-sided "
        "5 %, from the spread of the paired differences): a TIE says no more than that. Marked *: a TIE that only "
        "Holm's adjustment made of a raw WINS or LOSES, sized at the family's strictest level (5 % / the number of "
        "comparisons in it), since at 5 % that difference was seen.",
    ]
    return write_pages(folder, title, intro, [("Verdict", summary), ("How to read it", rules), *sections], [],
                       stem="leaderboard")
