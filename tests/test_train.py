"""The training loop: views, losses, checkpoints, resume, NaN."""

from __future__ import annotations

import math

import pytest
import torch

from ood_explain import augment, data, losses, methods, models
from ood_explain import training as train_module
from ood_explain.core.methods import Forward
from ood_explain.core.training import NonFiniteLossError, TrainConfig


@pytest.fixture(scope="module")
def oe_images():
    return data.sample_photo_crops(64, 28, 1, seed=1).images


def model_for(method: str, seed: int = 0):
    torch.manual_seed(seed)
    return models.build_model("small-cnn", 1, with_classifier=method == "bce")


def tiny(method: str = "oecl", **overrides) -> TrainConfig:
    settings = dict(method=method, epochs=3, batch_size=16, max_steps_per_epoch=2, seed=0)
    settings.update(overrides)
    return TrainConfig(**settings)


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------- config


def test_train_config_validation():
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="csi")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="OE term .* would never be used"):
        TrainConfig(method="oecl", epochs=10, warmup_epochs=10)
    with pytest.raises(ValueError, match="warmup_epochs must be >= 0"):
        TrainConfig(method="simclr", warmup_epochs=-1)
    TrainConfig(method="simclr", epochs=10, warmup_epochs=10)  # no OE term: the warm-up changes nothing
    TrainConfig(method="oecl", epochs=10, warmup_epochs=10, alpha=0.0)  # OECL without OE, on purpose
    config = TrainConfig(augment={"crop_scale": [0.5, 1.0], "flip_p": 0.0})
    assert config.augment.crop_scale == (0.5, 1.0) and config.augment.flip_p == 0.0
    paper = TrainConfig()
    assert (paper.lr, paper.momentum, paper.weight_decay, paper.temperature) == (0.1, 0.9, 5e-4, 0.5)


# ---------------------------------------------------------------------------------- views and loss


def test_make_views_layouts():
    images = torch.randint(0, 256, (4, 1, 12, 12), dtype=torch.uint8)
    oe = torch.randint(0, 256, (4, 1, 12, 12), dtype=torch.uint8)
    config = augment.AugmentConfig()
    x, n_id = methods.get("simclr").make_views(images, None, config, augment.make_generator(0))
    assert x.shape == (8, 1, 12, 12) and n_id == 8
    x, n_id = methods.get("oecl").make_views(images, oe, config, augment.make_generator(0))
    assert x.shape == (16, 1, 12, 12) and n_id == 8
    x, n_id = methods.get("self-oecl").make_views(images, None, config, augment.make_generator(0))
    assert x.shape == (32, 1, 12, 12) and n_id == 16
    blocks = x.split(4)  # [v1, rot90 v1, v2, rot90 v2, rot180 w1, rot270 w1, rot180 w2, rot270 w2]
    assert torch.equal(blocks[1], augment.rotate90(blocks[0], 1))
    assert torch.equal(blocks[3], augment.rotate90(blocks[2], 1))
    assert torch.equal(blocks[5], augment.rotate90(blocks[4], 1))  # rot270 w = rot90 (rot180 w)
    assert torch.equal(blocks[7], augment.rotate90(blocks[6], 1))
    assert not torch.allclose(blocks[0], blocks[2])  # two independent views
    assert not torch.allclose(augment.rotate90(blocks[4], 2), blocks[0])  # OE views are fresh views
    with pytest.raises(ValueError, match="OE"):
        methods.get("oecl").make_views(images, None, config, augment.make_generator(0))


