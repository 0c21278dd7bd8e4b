"""Shared fixtures: where the real face data lives, when this machine has it; one torch thread."""

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW_ROOT = SHARED_DATA / "lfw_deepfunneled"
ATT_ROOT = SHARED_DATA / "att_faces"

# Users do not have ../shared; tests that need it are extra evidence, skipped (and reported) without it.
needs_lfw = pytest.mark.skipif(not LFW_ROOT.is_dir(), reason=f"no LFW subset at {LFW_ROOT}")
needs_att = pytest.mark.skipif(not ATT_ROOT.is_dir(), reason=f"no AT&T faces at {ATT_ROOT}")


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: on a loaded 2-core machine two threads wait on each other, and small
    kernels run many times slower; leave the other core free and timings steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
