import atexit
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import struct
import tempfile
import threading

import numpy as np
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


# ----------------------------------------------------------------------------------------------
# MNIST through torchvision, offline: a fake mirror of IDX files on the loopback interface
# ----------------------------------------------------------------------------------------------


def idx_images(x: np.ndarray) -> bytes:
    """Images ``(N, 28, 28)`` of bytes 0..255 as the content of an IDX file (``*-images-idx3-ubyte``)."""
    return struct.pack(">IIII", 2051, len(x), 28, 28) + x.astype(np.uint8).tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    """Labels ``(N,)`` as the content of an IDX file (``*-labels-idx1-ubyte``)."""
    return struct.pack(">II", 2049, len(y)) + y.astype(np.uint8).tobytes()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def fake_mnist_mirror(tmp_path, monkeypatch):
    """A factory, ``fake_mnist_mirror(n_train, n_test) -> (fake, root)``: a local mirror with
    ``n_train`` train / ``n_test`` test random images (pixels and labels drawn uniformly from
    ``numpy.random.default_rng(0)``), as gzip files like the real ones, that torchvision's ``MNIST``
    downloads from; ``GENCOURSE_DATA`` points at a fresh cache folder ``tmp_path / "cache"``.

    ``fake`` maps ``"train"`` and ``"test"`` to the ``(images, labels)`` arrays, ``root`` is the
    folder of the cached ``MNIST/raw`` files. The mirror is served over HTTP on the loopback
    interface (no network): torchvision's downloader reads ``response.length``, which ``file://``
    responses lack. One mirror per test.
    """
    torchvision = pytest.importorskip("torchvision")
    servers = []

    def make(n_train: int, n_test: int):
        if servers:
            raise RuntimeError("fake_mnist_mirror serves one mirror per test")
        rng = np.random.default_rng(0)
        fake = {
            "train": (rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train)),
            "test": (rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)),
        }
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        resources = []
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x, y = fake[split]
            for kind, payload in (("images-idx3", idx_images(x)), ("labels-idx1", idx_labels(y))):
                name = f"{prefix}-{kind}-ubyte.gz"
                blob = gzip.compress(payload, mtime=0)
                (mirror / name).write_bytes(blob)
                resources.append((name, hashlib.md5(blob).hexdigest()))
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(mirror))
        )
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        for var in ("no_proxy", "NO_PROXY"):
            monkeypatch.setenv(var, "127.0.0.1,localhost")
        monkeypatch.setattr(
            torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"]
        )
        monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
        cache = tmp_path / "cache"
        monkeypatch.setenv("GENCOURSE_DATA", str(cache))
        return fake, cache / "mnist"

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_mirror(fake_mnist_mirror):
    """A local mirror with 20 train / 10 test random images (:func:`fake_mnist_mirror`): ``(fake, root)``."""
    return fake_mnist_mirror(20, 10)
