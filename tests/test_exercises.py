"""The exercise checkers: reference answers pass, open TODOs and wrong answers get "not yet", nothing raises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ood_explain import augment, exercises, losses, metrics


def todo(*args):
    raise NotImplementedError


def returns_none(*args):
    return None


def crashes(*args):
    raise ValueError("boom")


def similarity(z):
    z_hat = F.normalize(z, dim=1)
    return z_hat @ z_hat.T


def tangent(z, g):
    z_hat = F.normalize(z, dim=1)
    return (g - (g * z_hat).sum(1, keepdim=True) * z_hat) / z.norm(dim=1, keepdim=True)


def rotation_split(views):
    return (torch.cat([views, augment.rotate90(views, 1)]),
            torch.cat([augment.rotate90(views, 2), augment.rotate90(views, 3)]))


def loo(train_labels, test_labels, held_out):
    return train_labels != held_out, test_labels != held_out, test_labels == held_out


CASES = [
    (exercises.check_similarity_matrix, similarity, lambda z: z @ z.T),
    (exercises.check_nt_xent, losses.nt_xent, lambda z, t: losses.nt_xent(z, t) * z.shape[0]),
    (exercises.check_tangent_gradient, tangent, lambda z, g: g),
    (exercises.check_norm_after_step, lambda n, lr, g: math.sqrt(n * n + (lr * g) ** 2), lambda n, lr, g: n - lr * g),
    (exercises.check_oecl_loss, losses.oecl_loss, lambda a, b, t, al: losses.nt_xent(a, t) + al * b.pow(2).sum(1).mean()),
    (exercises.check_auroc, metrics.auroc, lambda a, b: float(np.mean(a[:, None] > b[None, :]))),
    (exercises.check_rotation_split, rotation_split, lambda v: rotation_split(v)[::-1]),
    (exercises.check_leave_one_out, loo, lambda a, b, k: (a == k, b == k, b != k)),
]


@pytest.mark.parametrize("check,reference,wrong", CASES, ids=[c[0].__name__ for c in CASES])
def test_checker(check, reference, wrong, capsys):
    assert check(reference) is True
    assert capsys.readouterr().out.startswith("✅ correct")
    for answer in (todo, returns_none, crashes, wrong, 42):
        assert check(answer) is False
        out = capsys.readouterr().out
        assert out.startswith("❌ not yet"), out
        assert "Traceback" not in out


def test_todo_message_names_the_fix(capsys):
    exercises.check_nt_xent(todo)
    assert "TODO is still open" in capsys.readouterr().out


def test_hints(capsys):
    exercises.check_oecl_loss(lambda a, b, t, al: losses.nt_xent(a, t) + al * b.pow(2).sum(1).mean())
    assert "squared norm" in capsys.readouterr().out
    exercises.check_rotation_split(lambda v: rotation_split(v)[::-1])
    assert "swapped" in capsys.readouterr().out