def test_method_losses_match_their_formulas():
    model = model_for("bce")
    x = torch.rand(12, 1, 28, 28)
    model.train()
    h, z = model(x)
    for method in ("simclr", "oecl", "self-oecl", "hsc", "bce"):
        n_id = 12 if method == "simclr" else 8
        loss = methods.get(method).loss(Forward(h, z, n_id, model.logit(h)), 0.7, 0.5)
        expected = {
            "simclr": lambda: losses.nt_xent(z, 0.5),
            "oecl": lambda: losses.nt_xent(z[:8], 0.5) + 0.7 * losses.mean_norm(z[8:]),
            "self-oecl": lambda: losses.nt_xent(z[:8], 0.5) + 0.7 * losses.mean_norm(z[8:]),
            "hsc": lambda: losses.hsc_loss(z[:8], z[8:]),
            "bce": lambda: losses.bce_loss(model.logit(h)[:8], model.logit(h)[8:]),
        }[method]()
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["simclr", "oecl"])
def test_training_step_returns_loss_and_norms_of_its_forward(method):
    torch.manual_seed(0)
    model = model_for(method)
    config = TrainConfig(method=method, batch_size=4, precision="fp32")
    step = train_module.make_training_step(model, config, torch.device("cpu"))
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    oe = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8) if method == "oecl" else None
    x, n_id = step.views(images, oe)
    assert x.is_contiguous(memory_format=torch.channels_last) and n_id == 8
    with torch.no_grad():
        _, z = model(x)
    figures = step.update(x, n_id, alpha=0.7)
    assert figures.shape == (3,) and not figures.requires_grad
    torch.testing.assert_close(figures[1], z[:n_id].norm(dim=1).mean(), rtol=1e-5, atol=1e-5)
    if method == "simclr":
        assert math.isnan(figures[2].item())  # no OE rows
    else:
        torch.testing.assert_close(figures[2], z[n_id:].norm(dim=1).mean(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_oecl_training_lowers_loss_and_oe_norm(digits_class0, oe_images):
    history = train_module.train(model_for("oecl"), digits_class0, tiny("oecl", epochs=6, max_steps_per_epoch=3,
                                 batch_size=32), oe_images, progress=False)
    assert len(history) == 6 and [row["epoch"] for row in history] == list(range(1, 7))
    assert all(math.isfinite(row[key]) for row in history for key in ("loss", "id_norm", "oe_norm"))
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["oe_norm"] < 0.5 * history[0]["oe_norm"]  # the radial pull on OE features
    assert history[-1]["id_norm"] > history[0]["id_norm"]  # while ID norms grow


@pytest.mark.slow
def test_hsc_training_pushes_oe_out_and_id_in(digits_class0, oe_images):
    history = train_module.train(model_for("hsc"), digits_class0, tiny("hsc", epochs=4, max_steps_per_epoch=3,
                                 batch_size=32), oe_images, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["oe_norm"] > history[0]["oe_norm"] and history[-1]["id_norm"] < history[0]["id_norm"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "self-oecl", "bce"])
def test_other_methods_train_with_finite_losses(method, digits_class0, oe_images):
    oe = oe_images if method == "bce" else None
    history = train_module.train(model_for(method), digits_class0, tiny(method, epochs=2), oe, progress=False)
    assert len(history) == 2 and all(math.isfinite(row["loss"]) and row["loss"] > 0 for row in history)
    assert math.isnan(history[0]["oe_norm"]) == (method == "simclr")  # self-OECL has rotated OE rows


@pytest.mark.slow
def test_history_records_schedule_and_warmup(digits_class0, oe_images):
    config = tiny("oecl", epochs=4, warmup_epochs=2, alpha=0.3, lr=0.2, max_steps_per_epoch=1)
    history = train_module.train(model_for("oecl"), digits_class0, config, oe_images, progress=False)
    assert [row["alpha"] for row in history] == [0.0, 0.0, 0.3, 0.3]
    # CosineAnnealingLR(T_max = epochs), stepped per epoch, to 0 without warm-up.
    expected = [0.2 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [row["lr"] for row in history] == pytest.approx(expected)
    assert set(history[0]) >= {"epoch", "loss", "id_norm", "oe_norm", "alpha", "lr", "seconds"}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["oecl", "hsc", "bce"])
def test_methods_needing_oe_without_oe(method, digits_class0):
    with pytest.raises(ValueError, match="needs OE"):
        train_module.train(model_for(method), digits_class0, tiny(method), None, progress=False)
    with pytest.raises(ValueError, match="needs OE"):
        train_module.train(model_for(method), digits_class0, tiny(method),
                           torch.zeros(0, 1, 28, 28, dtype=torch.uint8), progress=False)


@pytest.mark.slow
def test_too_few_images_for_a_batch(digits_class0):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_module.train(model_for("simclr"), digits_class0[:15], tiny("simclr", batch_size=16), progress=False)


@pytest.mark.slow
def test_seeded_training_is_reproducible(digits_class0, oe_images):
    config = tiny("oecl", epochs=2, max_steps_per_epoch=1)
    a, b = model_for("oecl"), model_for("oecl")
    history_a = train_module.train(a, digits_class0, config, oe_images, progress=False)
    history_b = train_module.train(b, digits_class0, config, oe_images, progress=False)
    assert state_equal(a.state_dict(), b.state_dict())
    assert [r["loss"] for r in history_a] == [r["loss"] for r in history_b]
    c = model_for("oecl")
    train_module.train(c, digits_class0, tiny("oecl", epochs=2, max_steps_per_epoch=1, seed=1), oe_images,
                       progress=False)
    assert not state_equal(a.state_dict(), c.state_dict())


# ------------------------------------------------------------------------------- checkpoints/resume


@pytest.mark.slow
def test_checkpoint_written_atomically_every_epoch(tmp_path, digits_class0, oe_images, monkeypatch):
    path = tmp_path / "run" / "checkpoint.pt"
    seen = []
    real_save = train_module.save_checkpoint

    def spy(target, state):
        real_save(target, state)
        on_disk = torch.load(target, weights_only=True)  # complete and loadable after each epoch
        seen.append(on_disk["epoch"])
        assert not list(target.parent.glob("*.tmp"))

    monkeypatch.setattr(train_module, "save_checkpoint", spy)
    model = model_for("oecl")
    history = train_module.train(model, digits_class0, tiny("oecl"), oe_images, checkpoint=path, progress=False)
    assert seen == [1, 2, 3]
    state = train_module.load_checkpoint(path)
    assert state["epoch"] == 3 and state["history"] == history
    assert set(state) >= {"model", "optimizer", "scheduler", "generator", "epoch", "history", "config"}
    assert state["config"]["method"] == "oecl"
    assert state_equal(state["model"], model.state_dict())


def test_save_checkpoint_never_leaves_half_a_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    train_module.save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(3)}, "config": {}})
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        train_module.save_checkpoint(path, {"epoch": 2, "model": {"w": torch.zeros(3)}, "config": {}})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert train_module.load_checkpoint(path)["epoch"] == 1


