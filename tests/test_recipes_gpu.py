"""The ``gpu`` profile's settings of every training recipe, run on the CPU for two steps.

No chapter runs under ``gpu`` in the tests, so a shape, memory-layout or settings error of the
larger gpu networks and batches (chapter 12's wider, deeper U-Net, a batch larger than the data,
chapter 08's 2,000 FID samples) would only show on a GPU. Here each recipe's settings are built
under ``GENCOURSE_PROFILE=gpu`` exactly as that profile gives them, only the number of steps is cut
to 2, and the recipe's own build, train and sampling functions run on them. Under ``gpu`` the data
source resolves to torchvision's full MNIST: it comes from the offline fake mirror of conftest.py,
and a spy checks that the recipe trained on it (a failed download would fall back to the embedded
subset silently, since the recipes ask for the data with ``verbose=False``).
"""

import math
import shutil

import pytest
import torch

from gencourse import config, data, train
from gencourse.data import images
from gencourse.metrics import features
from gencourse.models import conditional as cond
from gencourse.models import gan
from gencourse.recipes import conditional, dcgan, diffusion, flow, style, translation, vae, wgan

pytestmark = pytest.mark.usefixtures("one_thread")

# Fake full MNIST: 256 training images are two batches of the largest gpu batch (128: the VAE,
# which draws batches without replacement and drops the last partial one, so that fewer images
# than a batch would leave it waiting for a batch forever; the others draw with replacement).
# 64 test images are the real images of chapter 08's FID under gpu (the held-out split).
N_TRAIN, N_TEST = 256, 64
STEPS = 2


@pytest.fixture
def gpu_mirror(fake_mnist_mirror, monkeypatch):
    """The gpu profile with the fake full MNIST; returns the list of the ``(split, n)`` that torchvision delivered."""
    fake_mnist_mirror(N_TRAIN, N_TEST)
    monkeypatch.setenv("GENCOURSE_PROFILE", "gpu")
    delivered = []
    real = images._torchvision_tensors

    def spy(split, root, download):
        x, y = real(split, root, download)
        delivered.append((split, len(x)))
        return x, y

    monkeypatch.setattr(images, "_torchvision_tensors", spy)
    return delivered


@pytest.fixture(scope="module")
def feature_net_file():
    """The checkpoint of the metrics' feature network in the test session's cache (trained there
    once if no test has yet). It is the same under every profile: copied into a test's own cache,
    chapter 08's FID checkpoints load it instead of training it again (about 25 s)."""
    features.feature_net(verbose=False)
    return features.feature_net_path()


def _under(monkeypatch, profile: str, settings_fn):
    monkeypatch.setenv("GENCOURSE_PROFILE", profile)
    return settings_fn()


def _changed_keys(cpu: dict, gpu: dict) -> set:
    assert cpu.keys() == gpu.keys()
    return {k for k in gpu if gpu[k] != cpu[k]}


def _weights(*modules) -> list:
    return [p.detach().clone() for m in modules for p in m.state_dict().values() if p.is_floating_point()]


def _check_trained(before: list, *modules) -> None:
    """Every weight finite, and the training changed some of them."""
    after = _weights(*modules)
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def _check_history(history: train.History, keys) -> None:
    assert len(history) == STEPS
    for key in keys:
        values = history[key]
        assert len(values) == STEPS and all(math.isfinite(v) for v in values), (key, values)


def _check_images(x: torch.Tensor, n: int, low: float, high: float) -> None:
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert torch.isfinite(x).all()
    assert x.min() >= low and x.max() <= high
    assert x.std() > 0  # not a constant image


def _check_record(record, snapshots: int, n_images: int, shape=(1, 28, 28)) -> None:
    assert record.images.shape == (snapshots, n_images, *shape)
    assert torch.isfinite(record.images).all() and record.images.abs().max() <= 1
    assert record.images[0].std() > 0  # the grid at step 0 was drawn
    assert record.steps.max().item() == STEPS  # ... and the one at the last step
    assert record.cpu_seconds.item() > 0


