"""The exercise checkers: reference answers pass, open TODOs and wrong answers get "not yet", nothing
raises; every typical wrong answer is named by its mistake id; stale definitions under IPython."""

from __future__ import annotations

import json
import linecache
import math
import os
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ood_explain import augment, exercises, losses, metrics


def printed(capsys) -> str:
    """What the checks printed: "correct" on stdout, "not yet" on stderr."""
    captured = capsys.readouterr()
    return captured.out + captured.err


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
    result = check(reference)
    assert result == True and result and result.passed and result.mistake is None  # noqa: E712
    assert printed(capsys).startswith("✅ correct")
    for answer in (todo, returns_none, crashes, wrong, 42):
        result = check(answer)
        assert result == False and not result  # noqa: E712
        out = printed(capsys)
        assert out.startswith("❌ not yet"), out
        assert "Traceback" not in out
        assert result.text == out.rstrip("\n")


@pytest.mark.parametrize("check,nan", [
    (exercises.check_nt_xent, lambda z, t: torch.tensor(float("nan"))),
    (exercises.check_oecl_loss, lambda a, b, t, al: torch.tensor(float("nan"))),
    (exercises.check_norm_after_step, lambda n, lr, g: float("nan")),
    (exercises.check_auroc, lambda a, b: float("nan")),
    (exercises.check_similarity_matrix, lambda z: torch.full((z.shape[0],) * 2, float("nan"))),
], ids=lambda value: getattr(value, "__name__", ""))
def test_nan_is_never_correct(check, nan, capsys):
    assert not check(nan)
    assert printed(capsys).startswith("❌ not yet")


def test_result_object_and_log(capsys):
    before = len(exercises.results)
    wrong = exercises.check_similarity_matrix(lambda z: z @ z.T)
    right = exercises.check_similarity_matrix(similarity)
    capsys.readouterr()
    assert exercises.results[before:] == [wrong, right]
    assert wrong.mistake_id == "similarity_matrix.not-normalised" and wrong.check == "similarity_matrix"
    assert right.mistake_id is None and right.passed
    assert repr(wrong) == "CheckResult('similarity_matrix', passed=False, mistake='similarity_matrix.not-normalised')"
    assert exercises.MISTAKES[wrong.mistake_id] is wrong.mistake


def test_todo_message_names_the_definition_cell(capsys):
    def nt_xent(z, temperature):
        raise NotImplementedError

    result = exercises.check_nt_xent(nt_xent)
    out = printed(capsys)
    assert result.mistake_id == "todo-open"
    assert "TODO is still open" in out and "run the cell that defines `nt_xent`, then run this check again" in out
    assert "run this cell again" not in out


def test_todo_in_a_called_function_names_that_function(capsys):
    def similarity_matrix(z):
        raise NotImplementedError

    def nt_xent(z, temperature):
        return F.cross_entropy(similarity_matrix(z) / temperature, torch.arange(z.shape[0]))

    exercises.check_nt_xent(nt_xent)
    assert "the cell that defines `similarity_matrix`" in printed(capsys)


def test_generic_outcomes_have_ids(capsys):
    assert exercises.check_auroc(returns_none).mistake_id == "returned-none"
    assert exercises.check_auroc(crashes).mistake_id == "raised-error"
    assert exercises.check_auroc(42).mistake_id == "not-a-function"
    out = printed(capsys)
    assert "ValueError: boom" in out and "expected a function, got int" in out
    # a wrong answer that matches no known mistake: "not yet", without an id
    result = exercises.check_auroc(lambda a, b: 0.3)
    assert not result and result.mistake is None


# ----------------------------------------------------------------------- the typical wrong answers


def sim_no_keepdim(z):
    z_hat = z / z.norm(dim=1)
    return z_hat @ z_hat.T


def student_nt_xent(z, temperature, *, normalise=True, diagonal=float("-inf"), temperature_op="divide",
                    reduction="mean", first_half=False):
    """A student's NT-Xent (as in the solution notebook), with switches for the typical mistakes."""
    n = z.shape[0] // 2
    if normalise:
        z = z / z.norm(dim=1, keepdim=True)
    s = z @ z.T
    logits = {"divide": s / temperature, "multiply": s * temperature, "none": s}[temperature_op]
    if diagonal is not None:
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), diagonal)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    if first_half:
        return F.cross_entropy(logits[:n], targets[:n])
    return F.cross_entropy(logits, targets, reduction=reduction)


