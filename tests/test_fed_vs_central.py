"""The federated-vs-centralized judgement: a gap is within the tolerance only if its whole interval is."""

from __future__ import annotations

import pytest

from simulations.federated_vs_central import format_table, paired_gap, verdict


def test_the_interval_is_students_t_over_the_seeds():
    gap = paired_gap([0.0, 0.02], tolerance=0.03)
    assert gap["mean"] == pytest.approx(0.01)
    # two seeds: t(0.975, 1 df) = 12.706, sd = 0.01414, so the half-width is 12.706 * 0.01414 / sqrt(2)
    assert gap["ci95"] == pytest.approx([0.01 - 0.12706, 0.01 + 0.12706], abs=1e-5)
    assert gap["within_tolerance"] is None  # 2 seeds this far apart cannot settle 3 points


@pytest.mark.parametrize("diffs, within", [
    ([0.010, 0.012, 0.008, 0.011, 0.009], True),    # all near +1 point: the interval sits inside +-3
    ([0.140, 0.150, 0.130, 0.145, 0.135], False),   # near +14 points: wholly above +3
    ([-0.100, -0.110, -0.090, -0.105], False),      # wholly below -3
    ([0.02, 0.08, -0.04, 0.12, 0.0], None),         # spread across the edge
])
def test_within_only_when_the_whole_interval_is(diffs, within):
    gap = paired_gap(diffs, tolerance=0.03)
    assert gap["within_tolerance"] is within
    assert gap["ci95"][0] < gap["mean"] < gap["ci95"][1]


def test_one_seed_gives_no_verdict_and_the_table_says_so():
    assert paired_gap([0.05], tolerance=0.03)["within_tolerance"] is None
    rows = [{"strategy": "duetface", "seed": 0, "accuracy": {"federated": 0.70, "central mixed": 0.60}}]
    table = format_table(rows, tolerance=0.03)
    assert "+10.00" in table and "too few for an interval" in table
    rows.append({"strategy": "duetface", "seed": 1, "accuracy": {"federated": 0.72, "central mixed": 0.61}})
    assert "federated - central mixed: +10.50 points, 95% CI" in format_table(rows, tolerance=0.03)
    assert "over 3 seeds: not within +-3 points." in verdict(paired_gap([0.140, 0.150, 0.130], 0.03))


@pytest.mark.parametrize("diffs, no_worse, says", [
    ([0.140, 0.150, 0.130, 0.145, 0.135], True, "shown (the interval lies above -3)"),  # higher: not within, no cost
    ([0.010, 0.012, 0.008, 0.011, 0.009], True, "shown"),
    ([-0.100, -0.110, -0.090, -0.105], False, "not shown (the interval lies below -3)"),
    ([0.02, -0.08, 0.04, -0.12, 0.0], None, "undecided (the interval crosses -3)"),
    ([0.02, 0.08, -0.04, 0.12, 0.0], None, "undecided"),  # crosses both -3 and +3
])
def test_the_one_sided_question_is_whether_federation_costs_more_than_the_tolerance(diffs, no_worse, says):
    gap = paired_gap(diffs, tolerance=0.03)
    assert gap["no_worse_than_tolerance"] is no_worse
    lo, hi = gap["ci95"]
    assert (lo >= -0.03) == (no_worse is True) and (hi < -0.03) == (no_worse is False)
    assert f"Federated at most 3 points below: {says}" in verdict(gap)


def test_modes_are_named_by_their_run_tags():
    from simulations.federated_vs_central import main

    with pytest.raises(SystemExit, match=r"--modes: unknown 'central fixed'.*fed,central_by_client"):
        main(["--modes", "fed,central fixed"])
    with pytest.raises(SystemExit, match="--tolerance"):
        main(["--tolerance", "0"])


def test_seeds_to_decide_is_the_first_count_whose_interval_clears_the_edge():
    from simulations.federated_vs_central import _t975, seeds_to_decide

    # mean 0, sd 6 points, tolerance 3: t(n-1) * 6 / sqrt(n) < 3 first holds at n = 18 (t(17) = 2.110
    # gives 2.98; n = 17 gives t(16) * 6 / sqrt(17) = 3.07).
    assert seeds_to_decide(0.0, 0.06, 0.03) == 18
    assert _t975(16) * 0.06 / 17 ** 0.5 > 0.03 > _t975(17) * 0.06 / 18 ** 0.5
    # Past 31 seeds the normal quantile: (1.96 * 10 / 1.5)^2 = 170.7, so 171.
    assert seeds_to_decide(0.015, 0.10, 0.03) == 171
    # Twice the spread, nearly four times the seeds (t shrinks as n grows); a mean on the edge never settles.
    assert seeds_to_decide(0.0, 0.12, 0.03) > 3 * seeds_to_decide(0.0, 0.06, 0.03)
    assert seeds_to_decide(0.03, 0.05, 0.03) is None and seeds_to_decide(-0.03, 0.05, 0.03) is None


