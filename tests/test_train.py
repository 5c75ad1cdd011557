"""Tests of aecourse.train (fit, mixed precision, the CLI), aecourse.checkpoint (exact
resume), aecourse.distributed (DDP on two processes) and aecourse.recipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from aecourse import train
from aecourse.checkpoint import CHECKPOINT
from aecourse.data import load
from aecourse.distributed import process_group
from aecourse.losses import Loss
from aecourse.train import History, TrainConfig, default_device, fit, set_seed

REPO = Path(__file__).resolve().parents[1]


class TinyAE(nn.Module):
    """784 -> 8 -> 784, with dropout so that the global torch RNG matters too."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(784, 8))
        self.decoder = nn.Sequential(nn.Linear(8, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def denoising_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> Loss:
    """Noise from the generator, so that its state has to be checkpointed as well."""
    x = batch[0]
    noise = 0.1 * torch.randn(x.shape, generator=generator, device=x.device)
    recon = ((model(x + noise) - x) ** 2).mean()
    return Loss(recon, {"recon": recon, "double": 2 * recon})


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load("fashion-mnist", "train").subset(256).x  # (256, 1, 28, 28)


def _train(images: torch.Tensor, epochs: int, seed: int = 0, **kwargs) -> tuple[nn.Module, History]:
    set_seed(seed)
    model = TinyAE()
    config = TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, seed=seed, **kwargs)
    return model, fit(model, denoising_loss, (images,), config, device="cpu", progress=False)


def test_set_seed_and_default_device() -> None:
    g = set_seed(3)
    a = torch.rand(3)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(3)))
    set_seed(3)
    assert torch.equal(torch.rand(3), a)
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert default_device() == torch.device(expected)


def test_fit_lowers_the_loss_and_records_history(images: torch.Tensor) -> None:
    model, history = _train(images, epochs=4)
    assert isinstance(history, History) and len(history) == 4
    assert history.column("epoch") == [1, 2, 3, 4]
    assert set(history[0]) == {"epoch", "loss", "recon", "double", "seconds", "images_per_second"}
    losses = history.column("loss")
    assert losses[-1] < 0.8 * losses[0]
    assert history[-1]["double"] == pytest.approx(2 * history[-1]["recon"])  # per-image means
    assert history[-1]["loss"] == pytest.approx(history[-1]["recon"])
    assert history.images_per_second > 0 and history.seconds > 0
    # the trained model reconstructs the first real batch better than a fresh one
    set_seed(0)
    fresh = TinyAE().eval()
    x = images[:64]
    with torch.no_grad():
        assert ((model.eval()(x) - x) ** 2).mean() < 0.8 * ((fresh(x) - x) ** 2).mean()


def test_same_seed_same_numbers(images: torch.Tensor) -> None:
    model_a, history_a = _train(images, epochs=2, seed=5)
    model_b, history_b = _train(images, epochs=2, seed=5)
    _, history_c = _train(images, epochs=2, seed=6)
    assert history_a.column("loss") == history_b.column("loss")
    assert history_a.column("loss") != history_c.column("loss")
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(a, b)


class Interrupted(Exception):
    """Stands for a session that dies mid-run (Ctrl-C, a Colab disconnect)."""


def interrupted_after(steps: int):
    """denoising_loss that raises on call number steps + 1."""
    calls = 0

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> Loss:
        nonlocal calls
        calls += 1
        if calls > steps:
            raise Interrupted
        return denoising_loss(model, batch, generator)

    return loss_fn


def test_interrupted_run_resumes_exactly(images: torch.Tensor, tmp_path: Path) -> None:
    model_full, full = _train(images, epochs=4, checkpoint_dir=tmp_path / "full")
    config = TrainConfig(epochs=4, batch_size=32, lr=1e-2, seed=0, checkpoint_dir=tmp_path / "cut")
    set_seed(0)
    with pytest.raises(Interrupted):  # dies in epoch 3, after the checkpoint of epoch 2
        fit(TinyAE(), interrupted_after(2 * 8 + 3), (images,), config, device="cpu", progress=False)
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["epoch"] == 2
    set_seed(123)  # a new session: another initialisation, other random states
    model_resumed = TinyAE()
    resumed = fit(model_resumed, denoising_loss, (images,), config, device="cpu", progress=False)
    assert resumed.column("loss") == full.column("loss")
    assert resumed.column("recon") == full.column("recon")
    for (key, a), b in zip(model_full.state_dict().items(), model_resumed.state_dict().values()):
        assert torch.equal(a, b), key
    # the checkpoint loads without unpickling code and holds the plain module's state
    state = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 4 and len(state["history"]) == 4
    assert set(state["model"]) == set(model_full.state_dict())
    assert not list((tmp_path / "cut").glob("*.tmp"))  # written atomically