# ------------------------------------------------------------------------------------------ VAE (chapter 04)


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_vae_gpu_settings_train_and_sample(gpu_mirror, monkeypatch, name):
    cpu = _under(monkeypatch, "cpu", lambda: vae.vae_settings(name))
    gpu = _under(monkeypatch, "gpu", lambda: vae.vae_settings(name))
    assert _changed_keys(cpu, gpu) == {"steps"} and gpu["steps"] == vae.VAE_STEPS["gpu"] == 20_000
    settings = dict(gpu, steps=STEPS)
    model = vae.build_vae(settings)
    before = _weights(model)
    history = vae.train_vae(model, settings, progress=False)
    assert gpu_mirror == [("train", N_TRAIN)]
    _check_history(history, ["loss", "rec", "kl", "elbo"])
    _check_trained(before, model)
    assert not model.training
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10) if name == "cvae" else None
    with torch.no_grad():
        x = model.sample(10, y, generator=g).cpu()
    _check_images(x, 10, 0.0, 1.0)  # the decoder's Bernoulli means


# ------------------------------------------------------------------------------------------ DCGAN (chapter 07)


def test_dcgan_gpu_settings_train_and_sample(gpu_mirror, monkeypatch):
    cpu = _under(monkeypatch, "cpu", dcgan.dcgan_settings)
    gpu = _under(monkeypatch, "gpu", dcgan.dcgan_settings)
    assert _changed_keys(cpu, gpu) == {"steps"} and gpu["steps"] == 15_000
    settings = dict(gpu, steps=STEPS)
    modules = dcgan.build_dcgan(settings)
    before = _weights(modules["G"], modules["D"])
    history = dcgan.train_dcgan(modules, settings, progress=False)
    assert gpu_mirror == [("train", N_TRAIN)]
    _check_history(history, ["loss_D", "loss_G"])
    _check_trained(before, modules["G"], modules["D"])
    _check_record(modules["record"], settings["snapshots"], 64)
    x = gan.generate(modules["G_ema"], 12, generator=torch.Generator().manual_seed(0))
    _check_images(x, 12, -1.0, 1.0)  # tanh output, not clamped


# ------------------------------------------------------------------------------------------ WGAN-GP (chapter 08)


def test_wgan_gpu_settings_train_and_sample(gpu_mirror, monkeypatch, feature_net_file):
    cpu = _under(monkeypatch, "cpu", wgan.wgan_settings)
    gpu = _under(monkeypatch, "gpu", wgan.wgan_settings)
    assert _changed_keys(cpu, gpu) == {"steps", "n_fid"} and (gpu["steps"], gpu["n_fid"]) == (10_000, 2_000)
    shutil.copy(feature_net_file, features.feature_net_path())  # into this test's cache: loaded, not trained
    # the gpu's 8 checkpoints and 2,000 FID samples are kept: over 2 steps the checkpoints fall on
    # steps 1 and 2, two FIDs of 2,000 samples (a few CPU seconds)
    settings = dict(gpu, steps=STEPS)
    modules = wgan.build_wgan(settings)
    before = _weights(modules["G"], modules["critic"])
    history = wgan.train_wgan(modules, settings, progress=False)
    # the training images, then at each FID checkpoint the held-out ones of the reference
    assert gpu_mirror == [("train", N_TRAIN)] + [("test", N_TEST)] * len(history.info["checkpoints"])
    _check_history(history, ["w1", "gp", "loss_critic", "loss_G"])
    _check_trained(before, modules["G"], modules["critic"])
    _check_record(modules["record"], settings["snapshots"], 64)
    checkpoints = history.info["checkpoints"]
    assert [c["step"] for c in checkpoints] == [1, 2]
    assert all(math.isfinite(c["fid"]) and c["fid"] > 0 and math.isfinite(c["w1"]) for c in checkpoints)
    x = gan.generate(modules["G_ema"], 12, generator=torch.Generator().manual_seed(0))
    _check_images(x, 12, -1.0, 1.0)


