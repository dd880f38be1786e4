"""NT-Xent, the OECL loss and its gradient geometry, HSC and BCE."""

from __future__ import annotations

import math

import pytest
import torch

from ood_explain import losses


def naive_nt_xent(z: torch.Tensor, temperature: float) -> float:
    """SimCLR's loss written as the paper's sum, one anchor and one candidate at a time, in Python floats."""
    rows = [[float(v) for v in row] for row in z]
    two_n = len(rows)
    n = two_n // 2
    unit = []
    for row in rows:
        length = math.sqrt(sum(v * v for v in row))
        unit.append([v / length for v in row])

    def sim(i: int, k: int) -> float:
        return sum(a * b for a, b in zip(unit[i], unit[k]))

    total = 0.0
    for i in range(two_n):
        positive = i + n if i < n else i - n
        denominator = sum(math.exp(sim(i, k) / temperature) for k in range(two_n) if k != i)
        total += -math.log(math.exp(sim(i, positive) / temperature) / denominator)
    return total / two_n


# ------------------------------------------------------------------------------------------- NT-Xent


@pytest.mark.parametrize("n, d", [(1, 3), (2, 2), (3, 8), (5, 16), (8, 4)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_naive_double_loop(n, d, temperature):
    generator = torch.Generator().manual_seed(100 * n + d)
    z = torch.randn(2 * n, d, generator=generator, dtype=torch.float64) * 3
    expected = naive_nt_xent(z, temperature)
    got = losses.nt_xent(z, temperature).item()
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_nt_xent_float32_matches_naive():
    z = torch.randn(12, 7, generator=torch.Generator().manual_seed(1))
    assert losses.nt_xent(z, 0.5).item() == pytest.approx(naive_nt_xent(z, 0.5), rel=1e-5)


def test_nt_xent_single_pair_is_zero():
    # N = 1: the denominator holds only the positive, so each anchor's ratio is exactly 1.
    for seed in range(3):
        z = torch.randn(2, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert losses.nt_xent(z, 0.5).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 6])
@pytest.mark.parametrize("temperature", [0.2, 0.5, 1.0])
def test_nt_xent_identical_views_orthogonal_images_closed_form(n, temperature):
    # Views identical (s_pos = 1), images mutually orthogonal (s = 0 with every other row):
    # l_i = -log(e^{1/t} / (e^{1/t} + 2n - 2)) = log(1 + (2n - 2) e^{-1/t}).
    basis = torch.eye(8, dtype=torch.float64)[:n] * 2.5
    z = torch.cat([basis, basis])
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / temperature))
    assert losses.nt_xent(z, temperature).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_nt_xent_opposite_views_closed_form():
    # N = 2, views anti-parallel: z = [a, b, -a, -b] with a orthogonal to b. For anchor a: positive -a
    # (s = -1), negatives b and -b (s = 0): l = -log(e^{-1/t} / (e^{-1/t} + 2)) = log(1 + 2 e^{1/t}).
    a, b = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 3.0, 0.0], dtype=torch.float64)
    z = torch.stack([a, b, -a, -b])
    for temperature in (0.25, 0.5, 2.0):
        expected = math.log(1 + 2 * math.exp(1 / temperature))
        assert losses.nt_xent(z, temperature).item() == pytest.approx(expected, rel=1e-12)


def test_nt_xent_temperature_effect():
    basis = torch.eye(4, dtype=torch.float64)
    aligned = torch.cat([basis, basis])
    temperatures = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    values = [losses.nt_xent(aligned, t).item() for t in temperatures]
    # Perfectly aligned positives: a colder softmax is more confident, so the loss falls with t.
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[0] < 1e-6
    # A hot softmax cannot tell the positive from the 2N - 2 negatives: loss -> log(2N - 1).
    assert losses.nt_xent(aligned, 1e4).item() == pytest.approx(math.log(7), rel=1e-3)
    # The default temperature is the paper's 0.5.
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert losses.nt_xent(z).item() == pytest.approx(losses.nt_xent(z, 0.5).item(), rel=1e-15)