def test_an_undecided_verdict_says_how_many_seeds_it_estimates():
    gap = paired_gap([0.02, 0.08, -0.04, 0.12, 0.0], tolerance=0.03)
    assert gap["within_tolerance"] is None
    assert gap["seeds_to_decide_estimated"] > gap["n"]
    assert f"about {gap['seeds_to_decide_estimated']} seeds in all" in verdict(gap)
    assert "(estimated)" in verdict(gap)
    settled = paired_gap([0.140, 0.150, 0.130], 0.03)
    assert settled["seeds_to_decide_estimated"] == 3 and "estimated" not in verdict(settled)


def test_table_only_tabulates_finished_runs_and_runs_nothing(tmp_path, capsys):
    import json

    from fedsplit.config import load_config
    from simulations.federated_vs_central import _overrides, main

    def finish(seed: int, mode: str, accuracy: float) -> None:
        cfg = load_config(None, _overrides([f"output={tmp_path}"], "default", "duetface", seed, mode, str(tmp_path)))
        cfg.run_dir().mkdir(parents=True)
        (cfg.run_dir() / "results.json").write_text(json.dumps({"accuracy": accuracy, "config": cfg.to_dict()}))

    finish(0, "federated", 0.70)
    import torch

    from fedsplit.protection import ClientNet
    from fedsplit.training import save_client_model

    fed0 = load_config(None, _overrides([f"output={tmp_path}"], "default", "duetface", 0, "federated", str(tmp_path)))
    torch.manual_seed(0)
    save_client_model(ClientNet(fed0.protection, fed0.model).eval(), fed0, fed0.run_dir())  # an untrained one
    finish(0, "central mixed", 0.64)
    finish(1, "federated", 0.66)
    finish(1, "central mixed", 0.63)
    finish(2, "federated", 0.61)  # its central run never finished
    stale = tmp_path / "default_duetface_s2_central_mixed"
    stale.mkdir()  # a run in progress: no results.json yet
    assert main(["--seeds", "0,1,2", "--modes", "fed,central_mixed", "--table-only", "--set", f"output={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "left out, not finished (1): duetface seed 2 central mixed" in out
    assert "== " not in out  # nothing was run
    table = json.loads((tmp_path / "default_fed_vs_central" / "table.json").read_text())
    gap = table["gaps"]["duetface"]["central mixed"]
    assert gap["n"] == 2 and gap["mean"] == pytest.approx(0.045)
    assert (tmp_path / "default_fed_vs_central" / "gap_over_seeds.png").stat().st_size > 0
    assert not (stale / "results.json").exists()
    # the one run with a saved client model gets its own verification, judged on that seed's held-out pairs
    from simulations.federated_vs_central import client_model_accuracy

    from fedsplit.data.splits import build_splits

    rows = {r["seed"]: r for r in table["rows"]}
    assert rows[0]["client_model_accuracy"] == {"federated": client_model_accuracy(fed0, build_splits(fed0))}
    assert 0.5 <= rows[0]["client_model_accuracy"]["federated"] < 1.0  # random features: above chance, not perfect
    assert rows[1]["client_model_accuracy"] == {}
    assert "| duetface: client model alone | mean +- sd |" in out


def test_running_gaps_narrow_in_seed_order():
    from simulations.federated_vs_central import running_gaps

    rows = [{"strategy": "duetface", "seed": s, "accuracy": {"federated": 0.6 + d, "central mixed": 0.6}}
            for s, d in [(2, 0.01), (0, 0.05), (1, -0.01), (3, 0.02)]]
    gaps = running_gaps(rows, "duetface", "central mixed", 0.03)
    assert [g["n"] for g in gaps] == [2, 3, 4]
    assert gaps[0]["mean"] == pytest.approx(0.02)  # seeds 0 and 1 first, not the order of the rows
    assert gaps[-1]["mean"] == pytest.approx(0.0175)