# ------------------------------------------------------------------------------------------ StyleGAN (chapter 11)


@pytest.mark.parametrize("kind", ["adain", "demod"])
def test_style_gpu_settings_train_and_sample(gpu_mirror, monkeypatch, kind):
    cpu = _under(monkeypatch, "cpu", style.style_settings)
    gpu = _under(monkeypatch, "gpu", style.style_settings)
    assert _changed_keys(cpu, gpu) == {"steps"} and gpu["steps"] == 20_000
    settings = dict(gpu, steps=STEPS, kind=kind)
    modules = style.build_style(settings)
    before = _weights(modules["G"], modules["D"])
    history = style.train_style(modules, settings, progress=False)
    assert gpu_mirror == [("train", N_TRAIN)]
    _check_history(history, ["loss_D", "loss_G", "r1"])
    _check_trained(before, modules["G"], modules["D"])
    _check_record(modules["record"], settings["snapshots"], 64, shape=(1, 32, 32))
    assert modules["G_ema"].w_avg.abs().sum() > 0
    x = style.sample28(modules["G_ema"], 12, generator=torch.Generator().manual_seed(0))
    _check_images(x, 12, -1.0, 1.0)


# ------------------------------------------------------------------------------------------ DDPM (chapter 12)


def test_ddpm_gpu_settings_train_and_sample(gpu_mirror):
    cpu, gpu = diffusion.ddpm_settings(profile="cpu"), diffusion.ddpm_settings()  # the active profile: gpu
    assert gpu == diffusion.ddpm_settings(profile="gpu")
    assert _changed_keys(cpu, gpu) == {"channels", "n_res", "steps", "batch_size", "lr", "ema_decay"}
    assert (gpu["channels"], gpu["n_res"], gpu["steps"], gpu["batch_size"], gpu["lr"], gpu["ema_decay"]) == (
        [64, 128], 2, diffusion.DDPM_STEPS["gpu"], 128, 1e-3, 0.9995)
    settings = dict(gpu, steps=STEPS)
    model = diffusion.build_unet(settings)
    ema = train.EMA(model, decay=settings["ema_decay"])
    before, before_ema = _weights(model), _weights(ema.module)
    history = diffusion.train_ddpm(model, ema, settings, progress=False)
    assert gpu_mirror == [("train", N_TRAIN)]
    _check_history(history, ["loss"])
    _check_trained(before, model)
    _check_trained(before_ema, ema.module)  # the average moved towards the trained weights ...
    # ... a guided DDIM run with few steps (the chapter's sampler has 20); labels 0..9 and the null label
    labels = torch.tensor([0, 3, 7, 9, model.null_label])
    with config.threads(1):
        x = diffusion.sample_mnist(ema.module, diffusion.make_schedule(settings), labels, w=diffusion.SAMPLER["w"], n_steps=3,
                                   generator=torch.Generator().manual_seed(0))
    _check_images(x, len(labels), -1.0, 1.0)


# ------------------------------------------------------------------------------------------ conditional GANs (chapter 09)


@pytest.mark.parametrize("model", conditional.MODELS)
def test_conditional_gpu_settings_train_and_sample(gpu_mirror, monkeypatch, model):
    cpu = _under(monkeypatch, "cpu", lambda: conditional.conditional_settings(model))
    gpu = _under(monkeypatch, "gpu", lambda: conditional.conditional_settings(model))
    assert _changed_keys(cpu, gpu) == {"steps"} and gpu["steps"] == 10_000
    settings = dict(gpu, steps=STEPS)
    modules = conditional.build_conditional(settings)
    before = _weights(modules["G"], modules["D"])
    history = conditional.train_conditional(modules, settings, progress=False)
    assert gpu_mirror == [("train", N_TRAIN)]
    _check_history(history, history.losses)
    assert len(history.losses) >= 2
    _check_trained(before, modules["G"], modules["D"])
    _check_record(modules["record"], settings["snapshots"], settings["n_classes"] * conditional.N_PER_CLASS)
    g, labels = torch.Generator().manual_seed(0), torch.arange(10).repeat(2)
    if model == "infogan":
        x = conditional.sample_infogan(modules["G_ema"], labels, generator=g)
    else:
        x = conditional.sample_conditional(modules["G_ema"], labels, generator=g)
        raw = cond.generate(modules["G_ema"], labels, generator=torch.Generator().manual_seed(0))
        assert raw.abs().max() <= 1 and torch.equal(raw, x)  # the generator's tanh: the clamp changes nothing
    _check_images(x, len(labels), -1.0, 1.0)


