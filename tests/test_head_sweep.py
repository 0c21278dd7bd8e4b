"""simulations/head_sweep.py: one fedsplit train per head setting and seed, reused when finished, tabulated."""

from __future__ import annotations

import json
import math

import pytest

import simulations.head_sweep as sweep
from test_training import TINY


def test_uniform_guess_is_the_loss_of_equal_cosines():
    import torch

    from fedsplit.models import make_head

    head = make_head("cosface", 4, 160, s=8.0, m=0.1)
    logits = head.s * torch.where(torch.arange(160) == 3, torch.tensor(0.2 - 0.1), torch.tensor(0.2))[None]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([3])).item()
    assert math.isclose(sweep.uniform_loss(160, 8.0, 0.1, "cosface"), loss, rel_tol=1e-6)
    assert sweep.uniform_loss(160, 64.0, 0.5, "arcface") is None


def test_each_cell_trains_its_own_head_and_finished_cells_are_reused(tmp_path, monkeypatch, capsys):
    sets = sum([["--set", s] for s in [*TINY, f"output={tmp_path}", "name=tiny"]], [])
    assert sweep.main(["--scales", "8,64", "--margins", "0.1", "--seeds", "0", *sets]) == 0
    table = json.loads((tmp_path / "tiny_head_sweep" / "table.json").read_text())
    assert [(r["head_scale"], r["head_margin"]) for r in table["rows"]] == [(8.0, 0.1), (64.0, 0.1)]
    for r in table["rows"]:
        run = json.loads((tmp_path / sweep.cell_name("tiny", r["head_scale"], 0.1, 0) / "results.json").read_text())
        assert run["config"]["model"]["head_scale"] == r["head_scale"]  # the setting reached the run
        assert r["accuracy_mean"] == run["accuracy"] and r["first_loss"] == run["epochs"][0]["loss"]
    # the two heads trained differently: a scale that went nowhere would give the same losses
    assert table["rows"][0]["first_loss"] != table["rows"][1]["first_loss"]

    def no_training(cfg, *a, **k):
        raise AssertionError(f"{cfg.name} was finished and should have been reused")

    monkeypatch.setattr(sweep, "train_central", no_training)
    assert sweep.main(["--scales", "8,64", "--margins", "0.1", "--seeds", "0", *sets]) == 0
    assert "| 64 | 0.1 | 1 |" in capsys.readouterr().out


def test_bad_grid_values_are_named():
    with pytest.raises(SystemExit, match="--scales"):
        sweep.main(["--scales", "8,big"])
    with pytest.raises(SystemExit, match=r"model\.head_margin"):
        sweep.main(["--margins", "1.5", "--seeds", "0"])