def nt_xent_inf_times_eye(z, temperature):
    z_hat = F.normalize(z, dim=1)
    logits = z_hat @ z_hat.T / temperature - torch.eye(z.shape[0]) * float("inf")
    return F.cross_entropy(logits, (torch.arange(z.shape[0]) + z.shape[0] // 2) % z.shape[0])


def nt_xent_integer_index(z, temperature):
    z_hat = F.normalize(z, dim=1)
    logits = z_hat @ z_hat.T / temperature
    logits[torch.eye(z.shape[0]).long()] = float("-inf")  # indexes rows 0 and 1, not the diagonal
    return F.cross_entropy(logits, (torch.arange(z.shape[0]) + z.shape[0] // 2) % z.shape[0])


def nt_xent_float_mask(z, temperature):
    z_hat = F.normalize(z, dim=1)
    logits = (z_hat @ z_hat.T / temperature).masked_fill(torch.eye(z.shape[0]), float("-inf"))
    return F.cross_entropy(logits, (torch.arange(z.shape[0]) + z.shape[0] // 2) % z.shape[0])


def projection_only(z, g):
    z_hat = z / z.norm(dim=1, keepdim=True)
    return g - (g * z_hat).sum(1, keepdim=True) * z_hat


def rotation_clockwise(views):
    turned = [torch.rot90(views, k, dims=(3, 2)) for k in range(4)]
    return torch.cat(turned[:2]), torch.cat(turned[2:])


def rotation_default_dims(views):
    turned = [torch.rot90(views, k) for k in range(4)]
    return torch.cat(turned[:2]), torch.cat(turned[2:])


def rotation_interleaved(views):
    turned = [torch.rot90(views, k, dims=(2, 3)) for k in range(4)]
    return torch.stack(turned[:2], 1).reshape(-1, *views.shape[1:]), torch.stack(turned[2:], 1).reshape(-1, *views.shape[1:])


def _ties(a, b):
    return 0.5 * float(np.mean(a[:, None] == b[None, :]))


C = exercises
MISTAKE_CASES = [
    # ex01 similarity
    (C.check_similarity_matrix, lambda z: z @ z.T, "similarity_matrix.not-normalised", "forgot to normalise"),
    (C.check_similarity_matrix, sim_no_keepdim, "similarity_matrix.norm-without-keepdim", "keepdim=True"),
    (C.check_similarity_matrix, lambda z: F.normalize(z, dim=0) @ F.normalize(z, dim=0).T, "similarity_matrix.normalised-columns", "dim=1"),
    (C.check_similarity_matrix, lambda z: (z / z.norm()) @ (z / z.norm()).T, "similarity_matrix.norm-of-whole-batch", "whole batch"),
    # ex01 NT-Xent
    (C.check_nt_xent, lambda z, t: student_nt_xent(z, t, normalise=False), "nt_xent.not-normalised", "forgot to normalise"),
    (C.check_nt_xent, lambda z, t: student_nt_xent(z, t, diagonal=None), "nt_xent.no-diagonal-mask", "did not mask the diagonal"),
    (C.check_nt_xent, lambda z, t: student_nt_xent(z, t, diagonal=0.0), "nt_xent.diagonal-zero", "exp(0) = 1"),
    (C.check_nt_xent, lambda z, t: student_nt_xent(z, t, temperature_op="none"), "nt_xent.no-temperature", "temperature"),
    (C.check_nt_xent, lambda z, t: student_nt_xent(z, t, temperature_op="multiply"), "nt_xent.times-temperature", "multiplied"),
    (C.check_nt_xent, lambda z, t: student_nt_xent(z, t, reduction="sum"), "nt_xent.sum-not-mean", "mean over the 2N anchors"),
    (C.check_nt_xent, lambda z, t: student_nt_xent(z, t, first_half=True), "nt_xent.first-views-only", "first N anchors"),
    (C.check_nt_xent, nt_xent_inf_times_eye, "nt_xent.nan", "0 × inf"),
    (C.check_nt_xent, nt_xent_integer_index, "nt_xent.nan", "integer 0/1 mask"),
    (C.check_nt_xent, nt_xent_float_mask, "mask-not-boolean", "dtype=torch.bool"),
    # ex02
    (C.check_tangent_gradient, projection_only, "tangent_gradient.missing-inverse-norm", "forgot the 1/‖z‖"),
    (C.check_tangent_gradient, lambda z, g: projection_only(z, g) * z.norm(dim=1, keepdim=True), "tangent_gradient.times-norm", "multiplied by ‖z‖"),
    (C.check_tangent_gradient, lambda z, g: g / z.norm(dim=1, keepdim=True), "tangent_gradient.not-projected", "component along ẑ"),
    (C.check_tangent_gradient, lambda z, g: (g - (g * z).sum(1, keepdim=True) * z) / z.norm(dim=1, keepdim=True),
     "tangent_gradient.projected-on-raw-z", "raw z"),
    (C.check_norm_after_step, lambda n, lr, g: n - lr * g, "norm_after_step.lengths-added", "Pythagoras"),
    (C.check_norm_after_step, lambda n, lr, g: n + lr * g, "norm_after_step.lengths-added", "Pythagoras"),
    (C.check_norm_after_step, lambda n, lr, g: n**2 + (lr * g) ** 2, "norm_after_step.squared", "square root"),
    # ex03
    (C.check_oecl_loss, lambda a, b, t, al: losses.nt_xent(a, t) + al * b.norm(dim=1).sum(), "oecl_loss.sum-not-mean", "summed"),
    (C.check_oecl_loss, lambda a, b, t, al: losses.nt_xent(a, t) + al * b.pow(2).sum(1).mean(), "oecl_loss.squared-norm", "squared norm"),
    (C.check_oecl_loss, lambda a, b, t, al: losses.nt_xent(a, t) + al * b.norm(), "oecl_loss.norm-of-whole-batch", "whole batch"),
    (C.check_oecl_loss, lambda a, b, t, al: losses.nt_xent(a, t) + al * b.mean(0).norm(), "oecl_loss.norm-of-mean", "mean of the norms"),
    (C.check_oecl_loss, lambda a, b, t, al: losses.nt_xent(a, t) + b.norm(dim=1).mean(), "oecl_loss.alpha-ignored", "alpha"),
    (C.check_auroc, lambda a, b: float(np.mean(a[:, None] > b[None, :])), "auroc.ties-ignored", "counts 0"),
    (C.check_auroc, lambda a, b: float(np.mean(a[:, None] >= b[None, :])), "auroc.ties-count-one", "counts 1"),
    (C.check_auroc, lambda a, b: float(np.mean(a[:, None] < b[None, :])) + _ties(a, b), "auroc.inverted", "1 − AUROC"),
    # ex04
    (C.check_rotation_split, rotation_clockwise, "rotation_split.clockwise", "clockwise"),
    (C.check_rotation_split, lambda v: rotation_split(v)[::-1], "rotation_split.id-oe-swapped", "swapped"),
    (C.check_rotation_split, rotation_default_dims, "rotation_split.wrong-dims", "dims=(2, 3)"),
    (C.check_rotation_split, rotation_interleaved, "rotation_split.interleaved", "interleaved"),
    (C.check_leave_one_out, lambda a, b, k: ((a != k).int(), (b != k).int(), (b == k).int()), "leave_one_out.integer-mask", "boolean mask is asked"),
    (C.check_leave_one_out, lambda a, b, k: ((a != k).long(), b != k, b == k), "leave_one_out.integer-mask", "torch.int64"),
    (C.check_leave_one_out, lambda a, b, k: (a != k, (b != k).float(), b == k), "leave_one_out.integer-mask", "id_test_mask holds 0/1"),
    (C.check_leave_one_out, lambda a, b, k: ((a != k).tolist(), [int(x) for x in b != k], b == k), "leave_one_out.integer-mask", "id_test_mask"),
    (C.check_leave_one_out, lambda a, b, k: (torch.where(a != k)[0], b != k, b == k), "leave_one_out.indices-not-mask", "indices"),
    (C.check_leave_one_out, lambda a, b, k: (a == k, b == k, b != k), "leave_one_out.train-on-held-out", "every class except it"),
    (C.check_leave_one_out, lambda a, b, k: (a != k, b == k, b != k), "leave_one_out.id-ood-swapped", "swapped"),
]


@pytest.mark.parametrize("check,wrong,mistake_id,phrase", MISTAKE_CASES,
                         ids=[f"{case[2]}-{i}" for i, case in enumerate(MISTAKE_CASES)])
def test_typical_mistake_is_named(check, wrong, mistake_id, phrase, capsys):
    result = check(wrong)
    out = printed(capsys)
    assert not result and result.mistake_id == mistake_id, out
    assert out.startswith(f"❌ not yet: {result.check}: ") and phrase in out, out
    assert "Traceback" not in out


def test_every_mistake_is_produced_by_a_test():
    produced = {case[2] for case in MISTAKE_CASES}
    generic = {"todo-open", "returned-none", "raised-error", "not-a-function", "stale-definition", "stale-definition-error"}
    assert set(exercises.MISTAKES) == produced | generic
    for mistake in exercises.MISTAKES.values():
        assert mistake.check == "*" or mistake.id.startswith(mistake.check + ".")


def test_variants_agree_with_the_library():
    z = torch.randn(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(exercises._nt_xent_variant(z, 0.3), losses.nt_xent(z, 0.3).double())
    assert torch.allclose(student_nt_xent(z, 0.3), losses.nt_xent(z, 0.3).double())


def test_boolean_masks_are_accepted_in_any_container(capsys):
    assert exercises.check_leave_one_out(lambda a, b, k: ((a != k).numpy(), (b != k).tolist(), b == k))
    assert printed(capsys).startswith("✅ correct")


# ------------------------------------------------------------- stale definitions (a fake IPython shell)


class FakeShell:
    """What the checks read of an IPython shell: the input history, the user namespace, the events."""

    def __init__(self, notebook=None):
        self.history_manager = SimpleNamespace(input_hist_parsed=[""])
        self.user_ns = {"__name__": "__main__"}
        if notebook is not None:
            self.user_ns["__session__"] = str(notebook)
        self.events = SimpleNamespace(callbacks={"post_run_cell": []}, register=self._register)

    def _register(self, event, function):
        self.events.callbacks[event].append(function)

    def run_cell(self, source):
        """Like IPython: store the input, compile it under a cached file name, run it, fire the hooks."""
        number = len(self.history_manager.input_hist_parsed)
        self.history_manager.input_hist_parsed.append(source)
        name = f"<ipython-input-{number}-fake>"
        linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
        try:
            exec(compile(source, name, "exec"), self.user_ns)
        except Exception as error:
            print(f"{type(error).__name__}: {error}")
        for callback in self.events.callbacks["post_run_cell"]:
            callback()


@pytest.fixture
def shell(monkeypatch):
    fake = FakeShell()
    monkeypatch.setattr(exercises, "_shell", lambda: fake)
    return fake


SIM_TODO = "def similarity_matrix(z):\n    # TODO\n    raise NotImplementedError\n"
SIM_DONE = "def similarity_matrix(z):\n    z_hat = z / z.norm(dim=1, keepdim=True)\n    return z_hat @ z_hat.T\n"
CHECK = "ok = check_similarity_matrix(similarity_matrix)\n"


def test_outside_ipython_nothing_is_looked_up(monkeypatch, capsys):
    monkeypatch.setattr(exercises, "_shell", lambda: None)
    monkeypatch.setattr(exercises, "_failed_redefinition", lambda *a: pytest.fail("looked at the history"))
    assert exercises.check_similarity_matrix(similarity)


def test_stale_after_a_redefinition_that_failed(shell, capsys):
    shell.run_cell("from ood_explain.teaching.exercises import check_similarity_matrix\n")
    shell.run_cell(SIM_TODO)
    shell.run_cell(CHECK)
    assert shell.user_ns["ok"].mistake_id == "todo-open"
    shell.run_cell("import not_a_module_xyz\n" + SIM_DONE)  # the edit ran, but stopped before the def
    shell.run_cell(CHECK)
    out = printed(capsys)
    assert shell.user_ns["ok"].mistake_id == "stale-definition-error"
    assert "the cell you last ran to define `similarity_matrix` ([4]) stopped with an error" in out
    shell.run_cell(SIM_DONE.replace("z_hat @", "z_hat  @"))  # fixed and run: up to date
    shell.run_cell(CHECK)
    assert shell.user_ns["ok"]


def test_stale_after_a_syntax_error(shell, capsys):
    shell.run_cell("from ood_explain.teaching.exercises import check_similarity_matrix\n")
    shell.run_cell(SIM_TODO)
    shell.run_cell(SIM_DONE.replace("return", "return (("))
    shell.run_cell(CHECK)
    assert shell.user_ns["ok"].mistake_id == "stale-definition-error"
    assert "([3])" in printed(capsys)


def test_stale_called_function(shell, capsys):
    """nt_xent is up to date, but the similarity_matrix it calls is not."""
    shell.run_cell("from ood_explain.teaching.exercises import check_nt_xent\nimport torch\nimport torch.nn.functional as F\n")
    shell.run_cell(SIM_TODO)
    shell.run_cell("1/0\n" + SIM_DONE)
    shell.run_cell(textwrap.dedent("""\
        def nt_xent(z, temperature):
            n = z.shape[0] // 2
            logits = similarity_matrix(z) / temperature
            logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
            return F.cross_entropy(logits, torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]))
        """))
    shell.run_cell("ok = check_nt_xent(nt_xent)\n")
    assert shell.user_ns["ok"].mistake_id == "stale-definition-error"
    assert "define `similarity_matrix`" in printed(capsys)


def write_notebook(path, *sources, mtime=None):
    cells = [{"cell_type": "code", "source": source.splitlines(keepends=True), "metadata": {}, "outputs": [],
              "execution_count": None} for source in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_stale_when_the_saved_notebook_has_an_edit_that_was_not_run(shell, tmp_path, capsys):
    notebook = tmp_path / "ex01.ipynb"
    shell.user_ns["__session__"] = str(notebook)
    shell.run_cell("from ood_explain.teaching.exercises import check_similarity_matrix\n")
    write_notebook(notebook, SIM_TODO, CHECK, mtime=time.time() - 60)  # saved before the definition ran
    shell.run_cell(SIM_TODO)
    shell.run_cell(CHECK)
    assert shell.user_ns["ok"].mistake_id == "todo-open"
    # the student fills in the TODO, JupyterLab saves, but only the check cell is run
    write_notebook(notebook, SIM_DONE, CHECK, mtime=time.time() + 5)
    shell.run_cell(CHECK)
    out = printed(capsys)
    assert shell.user_ns["ok"].mistake_id == "stale-definition"
    assert ("❌ not yet: similarity_matrix: you edited `similarity_matrix` but did not run its cell: run the cell "
            "that defines it, then this one.") in out
    # after running the definition cell the check grades the new code
    shell.run_cell(SIM_DONE)
    shell.run_cell(CHECK)
    assert shell.user_ns["ok"]


def test_not_stale_when_the_file_was_saved_before_the_definition_ran(shell, tmp_path):
    """An autosave of a half-typed definition, then the finished one was run: nothing is stale."""
    notebook = tmp_path / "ex01.ipynb"
    shell.user_ns["__session__"] = str(notebook)
    shell.run_cell("from ood_explain.teaching.exercises import check_similarity_matrix\n")
    write_notebook(notebook, "def similarity_matrix(z):\n    z_hat = z /\n", CHECK, mtime=time.time() - 60)
    shell.run_cell(SIM_DONE)
    shell.run_cell(CHECK)
    assert shell.user_ns["ok"]


def test_not_stale_when_only_comments_or_spacing_differ(shell, tmp_path):
    notebook = tmp_path / "ex01.ipynb"
    shell.user_ns["__session__"] = str(notebook)
    shell.run_cell("from ood_explain.teaching.exercises import check_similarity_matrix\n")
    shell.run_cell(SIM_DONE)
    write_notebook(notebook, SIM_DONE.replace("    return", "    # cosines\n    return  "), CHECK, mtime=time.time() + 5)
    shell.run_cell(CHECK)
    assert shell.user_ns["ok"]


def test_library_functions_are_never_stale(shell, capsys):
    shell.run_cell("from ood_explain.teaching.exercises import check_nt_xent\nfrom ood_explain import losses\n")
    shell.run_cell("1/0\ndef nt_xent(z, temperature):\n    return 0\n")
    shell.run_cell("ok = check_nt_xent(losses.nt_xent)\n")
    assert shell.user_ns["ok"]


# ------------------------------------------------------------------- a real IPython shell (a process)


@pytest.mark.slow
def test_stale_definition_in_a_real_ipython_shell(tmp_path):
    script = textwrap.dedent(f"""
        import json, os, time
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance(history_length=0)
        shell.history_manager.enabled = False
        notebook = {str(tmp_path / "ex01.ipynb")!r}
        shell.user_ns["__session__"] = notebook

        def save(*sources):
            cells = [dict(cell_type="code", source=s, metadata={{}}, outputs=[], execution_count=None) for s in sources]
            with open(notebook, "w") as f:
                json.dump(dict(cells=cells, metadata={{}}, nbformat=4, nbformat_minor=5), f)
            os.utime(notebook, (time.time() + 5, time.time() + 5))

        def run(source):
            shell.run_cell(source, store_history=True)
            return shell.user_ns.get("ok")

        run("from ood_explain.teaching.exercises import check_similarity_matrix")
        run({SIM_TODO!r})
        print("A", run({CHECK!r}).mistake_id)
        run("import not_a_module_xyz\\n" + {SIM_DONE!r})
        print("B", run({CHECK!r}).mistake_id)
        run({SIM_DONE!r})
        print("C", bool(run({CHECK!r})))
        save({SIM_TODO!r}, {CHECK!r})
        print("D", run({CHECK!r}).mistake_id)
        """)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    out = "\n" + done.stdout + done.stderr  # "not yet" lines go to stderr
    assert done.returncode == 0, done.stderr
    assert "\nA todo-open\n" in out, out
    assert "\nB stale-definition-error\n" in out and "([4]) stopped with an error" in out, out
    assert "\nC True\n" in out, out
    assert "\nD stale-definition\n" in out and "you edited `similarity_matrix` but did not run its cell" in out, out