def test_nt_xent_ignores_row_scale():
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    scale = torch.rand(8, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 10 + 0.1
    assert losses.nt_xent(z * scale).item() == pytest.approx(losses.nt_xent(z).item(), rel=1e-12)


def test_nt_xent_pairs_row_i_with_row_i_plus_n():
    # Swapping the two view blocks keeps the pairing; shuffling rows within one block breaks it.
    z = torch.randn(10, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    swapped = torch.cat([z[5:], z[:5]])
    assert losses.nt_xent(swapped).item() == pytest.approx(losses.nt_xent(z).item(), rel=1e-12)
    assert losses.nt_xent(torch.cat([z[:5], z[5:].roll(1, 0)])).item() != pytest.approx(
        losses.nt_xent(z).item(), rel=1e-6)


@pytest.mark.parametrize("shape", [(3, 4), (5, 2), (0, 4), (4,), (2, 3, 4), ()])
def test_nt_xent_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="2N"):
        losses.nt_xent(torch.randn(shape))


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan"), float("inf")])
def test_nt_xent_bad_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        losses.nt_xent(torch.randn(4, 3), temperature)
    with pytest.raises(ValueError, match="temperature"):
        losses.oecl_loss(torch.randn(4, 3), torch.randn(2, 3), temperature)


@pytest.mark.parametrize("loss", [
    lambda z_id, z_oe: losses.oecl_loss(z_id, z_oe),
    lambda z_id, z_oe: losses.hsc_loss(z_id, z_oe),
    lambda z_id, z_oe: losses.bce_loss(z_id[:, 0], z_oe[:, 0]),
    lambda z_id, z_oe: losses.mean_norm(z_oe),
], ids=["oecl", "hsc", "bce", "mean_norm"])
def test_oe_losses_without_oe_rows_raise(loss):
    with pytest.raises(ValueError, match="no OE rows"):
        loss(torch.randn(4, 3), torch.randn(0, 3))


@pytest.mark.parametrize("loss", [losses.hsc_loss, lambda z_id, z_oe: losses.bce_loss(z_id[:, 0], z_oe[:, 0])],
                         ids=["hsc", "bce"])
def test_oe_losses_without_id_rows_raise(loss):
    with pytest.raises(ValueError, match="no ID rows"):
        loss(torch.randn(0, 3), torch.randn(2, 3))


@pytest.mark.parametrize("alpha", [-1.0, float("nan"), float("inf")])
def test_oecl_bad_alpha_raises(alpha):
    with pytest.raises(ValueError, match="alpha"):
        losses.oecl_loss(torch.randn(4, 3), torch.randn(2, 3), alpha=alpha)


# ------------------------------------------------------------------------------- OECL and gradients


def test_mean_norm_and_oecl_value():
    z_oe = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert losses.mean_norm(z_oe).item() == pytest.approx((5 + 0 + 1) / 3)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert losses.oecl_loss(z, z_oe, 0.5, alpha=0.3).item() == pytest.approx(
        naive_nt_xent(z, 0.5) + 0.3 * 2.0, rel=1e-12)
    assert losses.oecl_loss(z, z_oe, alpha=0.0).item() == pytest.approx(losses.nt_xent(z).item(), rel=1e-15)


@pytest.mark.parametrize("alpha", [1.0, 0.1, 2.5])
def test_oe_gradient_is_radial_with_size_alpha_over_m(alpha):
    generator = torch.Generator().manual_seed(8)
    z = torch.randn(8, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    z_oe = (torch.randn(5, 16, generator=generator, dtype=torch.float64) * torch.tensor([[0.1], [1], [3], [10], [50]],
            dtype=torch.float64)).requires_grad_()
    losses.oecl_loss(z, z_oe, 0.5, alpha).backward()
    m = z_oe.shape[0]
    expected = alpha / m * z_oe.detach() / z_oe.detach().norm(dim=1, keepdim=True)
    torch.testing.assert_close(z_oe.grad, expected, rtol=1e-12, atol=1e-14)
    # The same size alpha / M whatever the norm of the OE feature.
    torch.testing.assert_close(z_oe.grad.norm(dim=1), torch.full((m,), alpha / m, dtype=torch.float64))


def test_oe_rows_do_not_enter_the_similarity_matrix():
    generator = torch.Generator().manual_seed(9)
    z = torch.randn(6, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    z_oe = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    losses.oecl_loss(z, z_oe, 0.5, 1.0).backward()
    with_oe = z.grad.clone()
    z.grad = None
    losses.nt_xent(z, 0.5).backward()
    torch.testing.assert_close(with_oe, z.grad, rtol=0, atol=0)


@pytest.mark.parametrize("n, d", [(2, 3), (4, 16), (16, 128)])
def test_nt_xent_gradient_is_orthogonal_to_each_row(n, d):
    generator = torch.Generator().manual_seed(n * d)
    z = (torch.randn(2 * n, d, generator=generator, dtype=torch.float64) * 4).requires_grad_()
    losses.nt_xent(z, 0.5).backward()
    grad = z.grad
    assert grad.norm(dim=1).min() > 1e-6  # a real gradient, not a trivially zero one
    cosine = (grad * z.detach()).sum(dim=1) / (grad.norm(dim=1) * z.detach().norm(dim=1))
    assert cosine.abs().max() < 1e-12


def test_nt_xent_gradient_shrinks_like_one_over_norm():
    # The Jacobian of z / ||z|| is (I - z^ z^T) / ||z||: scaling z by c scales the gradient by 1 / c.
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    grads = []
    for c in (1.0, 10.0):
        scaled = (z * c).requires_grad_()
        losses.nt_xent(scaled).backward()
        grads.append(scaled.grad)
    torch.testing.assert_close(grads[1], grads[0] / 10, rtol=1e-10, atol=1e-15)


def test_gradient_step_on_nt_xent_increases_every_norm():
    z = torch.randn(12, 8, generator=torch.Generator().manual_seed(12), dtype=torch.float64).requires_grad_()
    losses.nt_xent(z, 0.5).backward()
    lr = 0.5
    before = z.detach().norm(dim=1)
    after_z = z.detach() - lr * z.grad
    after = after_z.norm(dim=1)
    assert (after > before).all()
    # Pythagoras: ||z - lr g||^2 = ||z||^2 + lr^2 ||g||^2 because g is orthogonal to z.
    torch.testing.assert_close(after**2, before**2 + lr**2 * z.grad.norm(dim=1) ** 2, rtol=1e-12, atol=1e-12)
    # And the step lowers the loss, as gradient descent should.
    assert losses.nt_xent(after_z).item() < losses.nt_xent(z.detach()).item()


def test_many_steps_on_oecl_grow_id_norms_and_shrink_oe_norms():
    generator = torch.Generator().manual_seed(13)
    z = torch.randn(16, 8, generator=generator, dtype=torch.float64).requires_grad_()
    z_oe = torch.randn(8, 8, generator=generator, dtype=torch.float64).add(2).requires_grad_()
    id_start, oe_start = z.detach().norm(dim=1).mean(), z_oe.detach().norm(dim=1).mean()
    optimizer = torch.optim.SGD([z, z_oe], lr=0.5)
    for _ in range(20):
        optimizer.zero_grad()
        losses.oecl_loss(z, z_oe, 0.5, 1.0).backward()
        optimizer.step()
    assert z.detach().norm(dim=1).mean() > id_start
    assert z_oe.detach().norm(dim=1).mean() < oe_start - 1.0


# --------------------------------------------------------------------------------------- HSC and BCE


def test_hsc_distance_formula():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([math.sqrt(26) - 1, 0.0, math.sqrt(3) - 1], dtype=torch.float64)
    torch.testing.assert_close(losses.hsc_distance(z), expected)


def test_hsc_loss_matches_hand_formula():
    z_id = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    z_oe = torch.tensor([[1.0, 0.0], [0.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
    id_term = ((math.sqrt(26) - 1) + 0.0) / 2
    oe_h = [math.sqrt(2) - 1, math.sqrt(5) - 1, math.sqrt(9) - 1]
    oe_term = sum(-math.log(1 - math.exp(-h)) for h in oe_h) / 3
    assert losses.hsc_loss(z_id, z_oe).item() == pytest.approx(id_term + oe_term, rel=1e-9)


def test_hsc_loss_direction():
    # Normal samples are pulled in, OE samples pushed out: larger OE norm, smaller ID norm = lower loss.
    z_id = torch.ones(4, 3)
    z_oe = torch.ones(4, 3)
    assert losses.hsc_loss(z_id, 5 * z_oe) < losses.hsc_loss(z_id, z_oe)
    assert losses.hsc_loss(0.2 * z_id, z_oe) < losses.hsc_loss(z_id, z_oe)


def test_hsc_finite_when_oe_feature_is_zero():
    z_id = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    z_oe = torch.zeros(3, 8, dtype=torch.float64, requires_grad=True)
    loss = losses.hsc_loss(z_id, z_oe)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z_oe.grad).all() and torch.isfinite(z_id.grad).all()
    # A collapsed OE feature is the worst case for the OE term: larger than at any positive norm.
    assert loss.item() > losses.hsc_loss(z_id.detach(), torch.full((3, 8), 0.1, dtype=torch.float64)).item()


def test_bce_loss_matches_hand_formula():
    logit_id = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64)
    logit_oe = torch.tensor([0.5, -3.0], dtype=torch.float64)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = (softplus(-2.0) + softplus(1.0) + softplus(0.0)) / 3 + (softplus(0.5) + softplus(-3.0)) / 2
    assert losses.bce_loss(logit_id, logit_oe).item() == pytest.approx(expected, rel=1e-6)


def test_bce_halves_are_averaged_separately():
    logit_id = torch.tensor([1.0, -0.5])
    logit_oe = torch.tensor([0.3, -2.0])
    assert losses.bce_loss(logit_id, logit_oe.repeat(5)).item() == pytest.approx(
        losses.bce_loss(logit_id, logit_oe).item(), rel=1e-6)
    # Confident, correct logits give a loss near 0; confident wrong ones a large loss.
    assert losses.bce_loss(torch.full((3,), 20.0), torch.full((3,), -20.0)).item() < 1e-6
    assert losses.bce_loss(torch.full((3,), -20.0), torch.full((3,), 20.0)).item() > 39


def test_nt_xent_similarities_stay_fp32_under_bf16_autocast():
    z = torch.randn(32, 128, generator=torch.Generator().manual_seed(3))
    reference = losses.nt_xent(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = losses.nt_xent(z)
    assert under_autocast.dtype == torch.float32
    assert under_autocast.item() == pytest.approx(reference.item(), abs=1e-6)
