"""The library checks its input in its own words: one test per friction point a researcher hit with a
foreign encoder (torchvision's ResNet-18 on 3 x 32 x 32 images and a 1-channel digits split)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import ood_explain as ox


def resnet_encoder() -> nn.Module:
    encoder = torchvision.models.resnet18(num_classes=10)
    encoder.fc = nn.Identity()  # (B, 512)
    return encoder


@pytest.fixture(scope="module")
def split():
    return ox.make_split(ox.load_dataset("digits", "train"), ox.load_dataset("digits", "test"), "one-vs-rest", 0)


def small_config(method: str = "simclr") -> ox.TrainConfig:
    return ox.TrainConfig(method=method, epochs=1, batch_size=8, max_steps_per_epoch=1)


def test_a_three_value_mean_on_one_channel_images_is_refused(split):
    model = ox.ContrastiveModel(resnet_encoder(), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), feature_dim=512)
    with pytest.raises(ValueError, match=r"normalises 3-channel images .* got input of shape \(16, 1, 28, 28\)"):
        ox.train(model, split.id_train.images, small_config(), progress=False)


def test_a_two_value_mean_on_rgb_images_is_refused_before_the_first_step():
    model = ox.ContrastiveModel(resnet_encoder(), mean=(0.5, 0.5), std=(0.5, 0.5), feature_dim=512)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"normalises 2-channel images .* one mean/std value per channel"):
        ox.train(model, images, small_config(), progress=False)
    with pytest.raises(ValueError, match="mean and std need one value per image channel each, got 3 and 1"):
        ox.ContrastiveModel(resnet_encoder(), mean=(0.5, 0.5, 0.5), std=(0.5,), feature_dim=512)


def test_an_imageset_instead_of_its_images_names_the_fix(split):
    model = ox.build_model("small-cnn", 1)
    with pytest.raises(ValueError, match=r"got an ImageSet: pass its \.images \(e\.g\. split\.id_train\.images\)"):
        ox.train(model, split.id_train, small_config(), progress=False)


def test_channels_last_images_are_refused_with_the_permute():
    model = ox.ContrastiveModel(resnet_encoder(), mean=ox.CIFAR10_MEAN, std=ox.CIFAR10_STD, feature_dim=512)
    images = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"look channels-last, \(N, H, W, C\) = \(16, 32, 32, 3\); .* pass images\.permute\(0, 3, 1, 2\)"):
        ox.train(model, images, small_config(), progress=False)


def test_a_wrong_feature_dim_or_unflattened_encoder_is_named():
    images = torch.rand(4, 3, 32, 32)
    wrong_dim = ox.ContrastiveModel(resnet_encoder(), mean=ox.CIFAR10_MEAN, std=ox.CIFAR10_STD, feature_dim=256)
    with pytest.raises(ValueError, match=r"encoder returned features of shape \(4, 512\); .* needs \(B, 256\)"):
        wrong_dim(images)
    unflattened = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1))  # (B, 8, 1, 1)
    model = ox.ContrastiveModel(unflattened, mean=ox.CIFAR10_MEAN, std=ox.CIFAR10_STD, feature_dim=8)
    with pytest.raises(ValueError, match=r"shape \(4, 8, 1, 1\).* end the encoder with nn\.Flatten\(\)"):
        model(images)


def test_library_errors_speak_the_library(split):
    model = ox.build_model("small-cnn", 1)
    with pytest.raises(ValueError, match=r"needs OE images: pass oe_images=\.\.\. \(e\.g\. ood_explain\.load_oe"):
        ox.train(model, split.id_train.images, small_config("oecl"), progress=False)


def test_an_unknown_score_lists_the_scores(split):
    model = ox.build_model("small-cnn", 1)
    table = ox.score_table(model, ox.evaluation_sets(split, 20, 20, seed=0), "simclr", views=1)
    with pytest.raises(ValueError, match="no score 'norm_mean' in this table; its scores are norm, norm_of_mean"):
        ox.id_and_ood(table, "norm_mean")
    with pytest.raises(ValueError, match="unknown method 'simclr2'; choose one of simclr, oecl"):
        ox.score_table(model, ox.evaluation_sets(split, 5, 5, seed=0), "simclr2", views=0)


def test_score_table_scores_where_the_model_is(split, monkeypatch):
    """No device given: the model's own device (a GPU model stays on its GPU; "meta" stands in for it here)."""
    model = ox.build_model("small-cnn", 1)
    monkeypatch.setattr(model, "parameters", lambda: iter([torch.empty(0, device="meta")]))
    moved, seen = [], []
    monkeypatch.setattr(type(model), "to", lambda self, device: moved.append(torch.device(device)) or self)

    class Stop(Exception):
        pass

    def spy(model, images, *args, **kwargs):
        seen.append(images.device)
        raise Stop

    monkeypatch.setattr(ox.experiments.runs.scores, "extract_features", spy)
    with pytest.raises(Stop):
        ox.score_table(model, ox.evaluation_sets(split, 5, 5, seed=0), "simclr", views=0)
    assert moved == [torch.device("meta")] and seen == [torch.device("meta")]


def test_cifar10_statistics_are_exported():
    assert len(ox.CIFAR10_MEAN) == len(ox.CIFAR10_STD) == 3 and 0.4 < ox.CIFAR10_MEAN[0] < 0.5
