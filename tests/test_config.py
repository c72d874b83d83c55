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


def test_device_is_usable():
    assert torch.zeros(1, device=config.device()).device.type == config.device().type


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