def test_finished_run_is_not_retrained(images: torch.Tensor, tmp_path: Path) -> None:
    model, history = _train(images, epochs=1, checkpoint_dir=tmp_path)
    set_seed(99)
    again = TinyAE()
    config = TrainConfig(epochs=1, batch_size=32, lr=1e-2, seed=0, checkpoint_dir=tmp_path)
    history_again = fit(again, denoising_loss, (images,), config, device="cpu", progress=False)
    assert history_again == history  # read back, nothing trained
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_resuming_with_other_settings_is_refused(images: torch.Tensor, tmp_path: Path) -> None:
    _train(images, epochs=1, checkpoint_dir=tmp_path)
    config = TrainConfig(epochs=2, batch_size=64, lr=1e-2, seed=0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size: checkpoint 32, now 64"):
        fit(TinyAE(), denoising_loss, (images,), config, device="cpu", progress=False)


def test_fit_rejects_empty_data() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fit(TinyAE(), denoising_loss, (torch.zeros(0, 1, 28, 28),), TrainConfig(epochs=1), device="cpu")


def deterministic_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> Loss:
    x = batch[0]
    recon = ((model(x) - x) ** 2).mean()
    return Loss(recon, {"recon": recon})


def ddp_run(out_dir: str) -> tuple[nn.Module, History]:
    """The run shared by the DDP test (under torchrun) and its single-process reference.
    69 images in batches of 16: the last batch (5 images) splits unevenly, 3 + 2."""
    set_seed(0)
    model = TinyAE(dropout=0.0)  # no randomness: two processes cannot share one noise stream
    x = load("fashion-mnist", "train").subset(69).x
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, seed=0)
    with process_group(torch.device("cpu")) as (ddp, device):
        history = fit(model, deterministic_loss, (x,), config, device=device, progress=False, ddp=ddp)
    if ddp.rank == 0:
        torch.save(model.state_dict(), Path(out_dir) / "model.pt")
        (Path(out_dir) / "history.json").write_text(json.dumps(list(history)))
    return model, history


def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n"
                      "from test_train import ddp_run\nddp_run(sys.argv[1])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path)]
    # ~20 s on an idle machine; generous because a loaded one imports torch slowly
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    model, history = ddp_run(str(single_dir))
    ddp_state = torch.load(tmp_path / "model.pt", weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-4, atol=1e-5, msg=key)
    ddp_history = json.loads((tmp_path / "history.json").read_text())
    assert [r["loss"] for r in ddp_history] == pytest.approx(history.column("loss"), rel=1e-5)
    # each rank trained on its own half of every batch: 69 images per epoch between them
    assert [round(r["images_per_second"] * r["seconds"]) for r in ddp_history] == [69, 69]
    # and training did move the parameters, so the comparison says something
    set_seed(0)
    assert not torch.allclose(TinyAE(dropout=0.0).state_dict()["encoder.2.weight"], ddp_state["encoder.2.weight"])


def test_cli_trains_saves_and_resumes(tmp_path: Path) -> None:
    from aecourse.pretrained import load_card, load_pretrained
    from aecourse.train import main

    args = ["ae", "--limit", "256", "--epochs", "1", "--out", str(tmp_path), "--device", "cpu", "--batch-size", "64"]
    path = main(args)
    assert path == tmp_path / "ae.safetensors" and (tmp_path / "ae.json").exists()
    card = load_card("ae", weights_dir=tmp_path)
    assert card["model"] == "AE" and card["config"]["latent_dim"] == 16
    assert card["data"] == "fashion-mnist" and card["train_images"] == 256
    assert (card["epochs"], card["batch_size"], card["lr"], card["seed"]) == (1, 64, 1e-3, 0)
    assert card["device"] == "cpu" and card["device_name"]
    assert card["command"] == "python -m aecourse.train " + " ".join(args)
    assert len(card["train_history"]) == 1 and card["wall_time_s"] >= 0
    model = load_pretrained("ae", weights_dir=tmp_path)
    x = load("fashion-mnist", "test").subset(4).x
    assert model(x).x_hat.shape == x.shape
    # asking for a second epoch continues from the checkpoint instead of starting over
    main([*args[:4], "2", *args[5:]])
    card2 = load_card("ae", weights_dir=tmp_path)
    assert len(card2["train_history"]) == 2 and card2["train_history"][0] == card["train_history"][0]
    assert card2["wall_time_s"] >= card["wall_time_s"]


def test_cli_trains_the_prior_on_vqvae_codes(tmp_path: Path) -> None:
    from aecourse.pretrained import load_card, load_pretrained
    from aecourse.train import main

    common = ["--limit", "64", "--epochs", "1", "--out", str(tmp_path), "--device", "cpu"]
    main(["vqvae", *common])
    main(["prior", *common, "--vqvae-from", str(tmp_path)])
    prior, vqvae = load_pretrained("prior", weights_dir=tmp_path), load_pretrained("vqvae", weights_dir=tmp_path)
    assert prior.config.codebook_size == vqvae.config.codebook_size
    assert prior.config.grid == vqvae.config.grid == 7
    assert load_card("prior", weights_dir=tmp_path)["train_history"][0]["nll"] > 0


