"""The paired comparisons of a comparison report, by hand: every method against the best peer and
every method against its controls, with the raw verdict, the Holm-adjusted one over the named
family, and beside a TIE the minimum detectable effect (checked here against scipy's noncentral t
directly)."""

from __future__ import annotations

import json
import math

import pytest
from scipy import optimize, stats

from topoprune.experiments.peers import best_peer, peer_comparisons, peer_sentences
from topoprune.experiments.report import build_report, control_verdicts

# two-sided paired-t p-value of differences (1, 2, 1.5) (or their negatives): mean 1.5, sd 0.5,
# t = 1.5 / (0.5 / sqrt(3)) = sqrt(27); with 2 degrees of freedom sf(t) = (1 - t / sqrt(t^2 + 2)) / 2
P_RAW = 1 - math.sqrt(27) / math.sqrt(29)  # 0.0351: below 0.05, but not twice over


def _mde(sd: float, n: int, alpha: float = 0.05) -> float:
    """80 % power, two-sided ``alpha``, from scipy's noncentral t written out here."""
    crit = stats.t.ppf(1 - alpha / 2, n - 1)

    def power(d):
        nc = d * math.sqrt(n)
        lower = stats.nct.cdf(-crit, n - 1, nc)  # the far tail: ~0, NaN in scipy at a large nc
        return stats.nct.sf(crit, n - 1, nc) + (0.0 if math.isnan(lower) else lower) - 0.8

    return optimize.brentq(power, 0.1, 30.0) * sd


def _row(method, seed, acc, control=None, model="m"):
    return {"model": model, "method": method, "sparsity": 0.5, "seed": seed, "acc_after_recovery": acc,
            **({"control": control} if control else {})}


# best peer l1 (mean 91); fpgm loses by 5 on every seed (p = 0); l2 by 1, 2, 1.5 (p = P_RAW);
# magnitude differs by -1, +1, -3 (mean -1, sd 2: a tie)
PEERS = {"l1": (90.0, 91.0, 92.0), "fpgm": (85.0, 86.0, 87.0), "l2": (89.0, 89.0, 90.5),
         "magnitude": (89.0, 92.0, 89.0)}


def _peer_rows():
    rows = [_row(m, s, a) for m, accs in PEERS.items() for s, a in enumerate(accs)]
    rows += [_row("l2+shuffle", s, 99.0, control="shuffle") for s in range(3)]  # a control: never a peer
    return rows


def test_best_peer_is_the_highest_mean_and_controls_are_not_peers():
    (pc,) = peer_comparisons(_peer_rows())
    assert (pc.best, pc.best_mean) == ("l1", 91.0)
    assert best_peer({"b": 1.0, "a": 1.0, "c": 0.5}) == "a"
    assert [c.name for c in pc.family.comparisons] == ["fpgm", "l2", "magnitude"]
    assert pc.family.m == 3 and "m at sparsity 0.5" in pc.family.family


def test_holm_keeps_a_sure_loss_and_drops_a_marginal_one():
    (pc,) = peer_comparisons(_peer_rows())
    c = {x.name: x for x in pc.family.comparisons}
    assert (c["fpgm"].result.verdict, c["fpgm"].p_adjusted, c["fpgm"].verdict_adjusted) == ("LOSES", 0.0, "LOSES")
    # l2: the second smallest of 3 p-values, times 2
    assert c["l2"].result.p_value == pytest.approx(P_RAW, rel=1e-9)
    assert c["l2"].result.verdict == "LOSES" and c["l2"].verdict_adjusted == "TIE"
    assert c["l2"].p_adjusted == pytest.approx(2 * P_RAW, rel=1e-9)
    assert c["magnitude"].result.verdict == c["magnitude"].verdict_adjusted == "TIE"


def test_sentences_name_the_best_the_family_and_the_detectable_effect_beside_a_tie():
    lines = peer_sentences(peer_comparisons(_peer_rows()), "one trained network")
    assert lines[0].startswith("m at sparsity 0.5: the best peer is **l1** (91.00 % mean accuracy")
    assert 'family of 3 comparisons: every "method vs best peer" row of m at sparsity 0.5' in lines[0]
    fpgm, l2, mag = lines[1:]
    assert "**fpgm** minus **l1**: -5.00 points, 95 % t-interval [-5.00, -5.00] over 3 seeds" in fpgm
    assert "raw **LOSES**; Holm-adjusted over 3 (p = 0): **LOSES**" in fpgm and "detect" not in fpgm
    # a TIE only Holm made: the detectable effect at the family's strictest level, 5 % / 3
    assert "raw **LOSES**; Holm-adjusted over 3 (p = 0.0702): **TIE**; no difference larger than" in l2
    assert f"larger than {_mde(0.5, 3, 0.05 / 3):.2f} points could be seen with 3 seeds at the family's" in l2
    x = _mde(2.0, 3)
    assert x == pytest.approx(3.26 * 2.0, abs=0.01)  # the spec's 3.26 sd at n = 3
    assert f"no difference larger than {x:.2f} points could be seen with 3 seeds" in mag
    assert "noncentral t" in mag


