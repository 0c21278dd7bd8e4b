"""`fedsplit inspect`: the grid a new user sees first, and the bytes it reports."""

import json

import cv2
import numpy as np
import pytest

from conftest import LFW_ROOT, needs_lfw
from fedsplit.cli import build_parser, main
from fedsplit.views import stretch


def test_inspect_writes_grid_and_measured_bytes(tmp_path, capsys):
    assert main(["inspect", "--n", "3", "--upsample", "2", "--out", str(tmp_path)]) == 0
    grid = cv2.imread(str(tmp_path / "views.png"))
    assert grid.shape == (28 + 3 * 224, 4 * 224, 3)
    record = json.loads((tmp_path / "views.json").read_text())
    by_holds = {row["holds"].split(" (")[0]: row for row in record["bytes_per_image"]}
    assert by_holds["raw face"]["bytes_per_image"] == 112 * 112 * 3
    assert by_holds["client planes"]["bytes_per_image"] == 30 * 28 * 28 * 4
    assert by_holds["server planes"]["bytes_per_image"] == 162 * 28 * 28 * 4
    assert record["landmark_sources"] == {"synthetic": 3}
    assert set(record["client_channels"]).isdisjoint(record["server_channels"])
    out = capsys.readouterr().out
    assert "508,032" in out and "wrote" in out  # 162 * 28 * 28 * 4 bytes, printed for a person


def test_server_column_differs_from_client_column(tmp_path):
    main(["inspect", "--n", "2", "--out", str(tmp_path)])
    grid = cv2.imread(str(tmp_path / "views.png")).astype(np.float32)
    face = grid[28 : 28 + 224]
    original, client, server = face[:, :224], face[:, 224:448], face[:, 448:672]
    # At upsample 8 the client keeps nearly the whole picture; the server's view is something else.
    assert np.abs(original - client).mean() < 4
    assert np.abs(original - server).mean() > 20


@needs_lfw
def test_inspect_on_real_faces(tmp_path):
    assert main(["inspect", "--data", str(LFW_ROOT), "--n", "4", "--crop", "0.6", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "views.json").read_text())
    assert record["faces"] == 4
    assert sum(record["landmark_sources"].values()) == 4
    assert set(record["landmark_sources"]) <= {"cascade", "template"}


def test_stretch_maps_quantiles_to_full_range():
    import torch

    x = torch.linspace(-0.01, 0.01, 3 * 16 * 16).view(1, 3, 16, 16)
    y = stretch(x)
    assert y.min().item() == -1.0 and y.max().item() == 1.0
    assert torch.isfinite(stretch(torch.zeros(1, 3, 4, 4))).all()  # flat input: no division by zero


def test_help_names_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "inspect" in capsys.readouterr().out


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["inspect", "--upsample", "3", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--n"):
        main(["inspect", "--n", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="not a folder"):
        main(["inspect", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)])
