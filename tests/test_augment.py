"""Batched SimCLR augmentations and the rotations of self-OECL (section 2.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ood_explain import augment
from ood_explain.core.augment import AugmentConfig


def noise_images(n: int, channels: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_identical_images_get_different_views(channels):
    image = noise_images(1, channels, seed=channels)
    batch = image.repeat(6, 1, 1, 1)
    views = augment.simclr_view(batch, augment.make_generator(0))
    for i in range(6):
        for j in range(i + 1, 6):
            assert not torch.allclose(views[i], views[j]), f"samples {i} and {j} got the same view"


def test_each_transform_draws_per_sample_parameters():
    batch = noise_images(1, 3, seed=4).repeat(8, 1, 1, 1)
    x = augment.to_float(batch)
    generator = augment.make_generator(1)
    crops = augment.random_resized_crop(x, generator)
    assert len({tuple(c.flatten()[:20].tolist()) for c in crops}) == 8
    jittered = augment.color_jitter(x, AugmentConfig(jitter_p=1.0), generator)
    assert len({round(j.mean().item(), 6) for j in jittered}) == 8


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_views_are_in_unit_range_with_the_input_shape(channels, dtype):
    images = noise_images(32, channels, size=20, seed=2)
    if dtype == torch.float32:
        images = images.float() / 255
    views = augment.simclr_view(images, augment.make_generator(3))
    assert views.shape == (32, channels, 20, 20)
    assert views.dtype == torch.float32
    assert views.min() >= 0 and views.max() <= 1
    # Extreme inputs (black and white images) stay in range too.
    extremes = torch.cat([torch.zeros(8, channels, 8, 8), torch.ones(8, channels, 8, 8)])
    out = augment.simclr_view(extremes, augment.make_generator(4))
    assert out.min() >= 0 and out.max() <= 1


def test_seeded_generator_reproducible():
    images = noise_images(10, 3, seed=5)
    first = augment.simclr_view(images, augment.make_generator(42))
    again = augment.simclr_view(images, augment.make_generator(42))
    other = augment.simclr_view(images, augment.make_generator(43))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    # Successive draws from one generator differ (two views of a pair).
    generator = augment.make_generator(42)
    v1, v2 = augment.simclr_view(images, generator), augment.simclr_view(images, generator)
    assert torch.equal(v1, first) and not torch.allclose(v1, v2)


def test_to_float():
    x = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    out = augment.to_float(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 1.0], [0.2, 0.4]]]]))
    half = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    assert augment.to_float(half).dtype == torch.float32


def test_full_crop_is_identity_and_flip_mirrors():
    x = augment.to_float(noise_images(4, 3, seed=6))
    same = augment.random_resized_crop(x, augment.make_generator(0), scale=(1, 1), ratio=(1, 1), flip_p=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    mirrored = augment.random_resized_crop(x, augment.make_generator(0), scale=(1, 1), ratio=(1, 1), flip_p=1.0)
    torch.testing.assert_close(mirrored, x.flip(-1), atol=1e-5, rtol=0)


def test_crop_out_size():
    x = augment.to_float(noise_images(3, 1, size=28))
    assert augment.random_resized_crop(x, augment.make_generator(0), out_size=12).shape == (3, 1, 12, 12)


def test_crop_of_a_constant_image_is_constant():
    x = torch.full((5, 3, 16, 16), 0.3)
    out = augment.random_resized_crop(x, augment.make_generator(0), flip_p=0.5)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_jitter_and_grayscale_probabilities():
    x = augment.to_float(noise_images(16, 3, seed=7))
    untouched = augment.color_jitter(x, AugmentConfig(jitter_p=0.0), augment.make_generator(0))
    assert torch.equal(untouched, x)
    gray = augment.random_grayscale(x, 1.0, augment.make_generator(0))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    torch.testing.assert_close(gray[:, :1], augment.grayscale(x))
    assert torch.equal(augment.random_grayscale(x, 0.0, augment.make_generator(0)), x)
    one_channel = x[:, :1]
    assert torch.equal(augment.random_grayscale(one_channel, 1.0, augment.make_generator(0)), one_channel)


def test_grayscale_luma_weights():
    x = torch.zeros(1, 3, 1, 1)
    x[0, :, 0, 0] = torch.tensor([1.0, 0.5, 0.0])
    assert augment.grayscale(x).item() == pytest.approx(0.299 + 0.5 * 0.587)


def test_hue_rotation():
    x = augment.to_float(noise_images(4, 3, seed=8))
    torch.testing.assert_close(augment.rotate_hue(x, torch.zeros(4)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(augment.rotate_hue(x, torch.ones(4)), x, atol=1e-5, rtol=0)  # a full turn
    gray = augment.grayscale(x).expand(-1, 3, -1, -1)
    torch.testing.assert_close(augment.rotate_hue(gray, torch.full((4,), 0.3)), gray, atol=1e-5, rtol=0)
    turned = augment.rotate_hue(x, torch.full((4,), 0.25))
    assert not torch.allclose(turned, x, atol=1e-3)
    torch.testing.assert_close(augment.grayscale(turned), augment.grayscale(x), atol=1e-5, rtol=0)  # luma kept


@pytest.mark.parametrize("channels", [1, 3])
def test_rotate90(channels):
    x = torch.rand(2, channels, 6, 6)
    once = augment.rotate90(x, 1)
    assert not torch.equal(once, x)
    assert torch.equal(augment.rotate90(augment.rotate90(augment.rotate90(once, 1), 1), 1), x)
    assert torch.equal(augment.rotate90(x, 4), x)
    assert torch.equal(augment.rotate90(augment.rotate90(x, 1), 1), augment.rotate90(x, 2))
    assert torch.equal(augment.rotate90(once, 3), x)


def test_rotate90_is_counter_clockwise():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert augment.rotate90(x, 1).view(2, 2).tolist() == [[2.0, 4.0], [1.0, 3.0]]


def test_rotations_need_square_images():
    with pytest.raises(ValueError, match="square"):
        augment.rotate90(torch.zeros(1, 1, 4, 6), 1)


def test_make_generator_is_seeded():
    a, b = augment.make_generator(7), augment.make_generator(7)
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