# ------------------------------------------------------------------------------------------ translation (chapter 10)


@pytest.mark.parametrize("variant, task", [("pix2pix", "edges2digits"), ("pix2pix", "grey2colour"), ("cyclegan", "uci2mnist")])
def test_translation_gpu_settings_train_and_translate(gpu_mirror, monkeypatch, variant, task):
    cpu = _under(monkeypatch, "cpu", lambda: translation.translation_settings(variant, task))
    gpu = _under(monkeypatch, "gpu", lambda: translation.translation_settings(variant, task))
    assert _changed_keys(cpu, gpu) == {"steps"} and gpu["steps"] == 10_000
    settings = dict(gpu, steps=STEPS)
    modules = translation.build_translation(settings)
    cyclegan = variant in translation.CYCLEGAN_VARIANTS
    nets = [modules[k] for k in (("G_AB", "G_BA", "D_A", "D_B") if cyclegan else ("G", "D"))]
    before = _weights(*nets)
    history = translation.train_translation(modules, settings, progress=False)
    # MNIST (the targets of edges2digits, domain B of CycleGAN) is the full set: the training images,
    # then the held-out inputs of the record; grey2colour reads only scikit-image's photographs
    assert gpu_mirror == ([] if task == "grey2colour" else [("train", N_TRAIN), ("test", N_TEST)])
    _check_history(history, history.losses)
    _check_trained(before, *nets)
    c_out, side = (3, 32) if task == "grey2colour" else (1, 28)
    n_grid = 2 * translation.N_GRID if cyclegan else translation.N_GRID
    _check_record(modules["record"], settings["snapshots"], n_grid, (c_out, side, side))
    if cyclegan:
        a, b = data.unpaired("test")
        pairs = [(modules["G_AB"], a.tensors[0][:6]), (modules["G_BA"], b.tensors[0][:6])]
    else:
        pairs = [(modules["G"], data.paired(task, "test").tensors[0][:6])]
    for G, x in pairs:
        y = translation.translate(G, x)
        assert y.shape == (6, c_out, side, side) and y.dtype == torch.float32 and y.device.type == "cpu"
        assert torch.isfinite(y).all() and y.min() >= -1 and y.max() <= 1 and y.std() > 0


# ------------------------------------------------------------------------------------------ flow matching (chapter 13)


def test_flow_gpu_settings_train_and_sample(gpu_mirror):
    cpu, gpu = flow.flow_settings(profile="cpu"), flow.flow_settings()
    assert _changed_keys(cpu, gpu) == {"channels", "n_res", "steps", "batch_size", "lr", "ema_decay"}
    model, history = flow.flow_mnist("flow_gpu_test", progress=False, steps=STEPS)
    assert gpu_mirror == [("train", N_TRAIN)]
    _check_history(history, ["loss"])
    labels = torch.tensor([0, 3, model.null_label])
    x = flow.sample_flow(model, labels, n_steps=2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 28, 28) and bool(torch.isfinite(x).all())
    ae = flow.latent_ae_settings(name="latent_ae_gpu_test", steps=STEPS)
    latent, autoencoder, scale, lhistory = flow.latent_flow_mnist("latent_gpu_test", progress=False, steps=STEPS, autoencoder=ae)
    _check_history(lhistory, ["loss"])
    assert latent.in_channels == 4 and latent.image_size == 7 and scale > 0
    x = flow.sample_latent(latent, autoencoder, scale, labels, n_steps=2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 28, 28) and bool(torch.isfinite(x).all())
