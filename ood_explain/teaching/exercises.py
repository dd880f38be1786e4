"""Checkers for the classroom exercises in ``notebooks/exercises``.

Each ``check_*`` function takes the student's answer (usually a function), tests it against the
library's reference implementation on a few fixed inputs, prints one clear line, and returns a
:class:`CheckResult`, which is truthy exactly when the answer is right (``if check_auroc(auroc):``
and ``check_auroc(auroc) == True`` work as with a bool):

* ``✅ correct: ...`` when every test passes;
* ``❌ not yet: ...`` otherwise, saying what was expected and what came back. An unanswered TODO (a
  function that raises ``NotImplementedError`` or returns ``None``) gets the "not yet" message too,
  and no exception escapes, so a notebook with open TODOs still runs from top to bottom.

**Typical mistakes are named.** When a wrong answer equals a known wrong variant computed on the
same inputs (the similarity matrix of un-normalised z, NT-Xent without the diagonal mask, the
gradient without its 1/‖z‖, ...), the line says which mistake it looks like and how to fix it, and
the result carries a :class:`Mistake` with a stable ``id`` (``result.mistake_id``, e.g.
``"similarity_matrix.not-normalised"``; every id is in :data:`MISTAKES`). Every result of this
process is also appended to :data:`results`, so a grader that runs a student's notebook can read
``ood_explain.teaching.exercises.results`` in its kernel afterwards and count the mistakes.

**Stale definitions (IPython only).** A student who edits the cell defining ``similarity_matrix``
but runs only the check cell is checking the old function. The kernel never sees an edit that was
not run, so two traces of it are used: the last cell *run* that defines the name, in IPython's
input history (it differs from the function when that cell stopped with an error before the
``def``), and the notebook file as last saved (``__session__``, set by Jupyter), which holds the
edit once JupyterLab has saved it after the definition ran. Either way the check names the
definition cell ("you edited `similarity_matrix` but did not run its cell: ...") instead of
grading the old code. Outside IPython none of this runs.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import re
import sys
import textwrap
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, TracebackType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ood_explain.core import augment, losses, metrics

PASS, FAIL = "✅ correct", "❌ not yet"


# ------------------------------------------------------------------------------ results and mistakes


@dataclass(frozen=True)
class Mistake:
    """A recognised wrong answer: a stable `id` (for counting in a classroom), the check it belongs
    to (``"*"``: any check) and the hint shown to the student (``{name}`` and ``{cell}`` are filled in
    for the stale-definition hints)."""

    id: str
    check: str
    message: str


MISTAKES: dict[str, Mistake] = {}
"""Every mistake a check can name, by id."""


def _mistake(id: str, check: str, message: str) -> Mistake:
    if id in MISTAKES:
        raise ValueError(f"duplicate mistake id {id!r}")
    MISTAKES[id] = Mistake(id, check, message)
    return MISTAKES[id]


@dataclass(frozen=True, eq=False)
class CheckResult:
    """What a check found: truthy iff `passed`, equal to ``True``/``False`` accordingly.

    `text` is the line that was printed; `mistake` the recognised mistake, if any (a wrong answer
    that matches no known variant has ``mistake=None``)."""

    check: str
    passed: bool
    text: str
    mistake: Mistake | None = None

    @property
    def mistake_id(self) -> str | None:
        return self.mistake.id if self.mistake else None

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return self.passed is other
        if isinstance(other, CheckResult):
            return (self.check, self.passed, self.text, self.mistake) == (
                other.check,
                other.passed,
                other.text,
                other.mistake,
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.passed)

    def __repr__(self) -> str:
        mistake = f", mistake={self.mistake_id!r}" if self.mistake else ""
        return f"CheckResult({self.check!r}, passed={self.passed}{mistake})"


results: list[CheckResult] = []
"""Every check result of this process, in order (for a grader reading a student's kernel)."""


# Generic outcomes, any check.
TODO_OPEN = _mistake(
    "todo-open",
    "*",
    "the TODO is still open (NotImplementedError): replace `raise "
    "NotImplementedError` with your code, run the cell that defines `{name}`, then run "
    "this check again.",
)
RETURNED_NONE = _mistake(
    "returned-none",
    "*",
    "your function returned None: the TODO is still open, or "
    "a `return` is missing in `{name}` (fix it and run its cell, then this check).",
)
NOT_A_FUNCTION = _mistake("not-a-function", "*", "expected a function, got {name}")
RAISED = _mistake("raised-error", "*", "your code raised {name}")
NOT_BOOLEAN_MASK = _mistake(
    "mask-not-boolean",
    "*",
    "your code raised {name}. PyTorch wants a boolean mask there, not 0/1 "
    "numbers: make it with dtype=torch.bool (e.g. torch.eye(M, dtype=torch.bool)) or compare "
    "(labels != c), instead of torch.eye(M) or .int()/.float().",
)
EDITED_NOT_RUN = _mistake(
    "stale-definition",
    "*",
    "you edited `{name}` but did not run its cell: run the cell that defines it, then this one.",
)
FAILED_REDEFINITION = _mistake(
    "stale-definition-error",
    "*",
    "the cell you last ran to define `{name}` ([{cell}]) stopped with an "
    "error before its `def`, so this check sees your previous `{name}`: fix that cell and run it, then "
    "this one.",
)


class _NotYet(Exception):
    """Raised inside a check to stop at the first failed test with a message for the student; with a
    `mistake` when the wrong answer was recognised (its message is the hint, unless `text` is given)."""

    def __init__(self, text: str | Mistake, mistake: Mistake | None = None):
        if isinstance(text, Mistake):
            mistake = text
            text = text.message
        super().__init__(text)
        self.mistake = mistake


_MASK_ERROR = re.compile(r"boolean mask|BoolTensor for mask|indices must be long, int, byte or bool")


def _report(name: str, student: object, check: Callable[[], str]) -> CheckResult:
    mistake = None
    stale = _stale_definition(student)
    if stale is not None:
        mistake, text = stale
        text = f"{FAIL}: {name}: {text}"
    else:
        try:
            detail = check()
        except _NotYet as failure:
            text, mistake = f"{FAIL}: {name}: {failure}", failure.mistake
        except NotImplementedError as error:
            mistake = TODO_OPEN
            text = f"{FAIL}: {name}: " + TODO_OPEN.message.format(name=_raised_in(error, student, name))
        except Exception as error:  # the student's code crashed: show the error, never a traceback
            mistake = NOT_BOOLEAN_MASK if _MASK_ERROR.search(str(error)) else RAISED
            text = f"{FAIL}: {name}: " + mistake.message.format(name=f"{type(error).__name__}: {error}")
        else:
            text = f"{PASS}: {name}. {detail}".rstrip()
    passed = text.startswith(PASS)
    # "not yet" goes to stderr: JupyterLab shows it on red, and nbgrader's autograde counts a graded cell
    # with stderr output as failed (0 points) while the notebook still runs on.
    print(text, file=sys.stdout if passed else sys.stderr)
    result = CheckResult(name, passed, text, mistake)
    results.append(result)
    return result


def _function_name(function: object, default: str) -> str:
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else default


def _raised_in(error: BaseException, student: object, default: str) -> str:
    """The student's function that raised `error`: the innermost frame of the traceback that runs in
    the student's namespace (a TODO in `similarity_matrix` called from `nt_xent` names the former)."""
    namespace = getattr(student, "__globals__", None)
    name = _function_name(student, default)
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        if namespace is not None and tb.tb_frame.f_globals is namespace and tb.tb_frame.f_code.co_name.isidentifier():
            name = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return name


def _call(function: Callable, *args):
    if not callable(function):
        raise _NotYet(NOT_A_FUNCTION.message.format(name=type(function).__name__), NOT_A_FUNCTION)
    result = function(*args)
    if result is None:
        raise _NotYet(RETURNED_NONE.message.format(name=_function_name(function, "your function")), RETURNED_NONE)
    return result


def _tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise _NotYet(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    return value.detach().double()


def _matches(got: torch.Tensor, value: torch.Tensor, tol: float) -> bool:
    value = value.detach().double()
    if tuple(got.shape) != tuple(value.shape):
        return False
    error = (got - value).abs().max().item() if got.numel() else 0.0
    return math.isfinite(error) and error <= tol


def _close(
    got: torch.Tensor,
    expected: torch.Tensor,
    what: str,
    tol: float = 1e-5,
    mistakes: Iterable[tuple[Mistake, Callable[[], torch.Tensor]]] = (),
) -> None:
    """Stop unless `got` equals `expected`; name the first mistake whose wrong variant `got` equals."""
    if tuple(got.shape) == tuple(expected.shape):
        error = (got - expected.double()).abs().max().item() if got.numel() else 0.0
        if math.isfinite(error) and error <= tol:
            return
    _recognise(lambda value: _matches(got, value, tol), mistakes)
    if tuple(got.shape) != tuple(expected.shape):
        raise _NotYet(f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    raise _NotYet(f"{what} is off by up to {error:.3g} (tolerance {tol:g})")


def _recognise(matches: Callable[[Any], bool], mistakes: Iterable[tuple[Mistake, Callable[[], object]]]) -> None:
    """Raise the first mistake whose wrong variant (computed lazily) `matches` the answer."""
    for mistake, variant in mistakes:
        try:
            value = variant()
        except Exception:  # a variant that does not apply to these inputs
            continue
        if matches(value):
            raise _NotYet(mistake)


def _same_number(got: float, value, rel: float = 1e-4) -> bool:
    value = float(value)
    return math.isfinite(got) and math.isfinite(value) and abs(got - value) <= rel * max(1.0, abs(value))


def _random_z(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2 * n, d, generator=generator, dtype=torch.float64) * scale


# --------------------------------------------------------------------------- 01: NT-Xent and cosines

SIM_NOT_NORMALISED = _mistake(
    "similarity_matrix.not-normalised",
    "similarity_matrix",
    "it looks like you forgot to normalise: you returned z zᵀ. Use ẑ = z/‖z‖ first "
    "(F.normalize(z, dim=1)), then return ẑ ẑᵀ.",
)
SIM_NO_KEEPDIM = _mistake(
    "similarity_matrix.norm-without-keepdim",
    "similarity_matrix",
    "you divided by z.norm(dim=1) without keepdim=True: the M norms were spread along the columns, so "
    "column j was divided by the norm of row j. Use z / z.norm(dim=1, keepdim=True).",
)
SIM_COLUMNS = _mistake(
    "similarity_matrix.normalised-columns",
    "similarity_matrix",
    "you normalised the columns (dim=0): each row z_i is one feature vector, so normalise along dim=1.",
)
SIM_WHOLE_BATCH = _mistake(
    "similarity_matrix.norm-of-whole-batch",
    "similarity_matrix",
    "you divided by the norm of the whole batch (z.norm() without dim): every row needs its own "
    "length, z.norm(dim=1, keepdim=True).",
)


def check_similarity_matrix(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """`student_fn(z)`: (M, d) raw features -> (M, M) cosine similarities ẑ_i·ẑ_j."""

    def run() -> str:
        # the first z is square, so that dividing by z.norm(dim=1) without keepdim gives an answer
        for seed, (m, d, scale) in enumerate([(4, 4, 1.0), (10, 16, 7.0), (6, 128, 0.01)]):
            z = _random_z(m // 2, d, seed, scale)
            got = _tensor(_call(student_fn, z.clone()), "the similarity matrix")
            z_hat = F.normalize(z, dim=1)

            def gram(x: torch.Tensor) -> torch.Tensor:
                return x @ x.T

            _close(
                got,
                gram(z_hat),
                f"the similarity matrix for z of shape {tuple(z.shape)}",
                mistakes=[
                    (SIM_NOT_NORMALISED, lambda: gram(z)),
                    (SIM_NO_KEEPDIM, lambda: gram(z / z.norm(dim=1))),
                    (SIM_COLUMNS, lambda: gram(F.normalize(z, dim=0))),
                    (SIM_WHOLE_BATCH, lambda: gram(z / z.norm())),
                ],
            )
        return "The diagonal is 1 and the matrix ignores the length of every z."

    return _report("similarity_matrix", student_fn, run)


NTX_NOT_NORMALISED = _mistake(
    "nt_xent.not-normalised",
    "nt_xent",
    "it looks like you forgot to normalise: the similarities must be cosines ẑᵢ·ẑⱼ of ẑ = z/‖z‖ (your "
    "similarity_matrix from Task 1), not raw dot products zᵢ·zⱼ.",
)
NTX_NO_MASK = _mistake(
    "nt_xent.no-diagonal-mask",
    "nt_xent",
    "you did not mask the diagonal: s_ii/τ (each anchor with itself) is in your denominator, but the "
    "sum runs over k ≠ i. Set the diagonal of the logits to -inf: "
    "logits.masked_fill(torch.eye(2N, dtype=torch.bool), float('-inf')).",
)
NTX_ZERO_DIAGONAL = _mistake(
    "nt_xent.diagonal-zero",
    "nt_xent",
    "you set the diagonal of the logits to 0, but exp(0) = 1 still counts in the denominator: set it to "
    "-inf so that k = i drops out.",
)
NTX_NO_TEMPERATURE = _mistake(
    "nt_xent.no-temperature",
    "nt_xent",
    "it looks like you left out the temperature: the logits are the similarities divided by τ, s_ij / τ.",
)
NTX_TIMES_TEMPERATURE = _mistake(
    "nt_xent.times-temperature", "nt_xent", "you multiplied the similarities by the temperature: divide them, s_ij / τ."
)
NTX_SUM = _mistake(
    "nt_xent.sum-not-mean",
    "nt_xent",
    "it looks like a sum: take the mean over the 2N anchors (F.cross_entropy averages by default).",
)
NTX_HALF = _mistake(
    "nt_xent.first-views-only",
    "nt_xent",
    "you averaged over the first N anchors only: every one of the 2N rows is an anchor, and row i+N's "
    "positive is row i.",
)
NTX_NAN = _mistake(
    "nt_xent.nan",
    "nt_xent",
    "your loss is nan. Usual causes: torch.eye(2N) * float('inf') (0 × inf is nan off the diagonal), or "
    "an integer 0/1 mask used as an index (logits[torch.eye(2N).long()] selects whole rows 0 and 1, not "
    "the diagonal). Use a boolean mask: logits.masked_fill(torch.eye(2N, dtype=torch.bool), float('-inf')).",
)


def _nt_xent_variant(
    z: torch.Tensor,
    temperature: float,
    *,
    normalise: bool = True,
    diagonal: float | None = float("-inf"),
    first_half: bool = False,
    total: bool = False,
) -> torch.Tensor:
    """NT-Xent (the defaults) and its typical wrong variants, in float64."""
    n = z.shape[0] // 2
    features = F.normalize(z, dim=1) if normalise else z
    logits = features @ features.T / temperature
    if diagonal is not None:
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), diagonal)
    per_anchor = F.cross_entropy(logits, (torch.arange(2 * n) + n) % (2 * n), reduction="none")
    if first_half:
        per_anchor = per_anchor[:n]
    return per_anchor.sum() if total else per_anchor.mean()


def check_nt_xent(student_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> CheckResult:
    """`student_fn(z, temperature)`: (2N, d) with rows i and i+N positive pairs -> scalar NT-Xent,
    compared with :func:`ood_explain.core.losses.nt_xent`."""

    def run() -> str:
        cases = [(2, 4, 0.5, 1.0), (8, 16, 0.5, 3.0), (8, 16, 0.1, 1.0), (5, 128, 1.0, 0.2)]
        for seed, (n, d, tau, scale) in enumerate(cases):
            z = _random_z(n, d, seed, scale)
            got = _tensor(_call(student_fn, z.clone(), tau), "the loss")
            if got.numel() != 1:
                raise _NotYet(f"the loss should be one number (a scalar), got shape {tuple(got.shape)}")
            expected = losses.nt_xent(z, tau).double()
            if not abs(got.item() - expected.item()) <= 1e-4:  # `not <=`: a nan fails
                if math.isnan(got.item()):
                    raise _NotYet(NTX_NAN)
                _recognise(
                    lambda value: _same_number(got.item(), value),
                    [
                        (NTX_NOT_NORMALISED, lambda: _nt_xent_variant(z, tau, normalise=False)),
                        (NTX_NO_MASK, lambda: _nt_xent_variant(z, tau, diagonal=None)),
                        (NTX_ZERO_DIAGONAL, lambda: _nt_xent_variant(z, tau, diagonal=0.0)),
                        (NTX_NO_TEMPERATURE, lambda: _nt_xent_variant(z, 1.0)),
                        (NTX_TIMES_TEMPERATURE, lambda: _nt_xent_variant(z, 1.0 / tau)),
                        (NTX_SUM, lambda: _nt_xent_variant(z, tau, total=True)),
                        (NTX_HALF, lambda: _nt_xent_variant(z, tau, first_half=True)),
                    ],
                )
                raise _NotYet(f"for N={n}, d={d}, tau={tau} expected {expected.item():.5f}, got {got.item():.5f}")
        z = _random_z(4, 8, 99)
        scaled = _tensor(_call(student_fn, z * torch.linspace(0.1, 10, 8, dtype=z.dtype)[:, None], 0.5), "the loss")
        if not abs(scaled.item() - losses.nt_xent(z, 0.5).item()) <= 1e-4:
            raise _NotYet(
                "rescaling the rows of z changed your loss: normalize z before the similarities", NTX_NOT_NORMALISED
            )
        return "It matches ood_explain.core.losses.nt_xent, and rescaling z does not change it."

    return _report("nt_xent", student_fn, run)


# ------------------------------------------------------------------- 02: why the norm grows in training

TAN_NO_INVERSE_NORM = _mistake(
    "tangent_gradient.missing-inverse-norm",
    "tangent_gradient",
    "you forgot the 1/‖z‖: your projection (I − ẑẑᵀ) g is right, now divide it by ‖z‖ (z.norm(dim=1, keepdim=True)).",
)
TAN_TIMES_NORM = _mistake(
    "tangent_gradient.times-norm",
    "tangent_gradient",
    "you multiplied by ‖z‖: the chain rule through ẑ = z/‖z‖ gives a factor 1/‖z‖, so divide.",
)
TAN_NOT_PROJECTED = _mistake(
    "tangent_gradient.not-projected",
    "tangent_gradient",
    "you divided g by ‖z‖ but did not remove its component along ẑ: compute (g − (ẑ·g) ẑ) / ‖z‖.",
)
TAN_RAW_Z = _mistake(
    "tangent_gradient.projected-on-raw-z",
    "tangent_gradient",
    "you projected with the raw z, (I − z zᵀ) g: the projection uses the unit vector ẑ = z/‖z‖.",
)


def check_tangent_gradient(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """`student_fn(z, g)`: the gradient with respect to z of a loss L(ẑ) with ∂L/∂ẑ = g, i.e.
    (I − ẑẑᵀ) g / ‖z‖, for rows of z and g (M, d); compared with autograd."""

    def run() -> str:
        for seed, (m, d, scale) in enumerate([(1, 2, 1.0), (5, 8, 3.0), (4, 128, 0.5)]):
            generator = torch.Generator().manual_seed(100 + seed)
            z = torch.randn(m, d, generator=generator, dtype=torch.float64) * scale
            g = torch.randn(m, d, generator=generator, dtype=torch.float64)
            leaf = z.clone().requires_grad_(True)
            (F.normalize(leaf, dim=1) * g).sum().backward()
            assert leaf.grad is not None  # set by backward(): leaf requires grad and is used in the loss
            got = _tensor(_call(student_fn, z.clone(), g.clone()), "the gradient")
            norm = z.norm(dim=1, keepdim=True)
            z_hat = z / norm
            projected = g - (g * z_hat).sum(1, keepdim=True) * z_hat
            _close(
                got,
                leaf.grad,
                f"the gradient for z of shape {tuple(z.shape)}",
                1e-6,
                mistakes=[
                    (TAN_NO_INVERSE_NORM, lambda: projected),
                    (TAN_TIMES_NORM, lambda: projected * norm),
                    (TAN_NOT_PROJECTED, lambda: g / norm),
                    (TAN_RAW_Z, lambda: (g - (g * z).sum(1, keepdim=True) * z) / norm),
                    (TAN_RAW_Z, lambda: g - (g * z).sum(1, keepdim=True) * z),
                ],
            )
        return "The gradient is orthogonal to z (z·grad = 0) and shrinks like 1/‖z‖."

    return _report("tangent_gradient", student_fn, run)


STEP_LENGTHS_ADDED = _mistake(
    "norm_after_step.lengths-added",
    "norm_after_step",
    "you added or subtracted the lengths, but g ⟂ z: they combine like the sides of a right triangle, "
    "‖z − lr·g‖² = ‖z‖² + (lr·‖g‖)² (Pythagoras).",
)
STEP_NO_ROOT = _mistake(
    "norm_after_step.squared",
    "norm_after_step",
    "you returned the squared norm ‖z‖² + (lr·‖g‖)²: take its square root.",
)


def check_norm_after_step(student_fn: Callable[[float, float, float], float]) -> CheckResult:
    """`student_fn(norm, lr, grad_norm)`: ‖z − lr·g‖ for a gradient g orthogonal to z."""

    def run() -> str:
        for norm, lr, grad_norm in [(1.0, 0.1, 1.0), (3.0, 0.5, 2.0), (0.2, 1.0, 0.0), (10.0, 2.0, 5.0)]:
            got = _call(student_fn, norm, lr, grad_norm)
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise _NotYet(f"expected a number, got {type(got).__name__}") from None
            expected = math.sqrt(norm**2 + (lr * grad_norm) ** 2)
            if not abs(got - expected) <= 1e-6 * max(1.0, expected):  # a nan fails
                _recognise(
                    lambda value: _same_number(got, value, 1e-6),
                    [
                        (STEP_LENGTHS_ADDED, lambda: norm - lr * grad_norm),
                        (STEP_LENGTHS_ADDED, lambda: norm + lr * grad_norm),
                        (STEP_LENGTHS_ADDED, lambda: abs(norm - lr * grad_norm)),
                        (STEP_NO_ROOT, lambda: norm**2 + (lr * grad_norm) ** 2),
                    ],
                )
                raise _NotYet(
                    f"for ‖z‖={norm}, lr={lr}, ‖g‖={grad_norm} expected {expected:.6f}, got {got:.6f} "
                    "(Pythagoras: g ⟂ z)"
                )
        return "An orthogonal step never shrinks ‖z‖: ‖z′‖² = ‖z‖² + lr²‖g‖²."

    return _report("norm_after_step", student_fn, run)


# ------------------------------------------------------------------------------ 03: OECL loss and AUROC

OECL_SUM = _mistake(
    "oecl_loss.sum-not-mean",
    "oecl_loss",
    "you summed the norms of the OE rows: OECL takes their mean, α · (1/M) Σ_j ‖z_j‖ (z_oe.norm(dim=1).mean()).",
)
OECL_SQUARED = _mistake(
    "oecl_loss.squared-norm",
    "oecl_loss",
    "you used the squared norm; OECL penalizes ‖z‖ itself (z_oe.norm(dim=1), not z_oe.pow(2).sum(1)).",
)
OECL_WHOLE_BATCH = _mistake(
    "oecl_loss.norm-of-whole-batch",
    "oecl_loss",
    "z_oe.norm() without dim is one norm of the whole batch: take the norm of every row, then the mean, "
    "z_oe.norm(dim=1).mean().",
)
OECL_NORM_OF_MEAN = _mistake(
    "oecl_loss.norm-of-mean",
    "oecl_loss",
    "you took the norm of the mean OE row: OECL takes the mean of the norms, z_oe.norm(dim=1).mean().",
)
OECL_NO_ALPHA = _mistake(
    "oecl_loss.alpha-ignored",
    "oecl_loss",
    "your OE term ignores alpha: it is α times the mean norm (and α = 0 during the warm-up).",
)


def check_oecl_loss(student_fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> CheckResult:
    """`student_fn(z_id, z_oe, temperature, alpha)`: NT-Xent on ID views + alpha · mean ‖z_oe‖,
    compared with :func:`ood_explain.core.losses.oecl_loss`."""

    def run() -> str:
        for seed, (n, m, d, tau, alpha) in enumerate(
            [(3, 6, 8, 0.5, 1.0), (8, 16, 32, 0.5, 0.1), (4, 8, 16, 0.2, 0.0)]
        ):
            z_id = _random_z(n, d, seed, 2.0)
            z_oe = torch.randn(m, d, generator=torch.Generator().manual_seed(50 + seed), dtype=torch.float64) * 3
            got = _tensor(_call(student_fn, z_id.clone(), z_oe.clone(), tau, alpha), "the loss")
            if got.numel() != 1:
                raise _NotYet(f"the loss should be a scalar, got shape {tuple(got.shape)}")
            expected = losses.oecl_loss(z_id, z_oe, tau, alpha).item()
            if not abs(got.item() - expected) <= 1e-4:  # a nan fails
                contrastive = losses.nt_xent(z_id, tau).item()
                _recognise(
                    lambda value: _same_number(got.item(), value),
                    [
                        (OECL_SUM, lambda: contrastive + alpha * z_oe.norm(dim=1).sum()),
                        (OECL_SQUARED, lambda: contrastive + alpha * z_oe.pow(2).sum(1).mean()),
                        (OECL_WHOLE_BATCH, lambda: contrastive + alpha * z_oe.norm()),
                        (OECL_NORM_OF_MEAN, lambda: contrastive + alpha * z_oe.mean(0).norm()),
                        (OECL_NO_ALPHA, lambda: contrastive + z_oe.norm(dim=1).mean()),
                    ],
                )
                raise _NotYet(f"for alpha={alpha}, tau={tau} expected {expected:.5f}, got {got.item():.5f}")
        return "NT-Xent on the ID views plus alpha times the mean raw norm of the OE views."

    return _report("oecl_loss", student_fn, run)


AUROC_TIES_ZERO = _mistake(
    "auroc.ties-ignored",
    "auroc",
    "a tie (ID score = OOD score) must count 1/2; yours counts 0: add 0.5 · mean(a[:, None] == b[None, :]).",
)
AUROC_TIES_ONE = _mistake(
    "auroc.ties-count-one", "auroc", "a tie (ID score = OOD score) must count 1/2; yours counts 1 (>= instead of >)."
)
AUROC_INVERTED = _mistake(
    "auroc.inverted",
    "auroc",
    "you computed 1 − AUROC: ID is the positive class and a higher score means more ID, so count the "
    "pairs with ID score > OOD score.",
)


def check_auroc(student_fn: Callable[[np.ndarray, np.ndarray], float]) -> CheckResult:
    """`student_fn(scores_id, scores_ood)`: P(ID score > OOD score) with ties counting 1/2, compared
    with :func:`ood_explain.core.metrics.auroc`."""

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
            if not abs(got - expected) <= 1e-9:  # a nan fails
                a, b = scores_id[:, None], scores_ood[None, :]
                _recognise(
                    lambda value: _same_number(got, value, 1e-9),
                    [
                        (AUROC_INVERTED, lambda: 1.0 - expected),
                        (AUROC_TIES_ZERO, lambda: np.mean(a > b)),
                        (AUROC_TIES_ONE, lambda: np.mean(a >= b)),
                    ],
                )
                shown = f"ID {np.round(scores_id[:5], 2).tolist()}, OOD {np.round(scores_ood[:5], 2).tolist()}"
                raise _NotYet(f"for {shown} expected {expected:.4f}, got {got:.4f}")
        return "AUROC = P(score of a random ID image > score of a random OOD image)."

    return _report("auroc", student_fn, run)


# ------------------------------------------------------------------- 04: self-OECL and leave-one-out

ROT_CLOCKWISE = _mistake(
    "rotation_split.clockwise",
    "rotation_split",
    "your 90° and 270° are swapped: you rotated clockwise. torch.rot90(x, k, dims=(2, 3)) turns "
    "counter-clockwise; dims=(3, 2) or a negative k turns the other way.",
)
ROT_SWAPPED = _mistake(
    "rotation_split.id-oe-swapped",
    "rotation_split",
    "ID and OE are swapped: 0° and 90° are the ID instances, 180° and 270° the outliers.",
)
ROT_WRONG_DIMS = _mistake(
    "rotation_split.wrong-dims",
    "rotation_split",
    "you rotated the batch and channel axes: torch.rot90's default is dims=(0, 1); rotate the images with dims=(2, 3).",
)
ROT_INTERLEAVED = _mistake(
    "rotation_split.interleaved",
    "rotation_split",
    "your rows are interleaved image by image (stack then reshape): put all the 0° views first, then "
    "all the 90° views, torch.cat([views, rot90(views)]) (and the same for 180° and 270°).",
)


def check_rotation_split(student_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """`student_fn(views)`: (B, C, H, W) -> (id_rows, oe_rows): ID rows are the 0° and 90° rotations
    [views; rot90(views)], OE rows the 180° and 270° ones [rot180(views); rot270(views)]."""

    def run() -> str:
        # B = C in the first batch, so that rotating dims (0, 1), torch.rot90's default, gives an answer
        for shape, seed in [((3, 3, 5, 5), 8), ((3, 1, 5, 5), 7)]:
            views = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
            answer = _call(student_fn, views.clone())
            if not isinstance(answer, (tuple, list)) or len(answer) != 2:
                raise _NotYet("return a pair (id_rows, oe_rows)")
            id_rows, oe_rows = (_tensor(a, name) for a, name in zip(answer, ("id_rows", "oe_rows")))
            turned = [augment.rotate90(views, k) for k in range(4)]
            expected_id, expected_oe = torch.cat(turned[:2]), torch.cat(turned[2:])
            if _matches(id_rows, expected_id, 1e-5) and _matches(oe_rows, expected_oe, 1e-5):
                continue
            axes = [torch.rot90(views, k, dims=(0, 1)) for k in range(4)]
            pair_matches = lambda pair: _matches(id_rows, pair[0], 1e-5) or _matches(oe_rows, pair[1], 1e-5)  # noqa: E731
            _recognise(
                pair_matches,
                [
                    (ROT_SWAPPED, lambda: (expected_oe, expected_id)),
                    (ROT_CLOCKWISE, lambda: (torch.cat([turned[0], turned[3]]), torch.cat([turned[2], turned[1]]))),
                    (ROT_WRONG_DIMS, lambda: (torch.cat(axes[:2]), torch.cat(axes[2:]))),
                    (
                        ROT_INTERLEAVED,
                        lambda: (torch.stack(turned[:2], 1).flatten(0, 1), torch.stack(turned[2:], 1).flatten(0, 1)),
                    ),
                ],
            )
            _close(id_rows, expected_id, "id_rows (0° then 90°)")
            _close(oe_rows, expected_oe, "oe_rows (180° then 270°)")
        return "0° and 90° stay ID instances, 180° and 270° become self-generated outliers."

    return _report("rotation_split", student_fn, run)


LOO_INTEGER = _mistake(
    "leave_one_out.integer-mask",
    "leave_one_out",
    "{name} holds 0/1 numbers ({dtype}), but a boolean mask is asked: labels != held_out is already "
    "boolean, so drop the .int()/.long()/.float() (or use .bool()). An integer tensor used as an index "
    "picks rows 0 and 1 over and over instead of selecting images.",
)
LOO_INDICES = _mistake(
    "leave_one_out.indices-not-mask",
    "leave_one_out",
    "{name} looks like a list of indices (torch.where / nonzero): return a boolean mask with one entry "
    "per image, labels != held_out.",
)
LOO_TRAIN_ON_HELD_OUT = _mistake(
    "leave_one_out.train-on-held-out",
    "leave_one_out",
    "your train_mask keeps only the held-out class: training uses every class except it, train_labels != held_out.",
)
LOO_ID_OOD_SWAPPED = _mistake(
    "leave_one_out.id-ood-swapped",
    "leave_one_out",
    "id_test_mask and ood_test_mask are swapped: the held-out class's test images are the OOD set.",
)


def check_leave_one_out(
    student_fn: Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, ...]],
) -> CheckResult:
    """`student_fn(train_labels, test_labels, held_out)` -> (train_mask, id_test_mask, ood_test_mask):
    boolean masks of the leave-one-class-out protocol, compared with :func:`ood_explain.core.data.leave_one_out`.
    Integer or float 0/1 masks are refused: they would index rows instead of masking."""

    def run() -> str:
        train_labels = torch.tensor([0, 1, 2, 3, 1, 2, 0, 3, 3])
        test_labels = torch.tensor([3, 2, 1, 0, 0, 1])
        names = ("train_mask", "id_test_mask", "ood_test_mask")
        for held_out in (0, 3):
            answer = _call(student_fn, train_labels.clone(), test_labels.clone(), held_out)
            if not isinstance(answer, (tuple, list)) or len(answer) != 3:
                raise _NotYet("return three masks (train_mask, id_test_mask, ood_test_mask)")
            expected = (train_labels != held_out, test_labels != held_out, test_labels == held_out)
            masks = []
            for got, want, name in zip(answer, expected, names):
                got = torch.as_tensor(got)
                if got.dtype != torch.bool:
                    values = set(torch.unique(got).tolist()) if got.numel() else set()
                    if got.shape == want.shape and values <= {0, 1}:
                        raise _NotYet(LOO_INTEGER.message.format(name=name, dtype=got.dtype), LOO_INTEGER)
                    if got.dim() == 1 and not got.is_floating_point() and got.shape[0] < want.shape[0]:
                        raise _NotYet(LOO_INDICES.message.format(name=name), LOO_INDICES)
                    raise _NotYet(f"{name} should be a boolean mask (dtype torch.bool), got dtype {got.dtype}")
                masks.append(got)
            if all(got.shape == want.shape and torch.equal(got, want) for got, want in zip(masks, expected)):
                continue
            train_mask, id_mask, ood_mask = masks
            if train_mask.shape == train_labels.shape and torch.equal(train_mask, train_labels == held_out):
                raise _NotYet(LOO_TRAIN_ON_HELD_OUT)
            if (
                id_mask.shape == ood_mask.shape == test_labels.shape
                and torch.equal(id_mask, expected[2])
                and torch.equal(ood_mask, expected[1])
            ):
                raise _NotYet(LOO_ID_OOD_SWAPPED)
            for got, want, name in zip(masks, expected, names):
                if got.shape != want.shape or not torch.equal(got, want):
                    raise _NotYet(
                        f"{name} for held-out class {held_out}: expected {want.int().tolist()}, "
                        f"got {got.int().tolist() if got.numel() < 20 else tuple(got.shape)}"
                    )
        return "Train on every class but one; its test images are the OOD set."

    return _report("leave_one_out", student_fn, run)


# ------------------------------------------------------------------ stale definitions (IPython only)

_defined_at: weakref.WeakKeyDictionary[FunctionType, float] = weakref.WeakKeyDictionary()
"""When each function of the user's namespace was first seen after a cell ran (its definition time)."""


def _shell():
    """The running IPython shell, or None: outside IPython (IPython never imported, or no shell)."""
    ipython = sys.modules.get("IPython")
    try:
        return ipython.get_ipython() if ipython is not None else None
    except Exception:
        return None


def _after_cell(*_args) -> None:
    """post_run_cell hook: note the time at which each new user function appeared."""
    try:
        shell, now = _shell(), time.time()
        namespace = getattr(shell, "user_ns", None) or {}
        for value in list(namespace.values()):
            if isinstance(value, FunctionType) and value not in _defined_at:
                _defined_at[value] = now
    except Exception:  # a hook must never disturb the student's notebook
        pass


def _watch(shell) -> None:
    """Install :func:`_after_cell` once (replacing the hook of an earlier import of this module)."""
    try:
        callbacks = shell.events.callbacks["post_run_cell"]
        for callback in list(callbacks):
            if (
                getattr(callback, "__module__", None) == __name__
                and getattr(callback, "__name__", None) == "_after_cell"
            ):
                callbacks.remove(callback)
        shell.events.register("post_run_cell", _after_cell)
    except Exception:
        pass


def _def_dump(function: FunctionType) -> str | None:
    """The def statement that created `function`, as an AST dump (comments and spacing ignored)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError, ValueError):
        return None
    node = tree.body[0] if tree.body else None
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function.__name__:
        return ast.dump(node)
    return None


def _defs_in(source: str, name: str) -> list[str | None]:
    """AST dumps of the top-level defs of `name` in a cell; a cell that does not parse but has a
    ``def name(`` line gives ``[None]`` (that def cannot have run)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return [None] if re.search(rf"^(async\s+)?def\s+{re.escape(name)}\s*\(", source, re.MULTILINE) else []
    return [
        ast.dump(node)
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
    ]


def _history(shell) -> list[str]:
    """The inputs run so far, index = execution count (IPython's ``In``)."""
    inputs = getattr(getattr(shell, "history_manager", None), "input_hist_parsed", None)
    if inputs is None:
        inputs = getattr(shell, "user_ns", {}).get("In", [])
    return [text if isinstance(text, str) else "" for text in inputs]


def _failed_redefinition(shell, function: FunctionType, dump: str) -> int | None:
    """The execution count of a cell, run after the one that defined `function`, that has a def of
    its name (so it meant to redefine it) but did not: it stopped with an error before the def."""
    latest = defining = None
    for number, source in enumerate(_history(shell)):
        defs = _defs_in(source, function.__name__)
        if defs:
            latest = number
        if dump in defs:
            defining = number
    return latest if latest is not None and defining is not None and latest > defining else None


def _notebook_file(shell) -> Path | None:
    """The notebook this kernel runs, when the front end says (Jupyter's ``__session__``, VS Code's
    ``__vsc_ipynb_file__``) and the file is there."""
    namespace = getattr(shell, "user_ns", {})
    for value in (
        namespace.get("__session__"),
        namespace.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if not isinstance(value, str) or not value.endswith(".ipynb"):
            continue
        path = Path(value)
        for candidate in [path] if path.is_absolute() else [Path.cwd() / path, Path.cwd() / path.name]:
            if candidate.is_file():
                return candidate
    return None


def _edited_not_run(shell, function: FunctionType, dump: str) -> bool:
    """Whether the notebook, saved after `function` was defined, defines its name differently in
    every cell that defines it: the student edited the definition cell and did not run it."""
    defined = _defined_at.get(function)
    if defined is None:
        return False
    path = _notebook_file(shell)
    if path is None or path.stat().st_mtime <= defined:
        return False
    found: list[str | None] = []
    for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            source = shell.transform_cell(source)
        except Exception:
            pass
        found += _defs_in(source, function.__name__)
    return bool(found) and dump not in found


def _stale_definition(student: object) -> tuple[Mistake, str] | None:
    """Under IPython: the stale-definition mistake and its text when `student`, or a function of the
    notebook it calls, is not what its cell now says; None otherwise, and always outside IPython."""
    shell = _shell()
    if shell is None or not isinstance(student, FunctionType):
        return None
    _watch(shell)
    try:
        namespace = student.__globals__
        candidates = [student] + [
            namespace[name] for name in student.__code__.co_names if isinstance(namespace.get(name), FunctionType)
        ]
        for function in candidates:
            if function.__module__ != "__main__" or not function.__name__.isidentifier():
                continue  # only the notebook's own functions: not library code, not lambdas
            dump = _def_dump(function)
            if dump is None:
                continue
            cell = _failed_redefinition(shell, function, dump)
            if cell is not None:
                return FAILED_REDEFINITION, FAILED_REDEFINITION.message.format(name=function.__name__, cell=cell)
            if _edited_not_run(shell, function, dump):
                return EDITED_NOT_RUN, EDITED_NOT_RUN.message.format(name=function.__name__)
    except Exception:  # never let the detection break a check
        return None
    return None


if (_running_shell := _shell()) is not None:  # time the definitions from the import cell on
    _watch(_running_shell)