def test_cli_trains_the_sae_on_classifier_features_and_resumes(tmp_path: Path) -> None:
    from aecourse.pretrained import load_card, load_pretrained
    from aecourse.train import main

    args = ["sae", "--limit", "64", "--epochs", "1", "--out", str(tmp_path), "--device", "cpu"]
    main(args)
    card = load_card("sae", weights_dir=tmp_path)
    assert card["activations_from"] == "classifier" and card["train_images"] == 64
    sae = load_pretrained("sae", weights_dir=tmp_path)
    assert sae.config.input_dim == load_pretrained("classifier").config.feature_dim
    main([*args[:4], "2", *args[5:]])
    card2 = load_card("sae", weights_dir=tmp_path)
    assert len(card2["train_history"]) == 2 and card2["train_history"][0] == card["train_history"][0]
    assert card2["train_history"][0]["l0"] <= 16


def test_train_recipe_learns_the_features_of_a_classifier_it_is_given() -> None:
    from aecourse.models import Classifier, ClassifierConfig
    from aecourse.train import train_recipe

    set_seed(0)
    classifier = Classifier(ClassifierConfig(channels=(4, 8), feature_dim=24))
    sae = train_recipe("sae", epochs=1, limit=64, device="cpu", progress=False, activations_of=classifier)
    assert sae.config.input_dim == 24 and sae.config.topk == 16


def test_train_recipe_overrides_the_config_and_returns_an_eval_model() -> None:
    from aecourse.train import train_recipe

    model = train_recipe("ae", latent_dim=3, epochs=1, limit=128, device="cpu", progress=False)
    assert model.config.latent_dim == 3 and not model.training
    with pytest.raises(ValueError, match="unknown recipe 'resnet'"):
        train_recipe("resnet")


def test_cli_rejects_unknown_models() -> None:
    from aecourse.train import main

    with pytest.raises(SystemExit):
        main(["resnet"])


RECIPE_EXPECTATIONS = {  # name -> (model class, config fields that define it)
    "ae": ("AE", {"latent_dim": 16, "linear": False}),
    "ae-2d": ("AE", {"latent_dim": 2}),
    "ae-linear": ("AE", {"latent_dim": 16, "linear": True}),
    "dae": ("DAE", {"latent_dim": 64}),
    "dae-16": ("DAE", {"latent_dim": 16}),
    "ae-mlp": ("AE", {"latent_dim": 16, "hidden_dim": 128}),
    "cae": ("AE", {"latent_dim": 16, "hidden_dim": 128}),
    "vae": ("VAE", {"latent_dim": 16, "mlp": False}),
    "vae-2d": ("VAE", {"latent_dim": 2}),
    "vae-mlp": ("VAE", {"latent_dim": 20, "mlp": True, "hidden_dim": 400}),
    "vae-mlp-16": ("VAE", {"latent_dim": 16, "mlp": True, "hidden_dim": 128}),
    "vae-mlp-beta4": ("VAE", {"latent_dim": 16, "mlp": True, "hidden_dim": 128}),
    "vae-mlp-warmup": ("VAE", {"latent_dim": 16, "mlp": True, "hidden_dim": 128}),
    "vae-mlp-freebits": ("VAE", {"latent_dim": 16, "mlp": True, "hidden_dim": 128}),
    **{f"vae-gauss-{s}": ("VAE", {"latent_dim": 16, "mlp": True, "hidden_dim": 128, "sigma_dec": s})
       for s in (0.03, 0.1, 0.3, 1.0)},
    "cvae-mlp-16": ("VAE", {"latent_dim": 16, "mlp": True, "hidden_dim": 128, "num_classes": 10}),
    "cvae-mlp-16-beta4": ("VAE", {"latent_dim": 16, "mlp": True, "hidden_dim": 128, "num_classes": 10}),
    "vqvae": ("VQVAE", {}),
    "prior": ("Prior", {}),
    "classifier": ("Classifier", {}),
    "sae": ("SAE", {"features": 512, "topk": 16}),
    "sae-l1": ("SAE", {"features": 512, "topk": None}),
    "sae-aux": ("SAE", {"features": 512, "topk": 16, "dead_after": 10_000}),
}


