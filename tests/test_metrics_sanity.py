"""Sanity checks that would fail on a broken metric, with the real feature network (trained once and
cached: about 10 s of CPU time the first time) on the smoke profile's 200 samples."""

import math

import pytest
import torch

import gencourse as gc
from gencourse import metrics as M
from gencourse import scoreboard, train


@pytest.fixture(scope="module")
def sets():
    net = M.feature_net(verbose=False)
    x_train, y_train = gc.data.mnist_tensors("train", source="embedded")
    x_test, _ = gc.data.mnist_tensors("test", source="embedded")
    return net, x_train, y_train, x_test


def test_the_feature_network_classifies_held_out_digits(sets):
    net = sets[0]
    assert net.info["accuracy"] > 0.95
    assert net.info["key"] == train._fingerprint(M.FEATURE_NET_SETTINGS)
    assert M.feature_net_path().name == f"mnist_features-{net.info['key']}.pt"  # the file name of earlier versions


def test_real_vs_real_is_small_and_noise_is_huge(sets):
    net, x_train, _, x_test = sets
    f_a, _ = M.embed(x_test[:500], value_range="01")
    f_b, _ = M.embed(x_test[500:], value_range="01")  # disjoint halves
    f_noise, _ = M.embed(torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)), value_range="01")
    real, noise = M.frechet_distance(f_a, f_b), M.frechet_distance(f_a, f_noise)
    assert real < 15 and noise > 30 * real
    assert abs(M.kid(f_a, f_b)) < 0.05 * M.kid(f_a, f_noise)


def test_scores_get_worse_with_blur_and_with_noise(sets):
    net, x_train, _, x_test = sets
    f_ref, _ = M.reference_embedding()
    x = x_train[:500]
    g = torch.Generator().manual_seed(0)
    for corrupt, levels in ((M.blur, [0.0, 0.75, 1.5, 2.5]), (lambda v, s: M.add_noise(v, s, generator=g), [0.0, 0.1, 0.25, 0.5])):
        feats = [M.embed(corrupt(x, s), value_range="01")[0] for s in levels]
        fids = [M.frechet_distance(f, f_ref) for f in feats]
        kids = [M.kid(f, f_ref) for f in feats]
        assert all(a < b for a, b in zip(fids, fids[1:])), fids
        assert all(a < b for a, b in zip(kids, kids[1:])), kids


def test_a_single_class_has_low_recall_and_coverage_but_high_precision(sets):
    net, x_train, y_train, _ = sets
    ones = x_train[y_train == 1][:200]
    scores = M.evaluate(ones, value_range="01", n=200, memorisation=False)
    assert scores["recall"] < 0.15 and scores["precision"] > 0.8
    assert scores["class_entropy"] < 0.2 and scores["class_kl_uniform"] > 2.0
    assert scores["inception_score"] < 1.5


def test_evaluate_on_memorised_copies_and_on_pm1_input(sets):
    net, x_train, y_train, _ = sets
    a = M.evaluate(x_train[:200], value_range="01", labels=y_train[:200])
    b = M.evaluate(2 * x_train[:200] - 1, value_range="pm1", labels=y_train[:200])
    assert a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=1e-5, abs_tol=1e-6) for k in a)
    assert {"fid", "kid", "precision", "recall", "class_entropy", "class_kl_uniform", "inception_score",
            "conditional_accuracy", "nn_train_ratio", "n", "n_reference"} == set(a)
    assert a["n"] == 200 and a["nn_train_ratio"] < 1e-3 and a["conditional_accuracy"] > 0.95
    assert a["fid"] < 30 and a["precision"] > 0.7 and a["recall"] > 0.7


def test_a_random_feature_network_gives_different_numbers(sets):
    net, x_train, _, x_test = sets
    rand = M.random_feature_net(0)
    assert all(torch.equal(p, q) for p, q in zip(rand.parameters(), M.random_feature_net(0).parameters()))
    assert not torch.equal(next(rand.parameters()), next(M.random_feature_net(1).parameters()))
    f1, _ = M.embed(x_train[:300], value_range="01", net=rand)
    f2, _ = M.reference_embedding(net=rand)
    fid_random = M.frechet_distance(f1, f2)
    t1, _ = M.embed(x_train[:300], value_range="01")
    t2, _ = M.reference_embedding()
    fid_trained = M.frechet_distance(t1, t2)
    assert f1.shape == t1.shape == (300, 128) and not torch.allclose(f1, t1)
    assert math.isfinite(fid_random) and fid_random > 0
    assert abs(fid_random - fid_trained) > 0.1 * fid_trained, (fid_random, fid_trained)


def test_scoreboard_runs_and_formats_baselines(capsys):
    rows = scoreboard.run(["uniform noise", "memorised training images", "Gaussian per class"], n=200)
    table = scoreboard.format_table(rows)
    assert table.count("\n") == 4 and "| uniform noise |" in table and "–" in table
    noise, memorised, gauss = rows
    assert noise["fid"] > gauss["fid"] > memorised["fid"]
    assert memorised["nn_train_ratio"] < 1e-3 < gauss["nn_train_ratio"]
    assert gauss["conditional_accuracy"] > 0.5 and "conditional_accuracy" not in noise
