"""Shared fixtures: where the real face data lives, when this machine has it."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW_ROOT = SHARED_DATA / "lfw_deepfunneled"
ATT_ROOT = SHARED_DATA / "att_faces"

# Users do not have ../shared; tests that need it are extra evidence, skipped (and reported) without it.
needs_lfw = pytest.mark.skipif(not LFW_ROOT.is_dir(), reason=f"no LFW subset at {LFW_ROOT}")
needs_att = pytest.mark.skipif(not ATT_ROOT.is_dir(), reason=f"no AT&T faces at {ATT_ROOT}")
