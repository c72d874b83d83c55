import os

import pytest
import torch

# Library tests run under the smoke profile unless told otherwise; notebooks read the same variable.
os.environ.setdefault("GENCOURSE_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")

collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def one_thread():
    """Run a test on one PyTorch thread: small models and samplers are faster so, and two threads
    spin idly when pytest-xdist workers or other jobs share the two cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