@pytest.mark.parametrize("name", sorted(RECIPE_EXPECTATIONS))
def test_recipe_builds_a_model_whose_loss_trains(name: str) -> None:
    from aecourse.recipes import RECIPES

    recipe = RECIPES[name]
    class_name, fields = RECIPE_EXPECTATIONS[name]
    set_seed(0)
    model = recipe.model()
    assert type(model).__name__ == class_name
    assert all(getattr(model.config, k) == v for k, v in fields.items())
    assert model.config is not recipe.config  # the recipe's config is never shared or modified
    if recipe.codes_from is not None:
        batch = (torch.randint(0, model.config.codebook_size, (2, model.config.grid, model.config.grid)),)
    elif recipe.activations_from is not None:  # a classifier's features
        batch = (torch.rand(4, model.config.input_dim),)
    else:
        d = load("fashion-mnist", "train").subset(4)
        batch = (d.x, d.y)
    loss = recipe.loss(model, batch, torch.Generator().manual_seed(0))
    loss.total.backward()
    assert torch.isfinite(loss.total) and all(torch.isfinite(v) for v in loss.terms.values())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert recipe.epochs > 0 and recipe.batch_size > 0 and recipe.lr > 0 and recipe.description
    assert set(RECIPES) == set(RECIPE_EXPECTATIONS)


# --- mixed precision --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((7, 5), torch.float16), ((7, 0), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
)
def test_autocast_dtype_follows_the_compute_capability(monkeypatch, capability, expected):
    """bfloat16 from Ampere (8.0) on; float16, with a GradScaler, on older GPUs (a T4 is 7.5)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # or the scaler turns off
    cuda = torch.device("cuda")
    assert train.autocast_dtype(cuda) == expected
    assert train.autocast_dtype(cuda, amp=False) is None
    scaler = train.grad_scaler(train.autocast_dtype(cuda))
    assert scaler.is_enabled() == (expected == torch.float16)


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_no_autocast_off_cuda(monkeypatch, device):
    def no_gpu(device=None):
        raise AssertionError("the capability of a GPU that is not there was asked for")

    monkeypatch.setattr(torch.cuda, "get_device_capability", no_gpu)
    assert train.autocast_dtype(torch.device(device)) is None
    assert not train.grad_scaler(None).is_enabled()
    with train.autocast(torch.device(device), None):  # a no-op context, even on MPS
        assert not torch.is_autocast_enabled()


def test_the_learning_rate_falls_along_a_half_cosine():
    config = TrainConfig(lr=0.1)
    rates = [train._learning_rate(config, step, 4) for step in range(5)]
    assert rates == pytest.approx([0.1, 0.1 * (1 + 2**-0.5) / 2, 0.05, 0.1 * (1 - 2**-0.5) / 2, 0.0])


# --- bad input is an error ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fields", [dict(epochs=0), dict(epochs=-1), dict(batch_size=0), dict(epochs=2.5), dict(lr=0.0),
               dict(lr=-1e-3), dict(lr=float("nan"))],
    ids=str,
)
def test_train_config_rejects_bad_values(fields):
    with pytest.raises(ValueError, match=f"{next(iter(fields))} must be a positive"):
        TrainConfig(**fields)


@pytest.mark.parametrize(
    "args",
    [["--epochs", "0"], ["--epochs", "-1"], ["--batch-size", "0"], ["--lr", "0"], ["--limit", "0"],
     ["--epochs", "ten"], ["--batch-size", "1.5"]],
    ids=" ".join,
)
def test_cli_rejects_non_positive_numbers(tmp_path: Path, capsys, args) -> None:
    """Once, `--epochs 0` trained the recipe's 60 epochs and `--epochs -1` saved an untrained
    model: now each exits with status 2, saying what was expected, and writes nothing."""
    from aecourse.train import main

    with pytest.raises(SystemExit) as exit_info:
        main(["ae", "--out", str(tmp_path), "--device", "cpu", *args])
    assert exit_info.value.code == 2
    assert f"{args[0]}: expected a positive" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fields", [dict(epochs=0), dict(batch_size=0), dict(lr=0.0), dict(limit=0)], ids=str)
def test_train_recipe_rejects_zero_instead_of_taking_the_recipe_default(fields):
    from aecourse.train import train_recipe

    with pytest.raises(ValueError, match="positive"):
        train_recipe("ae", device="cpu", progress=False, **fields)


def test_an_uneven_split_is_refused_when_a_batch_cannot_be_shared():
    from aecourse.data import Batches
    from aecourse.distributed import Distributed

    batches = Batches(torch.zeros(10, 1), batch_size=2)
    assert Distributed().shard(batches) is batches  # one process: the batches themselves
    with pytest.raises(ValueError, match="batch_size 2 cannot be split between 3 processes"):
        Distributed(rank=0, world_size=3).shard(batches)
    shards = Distributed(rank=1, world_size=2).shard(Batches(torch.arange(5.0)[:, None], batch_size=5,
                                                             shuffle=False))
    assert len(shards) == 1 and [b[0].flatten().tolist() for b in shards] == [[3.0, 4.0]]
