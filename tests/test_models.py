"""Encoders and the contrastive model: shapes, raw z, input normalization."""

from __future__ import annotations

import pytest
import torch

from ood_explain import models


@pytest.mark.parametrize("arch, feature_dim", [("small-cnn", 128), ("resnet18-cifar", 512)])
@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(arch, feature_dim, size, channels):
    torch.manual_seed(0)
    model = models.build_model(arch, channels)
    x = torch.rand(3, channels, size, size)
    h, z = model(x)
    assert h.shape == (3, feature_dim) and z.shape == (3, 128)
    model.eval()
    with torch.no_grad():
        h_eval, z_eval = model(x[:1])
    assert h_eval.shape == (1, feature_dim) and z_eval.shape == (1, 128)


@pytest.mark.parametrize("channels", [1, 3])
def test_imagenet_resnet18_shapes(channels):
    torch.manual_seed(0)
    model = models.build_model("resnet18", channels).eval()
    with torch.no_grad():
        h, z = model(torch.rand(2, channels, 64, 64))
    assert h.shape == (2, 512) and z.shape == (2, 128)
    assert model.encoder.maxpool is not None  # the torchvision stem, with max-pool


def test_z_is_not_normalized():
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 1).eval()
    with torch.no_grad():
        _, z = model(torch.rand(8, 1, 28, 28))
    norms = z.norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms), atol=1e-3)
    assert norms.std() > 0  # norms vary between inputs: they carry the OOD score
    # The head ends with a Linear layer (with bias), not a normalization.
    assert isinstance(model.head[-1], torch.nn.Linear) and model.head[-1].bias is not None


def test_projection_head_layout():
    head = models.projection_head(512)
    kinds = [type(layer) for layer in head]
    assert kinds == [torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU, torch.nn.Linear]
    assert head[0].in_features == head[0].out_features == 512 and head[-1].out_features == 128


def test_cifar_resnet_has_no_max_pool_and_stride_one_stem():
    model = models.build_model("resnet18-cifar", 3)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    stem = model.encoder.layers[0][0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.out_channels == 64


def test_input_normalization_uses_mean_and_std():
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 3, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2)).eval()
    x = torch.rand(2, 3, 28, 28)
    mean = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 0.2]).view(1, 3, 1, 1)
    with torch.no_grad():
        h, z = model(x)
        expected_h = model.encoder((x - mean) / std)
    torch.testing.assert_close(h, expected_h)
    torch.testing.assert_close(z, model.head(expected_h))
    default = models.build_model("small-cnn", 1)
    assert default.mean.flatten().tolist() == [0.5] and default.std.flatten().tolist() == [0.5]


def test_classifier_for_bce():
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 1, with_classifier=True)
    h, _ = model(torch.rand(4, 1, 28, 28))
    assert model.logit(h).shape == (4,)
    plain = models.build_model("small-cnn", 1)
    with pytest.raises(RuntimeError, match="classifier"):
        plain.logit(h)


def test_unknown_arch_and_bad_normalization():
    with pytest.raises(ValueError, match="unknown architecture 'vit'"):
        models.build_model("vit", 3)
    with pytest.raises(ValueError, match="mean/std"):
        models.build_model("small-cnn", 3, mean=(0.5,), std=(0.5,))


@pytest.mark.parametrize("arch, expected", [("small-cnn", False), ("resnet18-cifar", True), ("resnet18", True)])
def test_is_resnet_decides_from_the_encoder(arch, expected):
    assert models.build_model(arch, 3).is_resnet is expected


def test_a_user_subclass_of_torchvision_resnet_is_a_resnet_and_other_torchvision_models_are_not():
    import torchvision

    class MyResNet(torchvision.models.ResNet):
        pass

    resnet = MyResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    resnet.fc = torch.nn.Identity()
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    assert models.ContrastiveModel(resnet, mean, std, feature_dim=512).is_resnet
    assert not models.ContrastiveModel(torchvision.models.squeezenet1_1().features, mean, std, feature_dim=512).is_resnet
