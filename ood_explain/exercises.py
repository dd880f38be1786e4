"""Checkers for the classroom exercises in ``notebooks/exercises``.

Each ``check_*`` function takes the student's answer (usually a function), tests it against the
library's reference implementation on a few fixed inputs, prints one clear line, and returns a bool:

* ``✅ correct: ...`` when every test passes;
* ``❌ not yet: ...`` otherwise, saying what was expected and what came back. An unanswered TODO (a
  function that raises ``NotImplementedError`` or returns ``None``) gets the "not yet" message too,
  and no exception escapes, so a notebook with open TODOs still runs from top to bottom.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import augment, losses, metrics

PASS, FAIL = "✅ correct", "❌ not yet"


class _NotYet(Exception):
    """Raised inside a check to stop at the first failed test with a message for the student."""


def _report(name: str, check: Callable[[], str]) -> bool:
    try:
        detail = check()
    except _NotYet as failure:
        print(f"{FAIL}: {name}: {failure}")
        return False
    except NotImplementedError:
        print(f"{FAIL}: {name}: the TODO is still open (NotImplementedError). Replace "
              "`raise NotImplementedError` with your code and run this cell again.")
        return False
    except Exception as error:  # the student's code crashed: show the error, never a traceback
        print(f"{FAIL}: {name}: your code raised {type(error).__name__}: {error}")
        return False
    print(f"{PASS}: {name}. {detail}".rstrip())
    return True


def _call(function: Callable, *args):
    if not callable(function):
        raise _NotYet(f"expected a function, got {type(function).__name__}")
    result = function(*args)
    if result is None:
        raise _NotYet("your function returned None: the TODO is still open, or a `return` is missing")
    return result


def _tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise _NotYet(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    return value.detach().double()


def _close(got: torch.Tensor, expected: torch.Tensor, what: str, tol: float = 1e-5) -> None:
    if tuple(got.shape) != tuple(expected.shape):
        raise _NotYet(f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    error = (got - expected.double()).abs().max().item() if got.numel() else 0.0
    if not math.isfinite(error) or error > tol:
        raise _NotYet(f"{what} is off by up to {error:.3g} (tolerance {tol:g})")


def _random_z(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2 * n, d, generator=generator, dtype=torch.float64) * scale


# --------------------------------------------------------------------------- 01: NT-Xent and cosines


def check_similarity_matrix(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """`student_fn(z)`: (M, d) raw features -> (M, M) cosine similarities ẑ_i·ẑ_j."""

    def run() -> str:
        for seed, (m, d, scale) in enumerate([(4, 3, 1.0), (10, 16, 7.0), (6, 128, 0.01)]):
            z = _random_z(m // 2, d, seed, scale)
            got = _tensor(_call(student_fn, z.clone()), "the similarity matrix")
            z_hat = F.normalize(z, dim=1)
            _close(got, z_hat @ z_hat.T, f"the similarity matrix for z of shape {tuple(z.shape)}")
        return "The diagonal is 1 and the matrix ignores the length of every z."

    return _report("similarity_matrix", run)


def check_nt_xent(student_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """`student_fn(z, temperature)`: (2N, d) with rows i and i+N positive pairs -> scalar NT-Xent,
    compared with :func:`ood_explain.losses.nt_xent`."""

    def run() -> str:
        cases = [(2, 4, 0.5, 1.0), (8, 16, 0.5, 3.0), (8, 16, 0.1, 1.0), (5, 128, 1.0, 0.2)]
        for seed, (n, d, tau, scale) in enumerate(cases):
            z = _random_z(n, d, seed, scale)
            got = _tensor(_call(student_fn, z.clone(), tau), "the loss")
            if got.numel() != 1:
                raise _NotYet(f"the loss should be one number (a scalar), got shape {tuple(got.shape)}")
            expected = losses.nt_xent(z, tau).double()
            if abs(got.item() - expected.item()) > 1e-4:
                hint = ""
                if abs(got.item() - expected.item() * 2 * n) < 1e-3 * 2 * n:
                    hint = " (it looks like a sum: take the mean over the 2N anchors)"
                raise _NotYet(f"for N={n}, d={d}, tau={tau} expected {expected.item():.5f}, got {got.item():.5f}{hint}")
        z = _random_z(4, 8, 99)
        scaled = _tensor(_call(student_fn, z * torch.linspace(0.1, 10, 8, dtype=z.dtype)[:, None], 0.5), "the loss")
        if abs(scaled.item() - losses.nt_xent(z, 0.5).item()) > 1e-4:
            raise _NotYet("rescaling the rows of z changed your loss: normalize z before the similarities")
        return "It matches ood_explain.losses.nt_xent, and rescaling z does not change it."

    return _report("nt_xent", run)


# ------------------------------------------------------------------- 02: why the norm grows in training


def check_tangent_gradient(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """`student_fn(z, g)`: the gradient with respect to z of a loss L(ẑ) with ∂L/∂ẑ = g, i.e.
    (I − ẑẑᵀ) g / ‖z‖, for rows of z and g (M, d); compared with autograd."""

    def run() -> str:
        for seed, (m, d, scale) in enumerate([(1, 2, 1.0), (5, 8, 3.0), (4, 128, 0.5)]):
            generator = torch.Generator().manual_seed(100 + seed)
            z = torch.randn(m, d, generator=generator, dtype=torch.float64) * scale
            g = torch.randn(m, d, generator=generator, dtype=torch.float64)
            leaf = z.clone().requires_grad_(True)
            (F.normalize(leaf, dim=1) * g).sum().backward()
            got = _tensor(_call(student_fn, z.clone(), g.clone()), "the gradient")
            _close(got, leaf.grad, f"the gradient for z of shape {tuple(z.shape)}", 1e-6)
        return "The gradient is orthogonal to z (z·grad = 0) and shrinks like 1/‖z‖."

    return _report("tangent_gradient", run)


def check_norm_after_step(student_fn: Callable[[float, float, float], float]) -> bool:
    """`student_fn(norm, lr, grad_norm)`: ‖z − lr·g‖ for a gradient g orthogonal to z."""

    def run() -> str:
        for norm, lr, grad_norm in [(1.0, 0.1, 1.0), (3.0, 0.5, 2.0), (0.2, 1.0, 0.0), (10.0, 2.0, 5.0)]:
            got = _call(student_fn, norm, lr, grad_norm)
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise _NotYet(f"expected a number, got {type(got).__name__}") from None
            expected = math.sqrt(norm**2 + (lr * grad_norm) ** 2)
            if abs(got - expected) > 1e-6 * max(1.0, expected):
                raise _NotYet(f"for ‖z‖={norm}, lr={lr}, ‖g‖={grad_norm} expected {expected:.6f}, got {got:.6f} "
                              "(Pythagoras: g ⟂ z)")
        return "An orthogonal step never shrinks ‖z‖: ‖z′‖² = ‖z‖² + lr²‖g‖²."

    return _report("norm_after_step", run)


# ------------------------------------------------------------------------------ 03: OECL loss and AUROC


def check_oecl_loss(student_fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> bool:
    """`student_fn(z_id, z_oe, temperature, alpha)`: NT-Xent on ID views + alpha · mean ‖z_oe‖,
    compared with :func:`ood_explain.losses.oecl_loss`."""

    def run() -> str:
        for seed, (n, m, d, tau, alpha) in enumerate([(3, 6, 8, 0.5, 1.0), (8, 16, 32, 0.5, 0.1), (4, 8, 16, 0.2, 0.0)]):
            z_id = _random_z(n, d, seed, 2.0)
            z_oe = torch.randn(m, d, generator=torch.Generator().manual_seed(50 + seed), dtype=torch.float64) * 3
            got = _tensor(_call(student_fn, z_id.clone(), z_oe.clone(), tau, alpha), "the loss")
            if got.numel() != 1:
                raise _NotYet(f"the loss should be a scalar, got shape {tuple(got.shape)}")
            expected = losses.oecl_loss(z_id, z_oe, tau, alpha).item()
            if abs(got.item() - expected) > 1e-4:
                hint = ""
                squared = losses.nt_xent(z_id, tau).item() + alpha * z_oe.pow(2).sum(1).mean().item()
                if abs(got.item() - squared) < 1e-3:
                    hint = " (you used the squared norm; OECL penalizes ‖z‖ itself)"
                raise _NotYet(f"for alpha={alpha}, tau={tau} expected {expected:.5f}, got {got.item():.5f}{hint}")
        return "NT-Xent on the ID views plus alpha times the mean raw norm of the OE views."

    return _report("oecl_loss", run)


def check_auroc(student_fn: Callable[[np.ndarray, np.ndarray], float]) -> bool:
    """`student_fn(scores_id, scores_ood)`: P(ID score > OOD score) with ties counting 1/2, compared
    with :func:`ood_explain.metrics.auroc`."""

    def run() -> str:
        rng = np.random.default_rng(0)
        cases = [
            (np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0])),  # perfect
            (np.array([0.0, 1.0]), np.array([2.0, 3.0, 4.0])),  # inverted
            (np.array([1.0, 2.0, 2.0]), np.array([2.0, 0.0])),  # ties
            (rng.normal(1, 1, 200), rng.normal(0, 1, 300)),
        ]
        for scores_id, scores_ood in cases:
            got = _call(student_fn, scores_id.copy(), scores_ood.copy())
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise _NotYet(f"expected a number, got {type(got).__name__}") from None
            expected = metrics.auroc(scores_id, scores_ood)
            if abs(got - expected) > 1e-9:
                shown = f"ID {np.round(scores_id[:5], 2).tolist()}, OOD {np.round(scores_ood[:5], 2).tolist()}"
                hint = " (ties count 1/2)" if len(scores_id) == 3 and abs(expected - 0.5833) < 1e-3 else ""
                raise _NotYet(f"for {shown} expected {expected:.4f}, got {got:.4f}{hint}")
        return "AUROC = P(score of a random ID image > score of a random OOD image)."

    return _report("auroc", run)


# ------------------------------------------------------------------- 04: self-OECL and leave-one-out


def check_rotation_split(student_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """`student_fn(views)`: (B, C, H, W) -> (id_rows, oe_rows): ID rows are the 0° and 90° rotations
    [views; rot90(views)], OE rows the 180° and 270° ones [rot180(views); rot270(views)]."""

    def run() -> str:
        views = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(7))
        answer = _call(student_fn, views.clone())
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise _NotYet("return a pair (id_rows, oe_rows)")
        id_rows, oe_rows = (_tensor(a, name) for a, name in zip(answer, ("id_rows", "oe_rows")))
        expected_id = torch.cat([views, augment.rotate90(views, 1)])
        expected_oe = torch.cat([augment.rotate90(views, 2), augment.rotate90(views, 3)])
        if id_rows.shape == expected_id.shape and torch.allclose(id_rows, expected_oe.double()):
            raise _NotYet("ID and OE are swapped: 0° and 90° are the ID instances")
        _close(id_rows, expected_id, "id_rows (0° then 90°)")
        _close(oe_rows, expected_oe, "oe_rows (180° then 270°)")
        return "0° and 90° stay ID instances, 180° and 270° become self-generated outliers."

    return _report("rotation_split", run)


def check_leave_one_out(student_fn: Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, ...]]) -> bool:
    """`student_fn(train_labels, test_labels, held_out)` -> (train_mask, id_test_mask, ood_test_mask):
    boolean masks of the leave-one-class-out protocol, compared with :func:`ood_explain.data.leave_one_out`."""

    def run() -> str:
        train_labels = torch.tensor([0, 1, 2, 3, 1, 2, 0, 3, 3])
        test_labels = torch.tensor([3, 2, 1, 0, 0, 1])
        for held_out in (0, 3):
            answer = _call(student_fn, train_labels.clone(), test_labels.clone(), held_out)
            if not isinstance(answer, (tuple, list)) or len(answer) != 3:
                raise _NotYet("return three masks (train_mask, id_test_mask, ood_test_mask)")
            expected = (train_labels != held_out, test_labels != held_out, test_labels == held_out)
            names = ("train_mask", "id_test_mask", "ood_test_mask")
            for got, want, name in zip(answer, expected, names):
                got = torch.as_tensor(got)
                if got.shape != want.shape or not torch.equal(got.bool(), want):
                    raise _NotYet(f"{name} for held-out class {held_out}: expected {want.int().tolist()}, "
                                  f"got {got.int().tolist() if got.numel() < 20 else tuple(got.shape)}")
        return "Train on every class but one; its test images are the OOD set."

    return _report("leave_one_out", run)
