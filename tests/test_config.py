import random

import numpy as np
import pytest
import torch

from gencourse import config


def test_profile_from_environment(monkeypatch):
    for name in config.PROFILES:
        monkeypatch.setenv("GENCOURSE_PROFILE", name)
        assert config.profile() == name


def test_profile_detected_when_unset(monkeypatch):
    monkeypatch.delenv("GENCOURSE_PROFILE", raising=False)
    assert config.profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "laptop")
    with pytest.raises(ValueError, match=r"'laptop'.*smoke, cpu, gpu"):
        config.profile()
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        config.budget(smoke=1, cpu=2, gpu=3, profile="fast")


def test_budget_picks_the_active_profile(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    assert config.budget(smoke=1, cpu=2, gpu=3) == 2
    assert config.budget(smoke=1, cpu=2, gpu=3, profile="gpu") == 3
    with pytest.raises(TypeError):
        config.budget(smoke=1, cpu=2)  # every profile must be given


def test_seed_everything_is_reproducible():
    g1 = config.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g1))
    g2 = config.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])
    with pytest.raises(ValueError, match="seed must be an int"):
        config.seed_everything(1.5)


def test_device_follows_cuda_and_the_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert config.device() == torch.device("cuda", 3)
    monkeypatch.delenv("LOCAL_RANK")
    assert config.device() == torch.device("cuda", 0)


def test_threads_sets_and_restores_as_block_decorator_and_statement():
    outer = config.threads(3)  # a plain call: from here on (a count that OMP_NUM_THREADS=1 never gives)
    try:
        assert torch.get_num_threads() == 3
        with config.threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
        with pytest.raises(RuntimeError), config.threads(2):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 3

        @config.threads(1)
        def inner():
            return torch.get_num_threads()

        assert torch.get_num_threads() == 3  # decorating changes nothing until the call
        assert inner() == 1 and torch.get_num_threads() == 3
        with pytest.raises(ValueError, match="n must be a positive int"):
            config.threads(0)
    finally:
        outer.__exit__()


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path / "cache"))
    path = config.cache_dir("checkpoints")
    assert path == tmp_path / "cache" / "checkpoints" and path.is_dir()


def test_unwritable_cache_dir_is_a_clear_error(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENCOURSE_DATA", str(blocker / "cache"))
    with pytest.raises(PermissionError, match="not writable.*GENCOURSE_DATA"):
        config.cache_dir()
    assert blocker.read_text() == "not a folder"