def test_a_cell_with_one_method_or_a_model_at_chance_gets_no_comparison():
    rows = [_row("l1", s, 90.0) for s in range(3)] + [_row("l1", s, 90.0, model="other") for s in range(3)]
    rows += [_row("l2", s, 89.0, model="other") for s in range(3)]
    assert [pc.model for pc in peer_comparisons(rows)] == ["other"]
    assert peer_comparisons(rows, at_chance={"other"}) == []


CONFIG = {"name": "c", "methods": [{"name": "fpgm"}, {"name": "magnitude"}], "train": {"epochs": 1},
          "controls": ["shuffle", "magnitude-at-budget"]}


def _control_rows():
    rows = [_row("fpgm", s, a) for s, a in enumerate((90.0, 91.0, 92.0))]
    rows += [_row("fpgm+shuffle", s, a - 5, "shuffle") for s, a in enumerate((90.0, 91.0, 92.0))]  # +5: sure
    rows += [_row("fpgm+magnitude-at-budget", s, a, "magnitude-at-budget")
             for s, a in enumerate((89.0, 89.0, 90.5))]  # +1, +2, +1.5: p = P_RAW
    rows += [_row("magnitude", s, a) for s, a in enumerate((80.0, 81.0, 79.0))]
    rows += [_row("magnitude+shuffle", s, a, "shuffle") for s, a in enumerate((81.0, 80.0, 82.0))]  # -1, +1, -3
    return rows


def test_controls_get_the_holm_verdict_over_the_runs_method_vs_control_family():
    lines = control_verdicts(CONFIG, _control_rows())
    assert lines[0].startswith("Holm's adjustment runs over the family of 3 method-vs-control comparisons")
    sure = next(x for x in lines if "**fpgm** vs its shuffle control" in x)
    assert "**WINS**: its choice inside layers matters." in sure
    assert "raw **WINS**; Holm-adjusted over 3 (p = 0): **WINS**" in sure and "no difference" not in sure
    marginal = next(x for x in lines if "**fpgm** vs its magnitude-at-budget control" in x)
    assert f"p = {P_RAW:.3g}: raw **WINS**; Holm-adjusted over 3 (p = {2 * P_RAW:.3g}): **TIE**" in marginal
    assert "(after Holm's adjustment: it ties the plainest choice at the same budget)" in marginal
    assert f"no difference larger than {_mde(0.5, 3, 0.05 / 3):.2f} points could be seen with 3 seeds" in marginal
    assert "two-sided 1.67 % = 5 % / 3" in marginal
    tie = next(x for x in lines if "**magnitude** vs its shuffle control" in x)
    assert "**TIE**: no effect of its choice inside layers found." in tie
    assert f"no difference larger than {_mde(2.0, 3):.2f} points could be seen with 3 seeds" in tie


@pytest.mark.slow
def test_report_md_and_html_both_carry_the_paired_comparisons(tmp_path):
    base = {"kind": "structured", "params": [100, 50], "nonzero_params": [100, 50], "macs": [1000, 500],
            "flops": [2000, 1000], "latency_ms": [None, None], "dense_acc": 92.0, "acc_after_prune": 60.0,
            "recovery_curve": [60.0, 80.0], "epochs_to_recover": None, "seconds_to_recover": None,
            "prune_seconds": 0.1, "np_retained": 0.9, "np_dense": {"fc1": 0.5}, "np_after": {"fc1": 0.4}, "compression": {"fc1": 2.0},
            "diagram_layer": "fc1", "diagram_deaths": [1.0, 0.5]}
    rows = [{**base, **r} for r in _peer_rows() if not r.get("control")]
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "m.json").write_text(json.dumps({"np": {"fc1": 0.5}, "layers": {}}))
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "config.json").write_text(json.dumps({
        "name": "fake", "seeds": [0, 1, 2], "dataset": {"name": "digits"},
        "recovery": {"epochs": 1, "lr": 0.01, "tolerance": 0.5}}))
    md, page = (p.read_text() for p in build_report(tmp_path))
    assert "## Paired comparisons" in md and "<h2>Paired comparisons</h2>" in page
    for text in (md, page.replace("<b>", "**").replace("</b>", "**").replace("&quot;", '"')):
        assert "the best peer is **l1**" in text and 'every "method vs best peer" row of m at sparsity 0.5' in text
        assert "Holm-adjusted over 3 (p = 0.0702): **TIE**" in text
        assert "one trained network; seeds vary pruning and recovery only" in text
        assert f"no difference larger than {_mde(2.0, 3):.2f} points could be seen with 3 seeds" in text


def test_the_html_page_renders_the_inline_markdown_of_tables_lists_and_intro(tmp_path):
    from topoprune.experiments.report import write_pages

    sections = [("Verdict", ["**mine** ties `l1`", "a lone ` stays"]),
                ("Table", [["method", "difference"], ["**mine** (`timp`)", "+0.10 [-0.20, +0.40]"]])]
    md, page = write_pages(tmp_path, "t", "the `quick` suite <small>", sections, [], stem="board")
    html = page.read_text()
    assert "<li><b>mine</b> ties <code>l1</code></li>" in html and "<li>a lone ` stays</li>" in html
    assert "<td><b>mine</b> (<code>timp</code>)</td>" in html and "**" not in html
    assert "<p>the <code>quick</code> suite &lt;small&gt;</p>" in html
    assert "**mine** ties `l1`" in md.read_text()  # the Markdown page keeps its Markdown
