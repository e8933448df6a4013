"""The damage study's analysis over the random candidates alone (issue #15): a score that
separates the method choices from the random prunings correlates over all candidates, and the
random-only block shows whether it still ranks prunings of one kind. Synthetic rows, no training."""

import numpy as np

from topoprune.experiments.study.damage import _correlations, parse_damage_config
from topoprune.experiments.study.damage_stats import MIN_RANDOM_ONLY

CONFIG = {
    "name": "damage-synthetic",
    "dataset": {"name": "digits"},
    "model": {"name": "vgg11", "width": 0.125, "input_shape": [1, 8, 8]},
    "methods": ["l1", "l2", "fpgm", "random"],
    "sparsities": [0.5],
    "seeds": [0],
    "damage": {"random": {"count": 24}, "epochs": [1], "scores": ["l1-mass-removed", "np-retained"],
               "bootstrap": {"resamples": 300}},
}


def _rows(config, n_random: int, *, within: float) -> list[dict]:
    """Method rows: low scores, high accuracy; random rows: high scores, low accuracy, where the
    accuracy follows the score with slope ``within`` plus noise."""
    rng = np.random.default_rng(0)
    scores = 5 + rng.normal(size=n_random)
    # the noise: the scores' order reversed on one half, so that its rank correlation with the scores is ~0
    noise = np.where(np.arange(n_random) % 2 == 0, scores, -scores)
    rows = []
    for i in range(n_random):
        score = float(scores[i])
        acc = 60 - within * score + float(noise[i])
        rows.append({"candidate": f"random-{i:03d}", "source": "random", "sparsity": 0.5,
                     "scores": {"l1-mass-removed": score, "np-retained": -score},
                     "outcomes": {o: acc for o in config.outcomes()}})
    for j in range(12):  # more method-like rows than the config lists: a split strong enough to show
        rows.append({"candidate": f"method-{j}", "source": "method", "sparsity": 0.5,
                     "scores": {"l1-mass-removed": 1.0 + 0.1 * j, "np-retained": -1.0 - 0.1 * j},
                     "outcomes": {o: 90.0 - 0.1 * j for o in config.outcomes()}})
    return rows


def _rho(block, score, outcome="acc-1ep"):
    return next(c for c in block["correlations"] if c["score"] == score and c["outcome"] == outcome)


def test_a_split_between_methods_and_randoms_is_not_a_ranking_among_randoms():
    config = parse_damage_config(CONFIG)
    block = _correlations(config, _rows(config, 24, within=0.0))["sparsities"]["0.5"]
    everyone = _rho(block, "l1-mass-removed")
    assert block["n"] == 36 and everyone["spearman_ci"][1] < 0  # all candidates: a clear negative relation
    alone = block["random_only"]
    assert alone["n"] == 24
    ci = _rho(alone, "l1-mass-removed")["spearman_ci"]
    assert ci[0] < 0 < ci[1]  # among the random ones the score is noise
    assert all("among the 24 random candidates only" in v for v in alone["verdicts"])
    assert not any("random candidates only" in v for v in block["verdicts"])


def test_a_real_ranking_among_randoms_shows_in_the_random_only_block():
    config = parse_damage_config(CONFIG)
    alone = _correlations(config, _rows(config, 24, within=3.0))["sparsities"]["0.5"]["random_only"]
    assert _rho(alone, "l1-mass-removed")["spearman_ci"][1] < 0


def test_too_few_random_candidates_get_no_random_only_block():
    config = parse_damage_config({**CONFIG, "damage": {**CONFIG["damage"], "random": {"count": MIN_RANDOM_ONLY - 1}}})
    block = _correlations(config, _rows(config, MIN_RANDOM_ONLY - 1, within=3.0))["sparsities"]["0.5"]
    assert "random_only" not in block


def test_the_report_shows_the_random_only_verdicts_and_tables(tmp_path):
    from topoprune.experiments.study.damage_report import write_damage_report

    config = parse_damage_config(CONFIG)
    rows = [{**r, "dense_acc": 95.0} for r in _rows(config, 24, within=3.0)]
    corr = _correlations(config, rows)
    summary = {"config": config.to_dict(), "run": {"command": "test"}, "rows": rows, "correlations": corr,
               "verdicts": corr["sparsities"]["0.5"]["verdicts"],
               "verdicts_random_only": corr["sparsities"]["0.5"]["random_only"]["verdicts"]}
    md, _ = write_damage_report(tmp_path, summary)
    text = md.read_text()
    assert "Verdicts among the random candidates only" in text
    assert "Sparsity 0.5, random candidates only: Spearman rho" in text
    assert "among the 24 random candidates only (n = 24)" in text


def test_the_random_only_block_starts_at_the_minimum():
    config = parse_damage_config({**CONFIG, "damage": {**CONFIG["damage"], "random": {"count": MIN_RANDOM_ONLY}}})
    block = _correlations(config, _rows(config, MIN_RANDOM_ONLY, within=3.0))["sparsities"]["0.5"]
    assert block["random_only"]["n"] == MIN_RANDOM_ONLY


def test_a_report_from_correlations_without_the_random_only_block_says_how_to_add_it(tmp_path):
    from topoprune.experiments.study.damage_report import write_damage_report

    config = parse_damage_config(CONFIG)
    rows = [{**r, "dense_acc": 95.0} for r in _rows(config, 24, within=3.0)]
    corr = _correlations(config, rows)
    del corr["sparsities"]["0.5"]["random_only"]  # as written before the random-only analysis existed
    summary = {"config": config.to_dict(), "run": {}, "rows": rows, "correlations": corr,
               "verdicts": corr["sparsities"]["0.5"]["verdicts"], "verdicts_random_only": []}
    text = write_damage_report(tmp_path, summary)[0].read_text()
    assert "predates the analysis over the random candidates alone" in text
    assert "random candidates only" not in text
