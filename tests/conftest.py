import os

import pytest

# Library tests run under the smoke profile unless told otherwise; notebooks read the same variable.
os.environ.setdefault("GENCOURSE_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")

collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