class Interrupted(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("method", ["oecl", "self-oecl"])
def test_resume_after_interruption_gives_the_same_weights(tmp_path, digits_class0, oe_images, monkeypatch, method):
    config = tiny(method, epochs=4, warmup_epochs=1, seed=3)
    oe = oe_images if method == "oecl" else None
    straight = model_for(method)
    history_straight = train_module.train(straight, digits_class0, config, oe, checkpoint=tmp_path / "a.pt",
                                          progress=False)

    # Same seed and config, killed right after the epoch-2 checkpoint was written.
    real_save = train_module.save_checkpoint

    def save_then_die(target, state):
        real_save(target, state)
        if state["epoch"] == 2:
            raise Interrupted

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        train_module.train(model_for(method), digits_class0, config, oe, checkpoint=tmp_path / "b.pt", progress=False)
    monkeypatch.undo()
    assert train_module.load_checkpoint(tmp_path / "b.pt")["epoch"] == 2

    resumed = model_for(method, seed=99)  # fresh weights: everything must come from the checkpoint
    epochs_run = []
    real_update = train_module.TrainingStep.update

    def count_step(self, x, n_id, alpha):
        epochs_run.append(alpha)
        return real_update(self, x, n_id, alpha)

    monkeypatch.setattr(train_module.TrainingStep, "update", count_step)
    history_resumed = train_module.train(resumed, digits_class0, config, oe, checkpoint=tmp_path / "b.pt",
                                         resume=True, progress=False)
    assert len(epochs_run) == 2 * 2  # only epochs 3 and 4 ran (2 steps each)
    assert state_equal(resumed.state_dict(), straight.state_dict())
    assert [r["loss"] for r in history_resumed] == [r["loss"] for r in history_straight]
    assert [r["epoch"] for r in history_resumed] == [1, 2, 3, 4]


@pytest.mark.slow
def test_resume_without_checkpoint_starts_fresh(tmp_path, digits_class0):
    model = model_for("simclr")
    history = train_module.train(model, digits_class0, tiny("simclr", epochs=1), checkpoint=tmp_path / "none.pt",
                                 resume=True, progress=False)
    assert len(history) == 1 and (tmp_path / "none.pt").exists()


@pytest.mark.slow
def test_nan_loss_raises_and_keeps_previous_checkpoint(tmp_path, digits_class0, oe_images, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    steps_per_epoch = 2
    calls = []
    real_nt_xent = losses.nt_xent

    def nan_from_epoch_two(z, temperature=0.5, gather=False):
        calls.append(1)
        value = real_nt_xent(z, temperature, gather)
        return value * float("nan") if len(calls) > steps_per_epoch else value

    saved = {}
    real_save = train_module.save_checkpoint

    def remember(target, state):
        real_save(target, state)
        saved[state["epoch"]] = target.read_bytes()

    monkeypatch.setattr(losses, "nt_xent", nan_from_epoch_two)
    monkeypatch.setattr(train_module, "save_checkpoint", remember)
    with pytest.raises(NonFiniteLossError, match="epoch 2") as error:
        train_module.train(model_for("oecl"), digits_class0, tiny("oecl", max_steps_per_epoch=steps_per_epoch),
                           oe_images, checkpoint=path, progress=False)
    assert "checkpoint" in str(error.value) and "lower learning rate" in str(error.value)
    assert isinstance(error.value, FloatingPointError)
    assert list(saved) == [1]
    assert path.read_bytes() == saved[1]  # untouched by the failed epoch
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    fresh = model_for("oecl")
    fresh.load_state_dict(state["model"])


@pytest.mark.slow
def test_exploding_learning_rate_raises(tmp_path, digits_class0):
    with pytest.raises(NonFiniteLossError):
        train_module.train(model_for("simclr"), digits_class0, tiny("simclr", lr=1e30, epochs=1),
                           checkpoint=tmp_path / "c.pt", progress=False)
    assert not (tmp_path / "c.pt").exists()  # no epoch finished: nothing written


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path, digits_class0, oe_images):
    checkpoint = tmp_path / "checkpoint.pt"
    train_module.train(model_for("simclr"), digits_class0, tiny("simclr", epochs=1), checkpoint=checkpoint,
                       progress=False)
    with pytest.raises(ValueError, match=r"other settings \(method: 'simclr' in the checkpoint, 'oecl' now"):
        train_module.train(model_for("oecl"), digits_class0, tiny("oecl", epochs=1), oe_images=oe_images,
                           checkpoint=checkpoint, resume=True, progress=False)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", None])
def test_a_damaged_or_foreign_checkpoint_is_a_clear_error_naming_restart(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    if content is None:
        torch.save({"weights": torch.ones(2)}, path)  # a readable file that is not ours
    else:
        path.write_bytes(content)
    with pytest.raises(train_module.UnreadableCheckpointError, match=f"{path.name}.*--restart"):
        train_module.load_checkpoint(path)
