import atexit
import os
import shutil
import tempfile

import pytest

# Library tests run under the smoke profile unless told otherwise; notebooks read the same variable.
os.environ.setdefault("GENCOURSE_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")

# Tests write only to temporary folders: the cache of checkpoints and data (GENCOURSE_DATA) is a
# folder of this test session, shared by the xdist workers and the notebook kernels (they inherit
# the environment) and removed at the end, unless the caller (e.g. `make test`) chose one.
if not os.environ.get("GENCOURSE_DATA"):
    _cache = tempfile.mkdtemp(prefix="gencourse-test-cache-")
    os.environ["GENCOURSE_DATA"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def one_thread():
    """Run a test on one PyTorch thread (:class:`gencourse.config.threads`): small models and
    samplers are faster so, and two threads spin idly when test workers share the two cores."""
    from gencourse import config

    with config.threads(1):
        yield
